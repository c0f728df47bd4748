"""Legacy `register_backward_hook` against torch: the gradients of the module's last operation."""

import warnings

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn.modules import _hooks

from tests.helpers import assert_close, randn, to_numpy


class Mul2(torch.nn.Module):
    def forward(self, x):
        return x * 2


class JMul2(nn.Module):
    def forward(self, x):
        return x * 2


class AddAB(torch.nn.Module):
    def forward(self, a, b):
        return a + b


class JAddAB(nn.Module):
    def forward(self, a, b):
        return a + b


def pair(name, *args, **kwargs):
    return getattr(torch.nn, name)(*args, **kwargs), getattr(nn, name)(*args, **kwargs)


def seq(*pairs):
    return torch.nn.Sequential(*(p[0] for p in pairs)), nn.Sequential(*(p[1] for p in pairs))


# name -> (builder of (torch module, jaxmodule module), input shapes)
CASES = {
    "linear": (lambda: pair("Linear", 3, 2), [(4, 3)]),
    "linear_nobias": (lambda: pair("Linear", 3, 2, bias=False), [(4, 3)]),
    "linear_3d": (lambda: pair("Linear", 3, 2), [(5, 4, 3)]),
    "linear_1d": (lambda: pair("Linear", 3, 2), [(3,)]),
    "linear_1d_nobias": (lambda: pair("Linear", 3, 2, bias=False), [(3,)]),
    "conv1d": (lambda: pair("Conv1d", 2, 3, 3), [(1, 2, 7)]),
    "conv2d": (lambda: pair("Conv2d", 2, 3, 3), [(1, 2, 5, 5)]),
    "conv2d_nobias_groups": (lambda: pair("Conv2d", 4, 4, 3, groups=2, bias=False), [(1, 4, 5, 5)]),
    "conv2d_unbatched": (lambda: pair("Conv2d", 2, 3, 3), [(2, 5, 5)]),
    "conv2d_reflect": (
        lambda: pair("Conv2d", 2, 3, 3, padding=1, padding_mode="reflect"),
        [(1, 2, 5, 5)],
    ),
    "conv1d_same_even": (lambda: pair("Conv1d", 2, 3, 4, padding="same"), [(1, 2, 6)]),
    "conv3d": (lambda: pair("Conv3d", 2, 3, 2), [(1, 2, 3, 3, 3)]),
    "convT1d": (lambda: pair("ConvTranspose1d", 2, 3, 3), [(1, 2, 4)]),
    "convT2d_stride": (lambda: pair("ConvTranspose2d", 2, 3, 3, stride=2), [(1, 2, 4, 4)]),
    "convT2d_nobias": (lambda: pair("ConvTranspose2d", 2, 3, 3, bias=False), [(1, 2, 4, 4)]),
    "convT2d_unbatched": (lambda: pair("ConvTranspose2d", 2, 3, 3), [(2, 4, 4)]),
    "convT3d": (lambda: pair("ConvTranspose3d", 2, 3, 2), [(1, 2, 2, 2, 2)]),
    "relu": (lambda: pair("ReLU"), [(4, 6)]),
    "sigmoid": (lambda: pair("Sigmoid"), [(4, 6)]),
    "softmax": (lambda: pair("Softmax", dim=1), [(4, 6)]),
    "leaky_relu": (lambda: pair("LeakyReLU", 0.2), [(4, 6)]),
    "gelu": (lambda: pair("GELU"), [(4, 6)]),
    "glu": (lambda: pair("GLU"), [(4, 6)]),
    "softmin": (lambda: pair("Softmin", dim=1), [(4, 6)]),
    "softsign": (lambda: pair("Softsign"), [(4, 6)]),
    "tanhshrink": (lambda: pair("Tanhshrink"), [(4, 6)]),
    "prelu": (lambda: pair("PReLU"), [(4, 6)]),
    "prelu_channels_3d": (lambda: pair("PReLU", 6), [(2, 6, 3)]),
    "batchnorm2d": (lambda: pair("BatchNorm2d", 3), [(2, 3, 2, 2)]),
    "layernorm": (lambda: pair("LayerNorm", 3), [(4, 3)]),
    "groupnorm": (lambda: pair("GroupNorm", 2, 4), [(2, 4, 3)]),
    "instancenorm": (lambda: pair("InstanceNorm1d", 3, affine=True), [(2, 3, 4)]),
    "seq_linear_tanh": (lambda: seq(pair("Linear", 3, 2), pair("Tanh")), [(4, 3)]),
    "seq_nested_ending_linear": (
        lambda: seq(pair("Linear", 3, 4), seq(pair("ReLU"), pair("Linear", 4, 2))),
        [(4, 3)],
    ),
    "seq_identity_relu": (lambda: seq(pair("Identity"), pair("ReLU")), [(4, 3)]),
    "seq_linear_softsign": (lambda: seq(pair("Linear", 3, 2), pair("Softsign")), [(4, 3)]),
    "add_broadcast": (lambda: (AddAB(), JAddAB()), [(4, 3), (3,)]),
}
COMPILED = [
    "linear",
    "linear_3d",
    "conv2d",
    "convT2d_stride",
    "prelu",
    "seq_linear_tanh",
    "seq_nested_ending_linear",
    "softsign",
]


