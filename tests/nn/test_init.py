"""jaxmodule.nn.init against torch.nn.init: exact for deterministic fills, statistical for random ones."""

import math

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule.nn import Buffer, Parameter, init

from tests.helpers import assert_close, to_numpy


def _p(*shape, dtype=jnp.float32):
    return Parameter(jnp.zeros(shape, dtype))


# ---- deterministic ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "nl,param",
    [
        ("linear", None),
        ("conv2d", None),
        ("conv_transpose3d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", 3),
        ("selu", None),
    ],
)
def test_calculate_gain(nl, param):
    got, want = init.calculate_gain(nl, param), torch.nn.init.calculate_gain(nl, param)
    assert got == want and type(got) is type(want)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        init.calculate_gain("foo")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape", [(4, 3), (8, 2, 3), (5, 4, 3, 2), (2, 3, 1, 2, 2)])
def test_fans(shape):
    got = init._calculate_fan_in_and_fan_out(_p(*shape))
    assert got == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def test_fans_error():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(_p(3))


def test_constant_ones_zeros():
    p = _p(2, 3)
    assert init.constant_(p, 0.3) is p
    assert_close(p, np.full((2, 3), 0.3, np.float32))
    init.ones_(p)
    assert_close(p, np.ones((2, 3), np.float32))
    init.zeros_(p)
    assert_close(p, np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4)])
def test_eye(shape):
    p = _p(*shape)
    assert init.eye_(p) is p
    assert_close(p, torch.nn.init.eye_(torch.empty(shape)))


def test_eye_error():
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
        init.eye_(_p(2, 2, 2))


@pytest.mark.parametrize(
    "shape,groups", [((4, 3, 5), 1), ((6, 4, 3, 3), 2), ((3, 5, 2, 3, 3), 1), ((6, 2, 3, 4), 3)]
)
def test_dirac(shape, groups):
    p = _p(*shape)
    assert init.dirac_(p, groups) is p
    assert_close(p, torch.nn.init.dirac_(torch.empty(shape), groups))


def test_dirac_errors():
    with pytest.raises(ValueError, match="Only tensors with 3, 4, or 5 dimensions are supported"):
        init.dirac_(_p(2, 2))
    with pytest.raises(ValueError, match="dim 0 must be divisible by groups"):
        init.dirac_(_p(5, 2, 3), groups=2)


def test_plain_array_rejected():
    with pytest.raises(TypeError, match="expected a Parameter or Buffer"):
        init.zeros_(jnp.ones(3))


def test_requires_grad_parameter_allowed_outside_no_grad():
    # torch's init functions run under no_grad themselves.
    p = _p(4, 4)
    assert p.requires_grad
    init.kaiming_uniform_(p)
    assert float(jnp.abs(p._value).max()) > 0


def test_buffer_and_data_view():
    b = Buffer(jnp.zeros((3, 3)))
    init.eye_(b)
    assert_close(b, np.eye(3, dtype=np.float32))
    p = _p(3, 3)
    init.ones_(p.data)
    assert_close(p, np.ones((3, 3), np.float32))


def test_dtype_preserved():
    p = _p(64, 64, dtype=jnp.bfloat16)
    init.xavier_uniform_(p)
    assert p.dtype == jnp.bfloat16
    assert float(jnp.abs(p._value.astype(jnp.float32)).max()) > 0


def test_mode_error():
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(_p(3, 3), mode="fan_avg")


def test_zero_element_warns():
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        init.kaiming_uniform_(_p(0, 3))
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        init.kaiming_normal_(_p(0, 3))


def test_deprecated_aliases():
    p = _p(3, 3)
    with pytest.warns(
        FutureWarning, match=r"`nn.init.eye` is now deprecated in favor of `nn.init.eye_`"
    ):
        init.eye(p)
    assert_close(p, np.eye(3, dtype=np.float32))


# ---- random: statistics ----------------------------------------------------------------------
N = 256  # 256 x 256 = 65536 samples: std error of the mean ~ std / 256


def _stats(p):
    a = to_numpy(p).astype(np.float64)
    return a.mean(), a.std(), a.min(), a.max()


def test_uniform():
    p = _p(N, N)
    assert init.uniform_(p, -2.0, 3.0) is p
    mean, std, lo, hi = _stats(p)
    assert lo >= -2.0 and hi < 3.0 and lo < -1.99 and hi > 2.99
    assert abs(mean - 0.5) < 0.03 and abs(std - 5 / math.sqrt(12)) < 0.02


def test_normal():
    p = _p(N, N)
    init.normal_(p, 1.5, 0.5)
    mean, std, _, _ = _stats(p)
    assert abs(mean - 1.5) < 0.01 and abs(std - 0.5) < 0.01


