"""Modules as JAX pytrees: leaves, round trips through transforms, trace caching."""

import copy
import pickle

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, to_numpy
from tests.nn.modules._module_trees import JM, RICH, TORCH, build


def _expected_leaf_names(torch_model):
    """Parameters and buffers (non-persistent included) per module in state_dict order, each
    shared tensor once: computed from the equivalent torch tree."""
    names, seen = [], set()
    for prefix, mod in torch_model.named_modules():
        for name, t in (*mod._parameters.items(), *mod._buffers.items()):
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                names.append(prefix + ("." if prefix else "") + name)
    return names


def test_leaves_are_arrays_in_state_dict_order():
    t, j = build(TORCH, RICH), build(JM, RICH)
    leaves = jax.tree.leaves(j)
    expected = _expected_leaf_names(t)
    assert len(leaves) == len(expected)
    tensors = dict(
        (*t.named_parameters(remove_duplicate=False), *t.named_buffers(remove_duplicate=False))
    )
    for leaf, name in zip(leaves, expected):
        assert isinstance(leaf, jax.Array)
        np.testing.assert_array_equal(to_numpy(leaf), to_numpy(tensors[name]))
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(j)[0]]
    assert paths == ["." + n for n in expected]
    # state_dict keys are a subsequence (non-persistent buffers are leaves too)
    sd = [k for k in t.state_dict() if k in expected]
    assert sd == [n for n in expected if n in sd]
    assert "scratch" in expected and "enc.mask" in expected


def _attrs(m):
    return [
        (
            n,
            type(x).__name__,
            x.training,
            {k: v for k, v in vars(x).items() if not k.startswith("_")},
            list(x._forward_hooks.values()),
            sorted(x._non_persistent_buffers_set),
        )
        for n, x in m.named_modules(remove_duplicate=False)
    ]


def _hooked_rich():
    j = build(JM, RICH)
    j.enc.eval()
    j.hidden = 7
    hook = lambda m, a, o: o  # noqa: E731
    j.dec.register_forward_hook(hook)
    return j


def test_tree_map_gives_same_class_and_keeps_attributes():
    j = _hooked_rich()
    doubled = jax.tree.map(lambda x: x * 2, j)
    assert type(doubled) is type(j) and doubled is not j
    assert _attrs(doubled) == _attrs(j)
    assert repr(doubled) == repr(j)
    for (_, a), (_, b) in zip(doubled.state_dict().items(), j.state_dict().items()):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b) * 2)
    # tied and shared stay tied and shared in the copy
    assert doubled.dec.tied is doubled.enc.w and doubled.enc_alias is doubled.enc
    assert doubled.dec.again is doubled.enc.lin
    # the original is untouched
    assert to_numpy(j.alpha).tolist() == to_numpy(build(JM, RICH).alpha).tolist()
    # cells keep their kind and flags
    assert isinstance(doubled.alpha, nn.Parameter) and isinstance(doubled.stat, nn.Buffer)
    assert "scratch" in doubled._non_persistent_buffers_set


def test_requires_grad_flag_survives_round_trip():
    j = build(JM, RICH)
    j.enc.w.requires_grad_(False)
    back = jax.tree.unflatten(*reversed(jax.tree.flatten(j)))
    assert back.enc.w.requires_grad is False and back.alpha.requires_grad is True
    assert back.dec.tied.requires_grad is False


def test_device_put_returns_module():
    j = _hooked_rich()
    dev = jax.devices("cpu")[3]
    moved = jax.device_put(j, dev)
    assert type(moved) is type(j) and _attrs(moved) == _attrs(j)
    assert {p.device for p in moved.parameters()} == {dev}
    assert {p.device for p in j.parameters()} == {jax.devices("cpu")[0]}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 2)
        self.register_buffer("scale", jnp.array([1.0, 2.0]))

    def forward(self, x):
        h = jnp.tanh(self.fc1(x))
        if self.training:
            h = h * 0.5
        return self.fc2(h) * self.scale


def test_jit_takes_and_returns_modules():
    m = MLP()
    m.eval()
    x = jnp.ones((2, 3))
    out = jax.jit(lambda mod, x: mod(x))(m, x)
    assert_close(out, m(x))
    ret = jax.jit(lambda mod: mod)(m)
    assert type(ret) is MLP and ret.training is False
    assert_close(ret(x), m(x))


def test_grad_matches_torch():
    m = MLP()
    fc1, fc2 = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)
    m.fc1.load_state_dict(fc1.state_dict())
    m.fc2.load_state_dict(fc2.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)

    def loss(mod, x):
        return (mod(x) ** 2).sum()

    g = jax.grad(loss)(m, jnp.asarray(x))
    assert type(g) is MLP and g.training is True
    tx = torch.from_numpy(x)
    tout = fc2(torch.tanh(fc1(tx)) * 0.5) * torch.tensor([1.0, 2.0])
    (tout**2).sum().backward()
    for name, tp in (
        ("fc1.weight", fc1.weight),
        ("fc1.bias", fc1.bias),
        ("fc2.weight", fc2.weight),
        ("fc2.bias", fc2.bias),
    ):
        assert_close(g.get_parameter(name), tp.grad, rtol=1e-5, atol=1e-5)


