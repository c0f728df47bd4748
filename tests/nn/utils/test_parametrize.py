"""Differential tests of nn.utils.parametrize and parametrizations (weight_norm, spectral_norm)."""

import copy
import pickle

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
import torch.nn.utils.parametrizations as TP
import torch.nn.utils.parametrize as TZ
from jaxmodule import nn
from jaxmodule.nn.utils import parametrizations as P
from jaxmodule.nn.utils import parametrize as Z

from tests.helpers import assert_close, randn, to_torch


class JWeight4d(nn.Module):
    """A module with a 4-d weight (conv-like) applied as a per-sample contraction."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(jnp.asarray(randn(3, 2, 2, 2, seed=5)))

    def forward(self, x):
        return jnp.einsum("bijk,oijk->bo", x, self.weight)


class TWeight4d(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(to_torch(randn(3, 2, 2, 2, seed=5)))

    def forward(self, x):
        return torch.einsum("bijk,oijk->bo", x, self.weight)


def _linear_pair(**kw):
    t = torch.nn.Linear(3, 4, **kw)
    j = nn.Linear(3, 4, **kw)
    j.load_state_dict(t.state_dict())
    return t, j


def _shapes(m):
    return [(k, tuple(v.shape)) for k, v in m.state_dict().items()]


def _grads_vs_torch(t, j, x, rtol=1e-5, atol=1e-6):
    """Gradients of sum(out**2) w.r.t. every trainable parameter (the originals included)."""
    t.zero_grad()
    (t(to_torch(x)) ** 2).sum().backward()
    grads = jaxmodule.grad(lambda m: (m(jnp.asarray(x)) ** 2).sum())(j)
    names = [k for k, _ in t.named_parameters()]
    assert names == [k for k, _ in j.named_parameters()]
    for name, tp in t.named_parameters():
        node = grads
        for part in name.split("."):
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        assert_close(node, tp.grad, rtol, atol)


# ---- weight_norm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, None, -1])
def test_weight_norm_linear_matches_torch(dim):
    t, j = _linear_pair()
    TP.weight_norm(t, dim=dim)
    P.weight_norm(j, dim=dim)
    assert _shapes(j) == _shapes(t)
    assert type(j).__name__ == type(t).__name__ == "ParametrizedLinear"
    # Registration computed the same originals from the same weight.
    for k, v in t.state_dict().items():
        assert_close(j.state_dict()[k], v)
    assert repr(j) == repr(t)
    x = randn(5, 3)
    assert_close(j.weight, t.weight)
    assert_close(j(jnp.asarray(x)), t(to_torch(x)))
    _grads_vs_torch(t, j, x)


@pytest.mark.parametrize("dim", [0, 2])
def test_weight_norm_4d_weight_loads_torch_state(dim):
    t, j = TWeight4d(), JWeight4d()
    TP.weight_norm(t, dim=dim)
    P.weight_norm(j, dim=dim)
    assert _shapes(j) == _shapes(t)
    with torch.no_grad():
        t.parametrizations.weight.original0.mul_(1.5)  # g no longer equals ||v||
    j.load_state_dict(t.state_dict())
    x = randn(2, 2, 2, 2, seed=7)
    assert_close(j(jnp.asarray(x)), t(to_torch(x)), atol=1e-5)
    _grads_vs_torch(t, j, x, atol=1e-5)
    jit_out = jax.jit(lambda m, v: m(v))(j, jnp.asarray(x))
    assert_close(jit_out, t(to_torch(x)), atol=1e-5)


def test_weight_norm_loads_old_style_g_v_keys():
    t = torch.nn.Linear(3, 4)
    with pytest.warns(FutureWarning):
        torch.nn.utils.weight_norm(t)
    old = t.state_dict()
    assert {"weight_g", "weight_v"} <= set(old)
    j = P.weight_norm(nn.Linear(3, 4))
    j.load_state_dict(old)
    assert_close(j.parametrizations.weight.original0, old["weight_g"])
    x = randn(2, 3)
    assert_close(j(jnp.asarray(x)), t(to_torch(x)))


def test_weight_norm_assignment_calls_right_inverse():
    t, j = _linear_pair()
    TP.weight_norm(t)
    P.weight_norm(j)
    new = randn(4, 3, seed=9)
    with torch.no_grad():
        t.weight = to_torch(new)
    j.weight = jnp.asarray(new)
    assert_close(j.parametrizations.weight.original0, t.parametrizations.weight.original0)
    assert_close(j.parametrizations.weight.original1, t.parametrizations.weight.original1)
    assert_close(j.weight, new)


# ---- spectral_norm -------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [{}, {"n_power_iterations": 3}, {"dim": 1, "eps": 1e-6}])
def test_spectral_norm_matches_torch_in_train_and_eval(kw):
    t, j = _linear_pair()
    TP.spectral_norm(t, **kw)
    P.spectral_norm(j, **kw)
    assert _shapes(j) == _shapes(t)
    assert repr(j) == repr(t)
    j.load_state_dict(t.state_dict())
    x = randn(5, 3)
    # Training mode: every forward runs power iteration and updates the _u/_v buffers.
    for _ in range(3):
        t_out = t(to_torch(x))
        j_out = j(jnp.asarray(x))
        assert_close(j_out, t_out, atol=1e-5)
    sn_t, sn_j = t.parametrizations.weight[0], j.parametrizations.weight[0]
    assert_close(sn_j._u, sn_t._u, atol=1e-5)
    assert_close(sn_j._v, sn_t._v, atol=1e-5)
    _grads_vs_torch(t, j, x, atol=1e-5)
    # Eval mode: u/v are used as they are.
    t.eval()
    j.eval()
    u_before = sn_j._u._value
    assert_close(j(jnp.asarray(x)), t(to_torch(x)), atol=1e-5)
    assert sn_j._u._value is u_before
    _grads_vs_torch(t, j, x, atol=1e-5)
    assert_close(jax.jit(lambda m, v: m(v))(j, jnp.asarray(x)), t(to_torch(x)), atol=1e-5)


def test_spectral_norm_buffers_update_inside_compiled_forward():
    t, j = _linear_pair()
    TP.spectral_norm(t)
    P.spectral_norm(j)
    j.load_state_dict(t.state_dict())
    j.compile()
    x = randn(5, 3)
    for _ in range(3):
        assert_close(j(jnp.asarray(x)), t(to_torch(x)), atol=1e-5)
    assert_close(j.parametrizations.weight[0]._u, t.parametrizations.weight[0]._u, atol=1e-5)


def test_spectral_norm_4d_and_1d_weights():
    t, j = TWeight4d(), JWeight4d()
    TP.spectral_norm(t, dim=1)
    P.spectral_norm(j, dim=1)
    assert _shapes(j) == _shapes(t)
    j.load_state_dict(t.state_dict())
    x = randn(2, 2, 2, 2, seed=7)
    for _ in range(2):
        assert_close(j(jnp.asarray(x)), t(to_torch(x)), atol=1e-5)
    t1, j1 = torch.nn.Linear(3, 4), nn.Linear(3, 4)
    j1.load_state_dict(t1.state_dict())
    TP.spectral_norm(t1, name="bias")
    P.spectral_norm(j1, name="bias")
    assert (
        _shapes(j1) == _shapes(t1) == [("weight", (4, 3)), ("parametrizations.bias.original", (4,))]
    )
    assert_close(j1.bias, t1.bias)


def test_spectral_norm_initial_estimate_is_close_to_the_true_norm():
    j = P.spectral_norm(nn.Linear(6, 5)).eval()
    w = j.parametrizations.weight.original._value
    sigma = np.linalg.norm(np.asarray(w), 2)
    # 15 power iterations from a random start: the estimate is close, not exact.
    assert_close(np.linalg.norm(np.asarray(j.weight), 2), 1.0, rtol=5e-2)
    assert sigma > 0


SN_ERRORS = {
    "dim_out_of_range": lambda lib, m: lib.spectral_norm(m, dim=2),
    "dim_out_of_range_neg": lambda lib, m: lib.spectral_norm(m, dim=-3),
    "no_power_iterations": lambda lib, m: lib.spectral_norm(m, n_power_iterations=0),
    "missing_name": lambda lib, m: lib.spectral_norm(m, name="nope"),
}


@pytest.mark.parametrize("case", list(SN_ERRORS))
def test_spectral_norm_errors_match_torch(case):
    with pytest.raises(Exception) as t_err:
        SN_ERRORS[case](TP, torch.nn.Linear(3, 4))
    with pytest.raises(type(t_err.value)) as j_err:
        SN_ERRORS[case](P, nn.Linear(3, 4))
    if case != "missing_name":  # that message embeds the module's repr
        assert str(j_err.value) == str(t_err.value)


ORTH_CASES = [
    ((4, 4), {}),
    ((4, 4), {"orthogonal_map": "cayley"}),
    ((4, 4), {"use_trivialization": False}),
    ((3, 5), {}),  # weight (5, 3): householder by default
    ((5, 3), {"orthogonal_map": "matrix_exp"}),
    ((5, 3), {"orthogonal_map": "householder", "use_trivialization": False}),
    ((3, 5), {"orthogonal_map": "cayley", "use_trivialization": False}),
]


@pytest.mark.parametrize("shape,kw", ORTH_CASES)
def test_orthogonal_matches_torch(shape, kw):
    t = torch.nn.Linear(*shape)
    j = nn.Linear(*shape)
    j.load_state_dict(t.state_dict())
    TP.orthogonal(t, **kw)
    P.orthogonal(j, **kw)
    assert _shapes(j) == _shapes(t)
    if not kw.get("use_trivialization", True):
        # No randomness involved: registration computed the same original from the same weight.
        assert_close(
            j.parametrizations.weight.original, t.parametrizations.weight.original, atol=1e-5
        )
    # Move away from the registration point, where the maps are trivial. Off the diagonal only:
    # householder reads the diagonal's integer part as signs.
    noise = randn(*t.weight.shape, seed=4) * (1 - np.eye(*t.weight.shape, dtype=np.float32))
    with torch.no_grad():
        t.parametrizations.weight.original.add_(0.3 * to_torch(noise))
    j.load_state_dict(t.state_dict())
    w = np.asarray(j.weight)
    small = min(w.shape)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    assert_close(gram, np.eye(small, dtype=np.float32), atol=1e-5)
    # matrix_exp / solve / QR in float32: agreement to a few ulps of the O(1) entries.
    assert_close(j.weight, t.weight, atol=1e-5)
    x = randn(2, shape[0])
    assert_close(j(jnp.asarray(x)), t(to_torch(x)), atol=1e-5)
    _grads_vs_torch(t, j, x, rtol=1e-4, atol=1e-5)


def test_orthogonal_assignment_and_errors():
    j = P.orthogonal(nn.Linear(4, 4))
    q = np.linalg.qr(randn(4, 4, seed=8))[0].astype(np.float32)
    j.weight = jnp.asarray(q)
    assert_close(j.weight, q, atol=1e-5)
    with pytest.raises(
        ValueError, match="Expected a matrix or batch of matrices. Got a tensor of 1 dimensions."
    ):
        P.orthogonal(nn.Linear(2, 2), name="bias")
    with pytest.raises(
        ValueError, match='orthogonal_map has to be one of "matrix_exp", "cayley", "householder"'
    ):
        P.orthogonal(nn.Linear(2, 2), orthogonal_map="qr")
    j = P.orthogonal(nn.Linear(3, 3), use_trivialization=False)
    with pytest.raises(NotImplementedError, match="use_trivialization=False"):
        j.weight = jnp.asarray(np.eye(3, dtype=np.float32))
    with pytest.raises(NotImplementedError):
        t = TP.orthogonal(torch.nn.Linear(3, 3), use_trivialization=False)
        t.weight = torch.eye(3)


# ---- register_parametrization / remove_parametrizations -----------------------------------------


class JSymmetric(nn.Module):
    def forward(self, x):
        return jnp.triu(x) + jnp.triu(x, 1).T

    def right_inverse(self, a):
        return jnp.triu(a)


class TSymmetric(torch.nn.Module):
    def forward(self, x):
        return x.triu() + x.triu(1).T

    def right_inverse(self, a):
        return a.triu()


class JScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(jnp.asarray(2.0))

    def forward(self, x):
        return x * self.scale


class TScale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        return x * self.scale


def _square_pair():
    t = torch.nn.Linear(3, 3)
    j = nn.Linear(3, 3)
    j.load_state_dict(t.state_dict())
    return t, j


def test_custom_parametrization_chain_matches_torch():
    t, j = _square_pair()
    TZ.register_parametrization(t, "weight", TSymmetric())
    Z.register_parametrization(j, "weight", JSymmetric())
    TZ.register_parametrization(t, "weight", TScale())
    Z.register_parametrization(j, "weight", JScale())
    assert _shapes(j) == _shapes(t)
    assert [k for k, _ in j.named_parameters()] == [k for k, _ in t.named_parameters()]
    assert repr(j).replace("JS", "TS") == repr(t)
    j.load_state_dict(t.state_dict())
    assert_close(j.weight, t.weight)
    assert (
        Z.is_parametrized(j) and Z.is_parametrized(j, "weight") and not Z.is_parametrized(j, "bias")
    )
    assert Z.type_before_parametrizations(j) is nn.Linear
    x = randn(4, 3)
    assert_close(j(jnp.asarray(x)), t(to_torch(x)))
    _grads_vs_torch(t, j, x)


def test_parametrized_module_is_a_pytree_and_copies():
    _, j = _square_pair()
    Z.register_parametrization(j, "weight", JSymmetric())
    leaves, treedef = jax.tree.flatten(j)
    clone = jax.tree.unflatten(treedef, [v * 2 for v in leaves])
    assert type(clone) is type(j)
    assert_close(clone.weight, j.weight * 2)
    dup = copy.deepcopy(j)
    assert (
        type(dup) is type(j)
        and dup.parametrizations.weight.original is not j.parametrizations.weight.original
    )
    assert_close(dup.weight, j.weight)
    with pytest.raises(RuntimeError, match="only supported through state_dict"):
        pickle.dumps(j)


@pytest.mark.parametrize("leave", [True, False])
def test_remove_parametrizations_matches_torch(leave):
    t, j = _square_pair()
    TZ.register_parametrization(t, "weight", TSymmetric())
    Z.register_parametrization(j, "weight", JSymmetric())
    TZ.remove_parametrizations(t, "weight", leave_parametrized=leave)
    Z.remove_parametrizations(j, "weight", leave_parametrized=leave)
    assert type(j) is nn.Linear and not hasattr(j, "parametrizations")
    assert _shapes(j) == _shapes(t) and isinstance(j._parameters["weight"], nn.Parameter)
    assert_close(j.weight, t.weight)
    x = randn(2, 3)
    assert_close(j(jnp.asarray(x)), t(to_torch(x)))


def test_remove_weight_norm_keeps_the_computed_weight():
    t, j = _linear_pair()
    TP.weight_norm(t)
    P.weight_norm(j)
    TZ.remove_parametrizations(t, "weight")
    Z.remove_parametrizations(j, "weight")
    assert _shapes(j) == _shapes(t) and type(j) is nn.Linear
    assert isinstance(j._parameters["weight"], nn.Parameter)
    assert_close(j.weight, t.weight)


def test_parametrizing_a_buffer():
    class JM(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", jnp.asarray(randn(3, 3)))

    class TM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", to_torch(randn(3, 3)))

    t, j = TM(), JM()
    TZ.register_parametrization(t, "table", TSymmetric())
    Z.register_parametrization(j, "table", JSymmetric())
    assert _shapes(j) == _shapes(t)
    assert [k for k, _ in j.named_buffers()] == [k for k, _ in t.named_buffers()]
    assert_close(j.table, t.table)


def test_cached_computes_once():
    calls = []

    class Counting(nn.Module):
        def forward(self, x):
            calls.append(1)
            return x * 1.0

    _, j = _square_pair()
    Z.register_parametrization(j, "weight", Counting(), unsafe=True)
    calls.clear()
    with Z.cached():
        a, b = j.weight, j.weight
    assert a is b and len(calls) == 1
    _ = j.weight
    assert len(calls) == 2


def test_transfer_parametrizations_and_params():
    t_from, j_from = _square_pair()
    TZ.register_parametrization(t_from, "weight", TSymmetric())
    Z.register_parametrization(j_from, "weight", JSymmetric())
    t_to, j_to = _square_pair()
    TZ.transfer_parametrizations_and_params(t_from, t_to)
    Z.transfer_parametrizations_and_params(j_from, j_to)
    assert _shapes(j_to) == _shapes(t_to)
    assert j_to.parametrizations.weight.original is j_from.parametrizations.weight.original
    assert_close(j_to.weight, j_from.weight)


class JWiden(nn.Module):
    def forward(self, x):
        return jnp.concatenate([x, x])


class TWiden(torch.nn.Module):
    def forward(self, x):
        return torch.cat([x, x])


class JToInt(nn.Module):
    def forward(self, x):
        return x.astype(jnp.int32)


class TToInt(torch.nn.Module):
    def forward(self, x):
        return x.to(torch.int32)


REG_ERRORS = {
    "missing_name": lambda Zm, lib, m, p: Zm.register_parametrization(m, "nope", p["sym"]),
    "shape_change": lambda Zm, lib, m, p: Zm.register_parametrization(m, "weight", p["widen"]),
    "dtype_change": lambda Zm, lib, m, p: Zm.register_parametrization(m, "weight", p["int"]),
    "remove_unparametrized": lambda Zm, lib, m, p: Zm.remove_parametrizations(m, "weight"),
    "chain_shape_change": lambda Zm, lib, m, p: (
        Zm.register_parametrization(m, "weight", p["sym"]),
        Zm.register_parametrization(m, "weight", p["widen"]),
    ),
    "leave_unparametrized_sequence": lambda Zm, lib, m, p: (
        lib.weight_norm(m),
        Zm.remove_parametrizations(m, "weight", leave_parametrized=False),
    ),
    "assign_parameter_over_property": lambda Zm, lib, m, p: (
        Zm.register_parametrization(m, "weight", p["sym"]),
        setattr(m, "weight", p["param"]),
    ),
}


@pytest.mark.parametrize("case", list(REG_ERRORS))
def test_registration_errors_match_torch(case):
    tp = {
        "sym": TSymmetric(),
        "widen": TWiden(),
        "int": TToInt(),
        "param": torch.nn.Parameter(torch.zeros(3, 3)),
    }
    jp = {
        "sym": JSymmetric(),
        "widen": JWiden(),
        "int": JToInt(),
        "param": nn.Parameter(jnp.zeros((3, 3))),
    }
    with pytest.raises(Exception) as t_err:
        REG_ERRORS[case](TZ, TP, torch.nn.Linear(3, 3), tp)
    with pytest.raises(type(t_err.value)) as j_err:
        REG_ERRORS[case](Z, P, nn.Linear(3, 3), jp)
    t_msg = str(t_err.value).replace("torch.float32", "float32").replace("torch.int32", "int32")
    t_msg = t_msg.replace("torch.Size([6, 3])", "(6, 3)").replace("torch.Size([3, 3])", "(3, 3)")
    if case in ("shape_change", "chain_shape_change", "leave_unparametrized_sequence"):
        assert str(j_err.value) == t_msg


@pytest.mark.parametrize(
    "fn", ["weight_norm", "remove_weight_norm", "spectral_norm", "remove_spectral_norm"]
)
def test_old_style_hook_norms_point_to_parametrizations(fn):
    with pytest.raises(NotImplementedError, match="parametriz"):
        getattr(nn.utils, fn)(nn.Linear(2, 2))