def test_trunc_normal():
    p = _p(N, N)
    init.trunc_normal_(p, mean=0.0, std=1.0, a=-1.0, b=2.0)
    mean, std, lo, hi = _stats(p)
    t = torch.empty(N, N)
    torch.nn.init.trunc_normal_(t, 0.0, 1.0, -1.0, 2.0)
    tm, ts = t.double().mean().item(), t.double().std().item()
    assert lo >= -1.0 and hi <= 2.0
    assert abs(mean - tm) < 0.02 and abs(std - ts) < 0.02


def test_trunc_normal_warns():
    with pytest.warns(UserWarning, match="mean is more than 2 std from"):
        init.trunc_normal_(_p(4, 4), mean=10.0)


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier(gain):
    shape = (N, N // 2, 2)
    fan_in, fan_out = N // 2 * 2, N * 2
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    p = _p(*shape)
    init.xavier_uniform_(p, gain=gain)
    mean, s, lo, hi = _stats(p)
    bound = math.sqrt(3.0) * std
    assert -bound <= lo and hi <= bound and abs(s - std) / std < 0.02 and abs(mean) < 0.02 * std
    init.xavier_normal_(p, gain=gain)
    mean, s, _, _ = _stats(p)
    assert abs(s - std) / std < 0.02 and abs(mean) < 0.02 * std


@pytest.mark.parametrize(
    "a,mode,nl",
    [
        (0, "fan_in", "leaky_relu"),
        (0.2, "fan_out", "leaky_relu"),
        (0, "fan_in", "relu"),
        (0, "fan_out", "tanh"),
    ],
)
def test_kaiming(a, mode, nl):
    shape = (N, N // 4, 2, 2)
    fan = (N // 4 * 4) if mode == "fan_in" else N * 4
    std = init.calculate_gain(nl, a) / math.sqrt(fan)
    p = _p(*shape)
    init.kaiming_uniform_(p, a=a, mode=mode, nonlinearity=nl)
    mean, s, lo, hi = _stats(p)
    bound = math.sqrt(3.0) * std
    assert -bound <= lo and hi <= bound and abs(s - std) / std < 0.02
    init.kaiming_normal_(p, a=a, mode=mode, nonlinearity=nl)
    mean, s, _, _ = _stats(p)
    assert abs(s - std) / std < 0.02 and abs(mean) < 0.02 * std


@pytest.mark.parametrize(
    "shape,gain", [((6, 6), 1.0), ((4, 10), 2.0), ((10, 4), 1.0), ((3, 2, 2, 2), 0.5)]
)
def test_orthogonal(shape, gain):
    p = _p(*shape)
    assert init.orthogonal_(p, gain=gain) is p
    w = to_numpy(p).reshape(shape[0], -1).astype(np.float64)
    if w.shape[0] <= w.shape[1]:
        prod, n = w @ w.T, w.shape[0]
    else:
        prod, n = w.T @ w, w.shape[1]
    np.testing.assert_allclose(prod, gain**2 * np.eye(n), atol=1e-5)


def test_orthogonal_error():
    with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions are supported"):
        init.orthogonal_(_p(3))


@pytest.mark.parametrize("rows,cols,sparsity", [(10, 6, 0.3), (7, 5, 0.5), (20, 3, 0.0)])
def test_sparse(rows, cols, sparsity):
    p = _p(rows, cols)
    assert init.sparse_(p, sparsity, std=0.1) is p
    w = to_numpy(p)
    zeros_per_col = (w == 0).sum(axis=0)
    assert (zeros_per_col == math.ceil(sparsity * rows)).all()


def test_sparse_error():
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
        init.sparse_(_p(2, 2, 2), 0.1)


def test_generator_and_seed():
    g1 = jaxmodule.Generator().manual_seed(3)
    g2 = jaxmodule.Generator().manual_seed(3)
    p, q = _p(4, 4), _p(4, 4)
    init.normal_(p, generator=g1)
    init.normal_(q, generator=g2)
    assert_close(p, q)
    jaxmodule.manual_seed(5)
    init.kaiming_uniform_(p)
    jaxmodule.manual_seed(5)
    init.kaiming_uniform_(q)
    assert_close(p, q)
    init.kaiming_uniform_(q)
    assert not np.allclose(to_numpy(p), to_numpy(q))


def test_signatures_and_names_match_torch():
    import inspect

    assert init.__all__ == torch.nn.init.__all__
    for name in init.__all__ + ["_calculate_fan_in_and_fan_out"]:
        ts = inspect.signature(getattr(torch.nn.init, name))
        js = inspect.signature(getattr(init, name))
        assert [(p.name, p.default) for p in js.parameters.values()] == [
            (p.name, p.default) for p in ts.parameters.values()
        ], name