def test_vmap_over_inputs():
    m = MLP()
    xs = jnp.arange(12.0).reshape(4, 3) / 10
    closed = jax.vmap(lambda x: m(x))(xs)
    passed = jax.vmap(lambda mod, x: mod(x), in_axes=(None, 0))(m, xs)
    assert_close(closed, m(xs))
    assert_close(passed, m(xs))


def test_vmap_over_stacked_modules():
    ms = [MLP() for _ in range(3)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *ms)
    assert type(stacked) is MLP and stacked.fc1.weight.shape == (3, 4, 3)
    x = jnp.ones((2, 3))
    out = jax.vmap(lambda mod: mod(x))(stacked)
    for i, mi in enumerate(ms):
        assert_close(out[i], mi(x))


def test_jit_does_not_retrace_for_equal_structure_and_does_after_mode_or_hook_change():
    traces = []

    @jax.jit
    def f(mod, x):
        traces.append(1)
        return mod(x)

    x = jnp.ones((1, 3))
    m = MLP()
    f(m, x)
    f(m, x)
    m.fc1.weight.data = m.fc1.weight.data * 2  # value change: no retrace
    out = f(m, x)
    assert_close(out, m(x))
    assert len(traces) == 1
    f(MLP(), x)  # a structurally equal model: no retrace
    assert len(traces) == 1
    m.eval()
    out = f(m, x)
    assert len(traces) == 2
    assert_close(out, m(x))
    m.train()
    f(m, x)
    assert len(traces) == 2  # back to a structure seen before
    h = m.register_forward_hook(lambda mod, a, o: o + 1)
    out = f(m, x)
    assert len(traces) == 3
    assert_close(out, m(x))
    h.remove()
    f(m, x)
    assert len(traces) == 3
    m.fc1.weight.requires_grad_(False)
    f(m, x)
    assert len(traces) == 4


def test_configuration_change_retraces():
    traces = []

    class Pow(nn.Module):
        def __init__(self, p):
            super().__init__()
            self.p = p
            self.w = nn.Parameter(jnp.ones(2))

        def forward(self, x):
            return self.w * x**self.p

    @jax.jit
    def f(mod, x):
        traces.append(1)
        return mod(x)

    m = Pow(2)
    x = jnp.array([2.0, 3.0])
    assert to_numpy(f(m, x)).tolist() == [4.0, 9.0]
    m.p = 3
    assert to_numpy(f(m, x)).tolist() == [8.0, 27.0]
    assert len(traces) == 2


def test_flatten_is_cached_and_cheap():
    j = build(JM, RICH)
    leaves1, td1 = jax.tree.flatten(j)
    leaves2, td2 = jax.tree.flatten(j)
    assert td1 == td2 and hash(td1) == hash(td2)
    j.new_attr = 1
    _, td3 = jax.tree.flatten(j)
    assert td3 != td1


def test_unflatten_with_other_leaves():
    j = build(JM, RICH)
    leaves, td = jax.tree.flatten(j)
    zeros = [jnp.zeros_like(x) for x in leaves]
    z = jax.tree.unflatten(td, zeros)
    assert all(float(jnp.abs(v).sum()) == 0 for v in z.state_dict().values())
    assert list(z.state_dict()) == list(j.state_dict())
    assert [n for n, _ in z.named_modules()] == [n for n, _ in j.named_modules()]


def test_jit_output_module_is_usable_and_has_independent_values():
    m = MLP()
    new = jax.jit(lambda mod: jax.tree.map(lambda x: x + 1, mod))(m)
    with jaxmodule.no_grad():
        new.fc1.weight.fill_(0.0)
    assert float(jnp.abs(m.fc1.weight._value).sum()) > 0
    # hook registries are shared with the template (README: pytree unflattening)
    new.register_forward_pre_hook(lambda mod, a: None)
    assert len(new._forward_pre_hooks) == 1


def test_module_pickles_after_transform():
    m = jax.tree.map(lambda x: x * 1, MLP())
    m2 = pickle.loads(pickle.dumps(m))
    x = jnp.ones((1, 3))
    assert_close(m2(x), m(x))


def test_buffer_write_in_plain_jit_does_not_leak():
    """Writing a buffer inside a plain jax.jit changes only the traced copy (documented)."""
    m = MLP()

    @jax.jit
    def step(mod, x):
        mod.scale = mod.scale * 2
        return mod(x)

    step(m, jnp.ones((1, 3)))
    assert to_numpy(m.scale).tolist() == [1.0, 2.0]
    assert isinstance(m.scale._value, jax.Array) and not isinstance(m.scale._value, jax.core.Tracer)