def recorder(log, scale=None):
    def hook(module, grad_input, grad_output):
        log.append(
            (
                [None if g is None else to_numpy(g) for g in grad_input],
                [None if g is None else to_numpy(g) for g in grad_output],
            )
        )
        if scale is not None:
            return tuple(None if g is None else g * (scale + i) for i, g in enumerate(grad_input))
        return None

    return hook


def compare_logs(tlog, jlog):
    assert len(tlog) == len(jlog) > 0
    for (tgi, tgo), (jgi, jgo) in zip(tlog, jlog):
        for t_grads, j_grads in ((tgi, jgi), (tgo, jgo)):
            assert [None if g is None else g.shape for g in j_grads] == [
                None if g is None else g.shape for g in t_grads
            ]
            for a, b in zip(j_grads, t_grads):
                if b is not None:
                    assert_close(a, b, atol=1e-5)  # conv/matmul sums of a few dozen products


def build(name):
    make, shapes = CASES[name]
    t, j = make()
    j.load_state_dict(t.state_dict())
    xs = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    return t, j, xs


def run_torch(t, xs, requires_grad=True):
    ts = [torch.tensor(x, requires_grad=requires_grad) for x in xs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", "Using padding='same' with even kernel")
        (t(*ts) ** 2).sum().backward()
    return [x.grad for x in ts]


def run_jm(j, xs, compiled=False, argnums=True):
    def loss(model, *xs):
        return (model(*xs) ** 2).sum()

    nums = tuple(range(len(xs) + 1)) if argnums else 0
    fn = jaxmodule.grad(loss, argnums=nums)
    if compiled:
        fn = jaxmodule.compile(fn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return fn(j, *(jnp.asarray(x) for x in xs))


@pytest.mark.parametrize("name", sorted(CASES))
def test_legacy_hook_arguments_equal_torch(name):
    t, j, xs = build(name)
    tlog, jlog = [], []
    t.register_backward_hook(recorder(tlog))
    j.register_backward_hook(recorder(jlog))
    run_torch(t, xs)
    run_jm(j, xs)
    compare_logs(tlog, jlog)


@pytest.mark.parametrize("name", COMPILED)
def test_legacy_hook_arguments_equal_torch_compiled(name):
    t, j, xs = build(name)
    tlog, jlog = [], []
    t.register_backward_hook(recorder(tlog))
    j.register_backward_hook(recorder(jlog))
    run_torch(t, xs)
    run_jm(j, xs, compiled=True)
    compare_logs(tlog, jlog)


def test_input_without_grad_gives_none_like_torch():
    t, j, xs = build("linear")
    tlog, jlog = [], []
    t.register_backward_hook(recorder(tlog))
    j.register_backward_hook(recorder(jlog))
    run_torch(t, xs, requires_grad=False)
    run_jm(j, xs, argnums=False)
    compare_logs(tlog, jlog)
    assert jlog[0][0][1] is None


@pytest.mark.parametrize(
    "name, compiled",
    [
        ("linear", False),
        ("linear", True),
        ("linear_nobias", False),
        ("conv2d", False),
        ("conv2d", True),
        ("prelu", False),
        ("seq_linear_tanh", False),
        ("seq_linear_tanh", True),
        ("tanhshrink", False),
        ("linear_3d", False),
        ("conv2d_reflect", False),
    ],
)
def test_replaced_grad_input_reaches_inputs_and_parameters_as_torch(name, compiled):
    t, j, xs = build(name)
    t.register_backward_hook(recorder([], scale=2.0))
    j.register_backward_hook(recorder([], scale=2.0))
    tgx = run_torch(t, xs)
    gm, *gx = run_jm(j, xs, compiled=compiled)
    for a, b in zip(gx, tgx):
        assert_close(a, b, atol=1e-5)
    grads = dict(gm.named_parameters())
    for pname, tp in t.named_parameters():
        assert_close(grads[pname], tp.grad, atol=1e-5)


def test_returning_none_drops_that_gradient():
    t, j, xs = build("linear")
    t.register_backward_hook(lambda m, gi, go: (None, gi[1], gi[2]))
    j.register_backward_hook(lambda m, gi, go: (None, gi[1], gi[2]))
    tgx = run_torch(t, xs)
    gm, gx = run_jm(j, xs)
    assert t.bias.grad is None
    assert_close(gm.bias, np.zeros(2))
    assert_close(gx, tgx[0])


def test_hooks_on_container_and_last_child_chain_in_torch_order():
    t, j, xs = build("seq_linear_tanh")
    tlog, jlog = [], []
    for tm, jm in ((t[1], j[1]), (t, j)):  # the child's hook runs first, then the container's
        tm.register_backward_hook(recorder(tlog, scale=2.0))
        jm.register_backward_hook(recorder(jlog, scale=2.0))
    tgx = run_torch(t, xs)
    gm, gx = run_jm(j, xs)
    compare_logs(tlog, jlog)
    assert_close(gx, tgx[0], atol=1e-5)
    assert_close(gm[0].weight, t[0].weight.grad, atol=1e-5)


def test_global_legacy_hook_sees_every_module_as_torch():
    t, j, xs = build("seq_nested_ending_linear")
    tlog, jlog = [], []
    handles = [
        torch.nn.modules.module.register_module_backward_hook(recorder(tlog)),
        nn.modules.module.register_module_backward_hook(recorder(jlog)),
    ]
    try:
        run_torch(t, xs)
        run_jm(j, xs)
    finally:
        for h in handles:
            h.remove()
        torch.nn.modules.module._global_is_full_backward_hook = None
        _hooks._global_is_full_backward_hook[0] = None
    compare_logs(tlog, jlog)


def test_backward_pre_hook_makes_the_last_operation_the_hook_identity():
    t, j, xs = build("linear")
    tlog, jlog = [], []
    for m, log in ((t, tlog), (j, jlog)):
        m.register_full_backward_pre_hook(lambda mod, go: (go[0] * 2,))
        m.register_backward_hook(recorder(log))
    run_torch(t, xs)
    run_jm(j, xs)
    compare_logs(tlog, jlog)


def test_dropout_in_training_reports_the_mask_as_none():
    t, j = pair("Dropout", 0.5)
    tlog, jlog = [], []
    t.register_backward_hook(recorder(tlog))
    j.register_backward_hook(recorder(jlog))
    xs = [randn(4, 3)]
    run_torch(t, xs)
    gm, gx = run_jm(j, xs)
    assert [g is None for g in jlog[0][0]] == [g is None for g in tlog[0][0]] == [False, True]
    assert_close(jlog[0][0][0], gx)  # random masks differ from torch's; the gradient is the input's


def test_plain_jax_jit_runs_hooks_with_values_and_replacements():
    t, j, xs = build("seq_linear_tanh")
    tlog, jlog = [], []
    t.register_backward_hook(recorder(tlog, scale=2.0))
    j.register_backward_hook(recorder(jlog, scale=2.0))
    tgx = run_torch(t, xs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        gm, gx = jax.jit(jaxmodule.grad(lambda m, x: (m(x) ** 2).sum(), argnums=(0, 1)))(
            j, jnp.asarray(xs[0])
        )
    compare_logs(tlog, jlog)
    assert_close(gx, tgx[0], atol=1e-5)
    assert_close(gm[0].weight, t[0].weight.grad, atol=1e-5)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_embedding_reports_the_weight_gradient():
    t, j = pair("Embedding", 5, 3)
    j.load_state_dict(t.state_dict())
    tlog, jlog = [], []
    t.register_backward_hook(recorder(tlog))
    j.register_backward_hook(recorder(jlog))
    idx = np.array([[1, 2, 1], [4, 0, 2]])
    (t(torch.tensor(idx)) ** 2).sum().backward()
    jaxmodule.grad(lambda m: (m(jnp.asarray(idx)) ** 2).sum())(j)
    compare_logs(tlog, jlog)


def test_module_without_rule_reports_input_gradients():
    # torch's `x * 2` is mul(x, 2): grad_input (grad of x, None). Without a rule, jaxmodule reports
    # the gradients w.r.t. the module's inputs only (documented in `_backward_hooks.py`).
    t, j = Mul2(), JMul2()
    tlog, jlog = [], []
    t.register_backward_hook(recorder(tlog))
    j.register_backward_hook(recorder(jlog))
    xs = [randn(4, 3)]
    run_torch(t, xs)
    run_jm(j, xs)
    assert tlog[0][0][1] is None
    compare_logs([([tlog[0][0][0]], tlog[0][1])], jlog)


def test_cannot_mix_legacy_and_full_hooks():
    m = nn.Linear(2, 2)
    m.register_backward_hook(lambda *a: None)
    with pytest.raises(
        RuntimeError, match="Cannot use both regular backward hooks and full backward hooks"
    ):
        m.register_full_backward_hook(lambda *a: None)
    m = nn.Linear(2, 2)
    m.register_full_backward_hook(lambda *a: None)
    with pytest.raises(
        RuntimeError, match="Cannot use both regular backward hooks and full backward hooks"
    ):
        m.register_backward_hook(lambda *a: None)


def test_invalid_returns_raise_torch_errors():
    _, j, xs = build("linear")
    x = jnp.asarray(xs[0])
    cases = [
        (
            lambda m, gi, go: gi[:2],
            RuntimeError,
            "incorrect number of values \\(got 2, but expected 3\\)",
        ),
        (lambda m, gi, go: list(gi), TypeError, "expected tuple, but hook returned 'list'"),
        (
            lambda m, gi, go: (gi[0], gi[1][:2], gi[2]),
            RuntimeError,
            "has changed the size of value",
        ),
    ]
    for hook, exc, msg in cases:
        h = j.register_backward_hook(hook)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            with pytest.raises(exc, match=msg):
                jaxmodule.grad(lambda m, x: m(x).sum(), argnums=(0, 1))(j, x)
        h.remove()


@pytest.mark.parametrize(
    "name, warns",
    [
        ("linear", True),
        ("conv2d", True),
        ("softmin", True),
        ("relu", False),
        ("seq_identity_relu", False),
        ("seq_linear_tanh", True),
    ],
)
def test_multiple_nodes_warning_where_torch_warns_on_a_non_leaf_input(name, warns):
    t, j, xs = build(name)
    for m in (t, j):
        m.register_backward_hook(lambda *a: None)
    with warnings.catch_warnings(record=True) as tw:
        warnings.simplefilter("always")
        t(torch.tensor(xs[0], requires_grad=True) * 1)
    with warnings.catch_warnings(record=True) as jw:
        warnings.simplefilter("always")
        jaxmodule.grad(lambda m, x: m(x * 1).sum(), argnums=(0, 1))(j, jnp.asarray(xs[0]))
        j(jnp.asarray(xs[0]))  # no differentiation: no grad_fn in torch, no warning

    def multi(ws):
        return [w.category for w in ws if "multiple autograd Nodes" in str(w.message)]

    assert multi(jw) == multi(tw) == ([FutureWarning] if warns else [])