def test_none_entries_survive_round_trip():
    j = build(JM, RICH)
    j.add_module("hole", None)
    back = jax.tree.map(lambda x: x, j)
    assert "hole" in back._modules and back.hole is None
    assert back._parameters["gone"] is None and back._buffers["empty"] is None
    assert list(back.state_dict()) == list(j.state_dict())
    assert repr(back) == repr(j)


def test_registration_on_a_copy_does_not_touch_the_original():
    """Regression: unflattened modules shared `_non_persistent_buffers_set` with the template."""
    j = build(JM, RICH)
    before = list(j.state_dict())
    c = jax.tree.map(lambda x: x, j)
    del c.scratch
    c.register_buffer("stat", jnp.zeros(3), persistent=False)
    c.enc.register_buffer("mask", None)
    assert list(j.state_dict()) == before
    assert (
        "scratch" in j._non_persistent_buffers_set and "stat" not in j._non_persistent_buffers_set
    )
    assert "mask" in j.enc._non_persistent_buffers_set
    c.new_param = nn.Parameter(jnp.ones(1))
    assert "new_param" not in j._parameters


def _is_lazy(m):
    return "_jm_lazy" in m.__dict__


def test_unflatten_is_lazy_until_first_use_and_flattening_it_builds_nothing():
    j = _hooked_rich()
    leaves, td = jax.tree.flatten(j)
    c = jax.tree.map(lambda x: x + 1, jax.tree.map(lambda x: x * 2, j))  # a chain of maps
    assert _is_lazy(c) and type(c) is type(j)
    c_leaves, c_td = jax.tree.flatten(c)
    assert c_td == td and _is_lazy(c)
    for a, b in zip(c_leaves, leaves):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b) * 2 + 1)
    assert c.training == j.training and c.hidden == 7  # plain attributes need no build
    assert _is_lazy(c)
    # first real use builds the tree, exactly as the template's structure
    assert [n for n, _ in c.named_modules()] == [n for n, _ in j.named_modules()]
    assert not _is_lazy(c)
    assert _attrs(c) == _attrs(j)
    assert repr(c) == repr(j)
    for (k, v), w in zip(c.state_dict().items(), j.state_dict().values()):
        np.testing.assert_array_equal(to_numpy(v), to_numpy(w) * 2 + 1, err_msg=k)
    assert jax.tree.flatten(c)[1] == td


class _Shadowed(nn.Module):
    scale = 1.0  # class attribute overridden per instance

    def __init__(self):
        super().__init__()
        self.scale = 2.0
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x) * self.scale


def test_lazy_module_every_entry_point_builds_it():
    m = _Shadowed()
    x = jnp.ones((1, 2))
    uses = {
        "call": lambda c: assert_close(c(x), m(x)),
        "parameter": lambda c: assert_close(c.fc.weight, m.fc.weight),
        "setattr module": lambda c: setattr(c, "extra", nn.Linear(2, 2)) or c.extra,
        "setattr plain": lambda c: (
            setattr(c, "note", 3)
            or list(c.state_dict()) == list(m.state_dict())
            or pytest.fail("state_dict")
        ),
        "delattr": lambda c: delattr(c, "fc") or "fc" not in c._modules or pytest.fail("del"),
        "hasattr": lambda c: hasattr(c, "fc") or pytest.fail("hasattr"),
        "register_buffer": lambda c: c.register_buffer("b", jnp.zeros(1)),
        "train": lambda c: c.eval(),
        "dir": lambda c: "fc" in dir(c) or pytest.fail("dir"),
        "pickle": lambda c: assert_close(pickle.loads(pickle.dumps(c))(x), m(x)),
        "deepcopy": lambda c: assert_close(copy.deepcopy(c)(x), m(x)),
        "copy": lambda c: assert_close(copy.copy(c)(x), m(x)),
        "compile": lambda c: assert_close(jaxmodule.compile(lambda mod, v: mod(v))(c, x), m(x)),
        "missing attribute": lambda c: pytest.raises(AttributeError, getattr, c, "nope"),
    }
    c = jax.tree.map(lambda v: v, m)
    assert c.scale == 2.0 and _is_lazy(c)  # instance attributes are there before any build
    for name, use in uses.items():
        c = jax.tree.map(lambda v: v, m)
        assert _is_lazy(c), name
        use(c)
        assert not _is_lazy(c), name
        assert c.scale == 2.0 and m.scale == 2.0, name
        assert list(m._modules) == ["fc"], name  # the template is never touched


def test_jit_returning_a_module_stays_lazy_until_used():
    m = MLP()
    out = jax.jit(lambda mod: jax.tree.map(lambda v: v + 1, mod))(m)
    assert _is_lazy(out)
    out2 = jax.jit(lambda mod: mod)(out)  # flattening the lazy output builds nothing
    assert _is_lazy(out)
    x = jnp.ones((1, 3))
    expected = jax.tree.map(lambda v: v + 1, m)
    assert_close(out2(x), expected(x))
