"""Differential tests of jaxmodule.nn.functional pooling against torch."""

import jax
import jax.numpy as jnp
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch.nn.functional as TF

from tests.helpers import assert_close, randn, to_torch


def _check(jm_fn, torch_fn, x, kwargs, n_out=1, rtol=1e-5, atol=1e-6):
    """Compare values (and indices when n_out == 2) and the input gradient of a weighted sum."""
    tx = to_torch(x, requires_grad=True)
    t_res = torch_fn(tx, **kwargs)
    t_out = t_res[0] if n_out == 2 else t_res
    ct = randn(*t_out.shape, seed=99)
    (t_out * to_torch(ct)).sum().backward()
    res = jm_fn(jnp.asarray(x), **kwargs)
    out = res[0] if n_out == 2 else res
    assert_close(out, t_out, rtol, atol)
    if n_out == 2:
        np.testing.assert_array_equal(np.asarray(res[1]), t_res[1].numpy())

    def loss(v):
        r = jm_fn(v, **kwargs)
        return ((r[0] if n_out == 2 else r) * ct).sum()

    assert_close(jax.grad(loss)(jnp.asarray(x)), tx.grad, rtol, atol)


MAX2D = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), dilation=(2, 1), ceil_mode=True),
    dict(kernel_size=2, stride=3, padding=1, ceil_mode=True),  # last window would start in padding
    dict(kernel_size=3, stride=1, dilation=2),
]


@pytest.mark.parametrize("kwargs", MAX2D)
@pytest.mark.parametrize("return_indices", [False, True])
def test_max_pool2d(kwargs, return_indices):
    x = randn(2, 3, 8, 7, seed=1)
    _check(
        F.max_pool2d,
        TF.max_pool2d,
        x,
        dict(kwargs, return_indices=return_indices),
        n_out=2 if return_indices else 1,
    )


@pytest.mark.parametrize("return_indices", [False, True])
def test_max_pool1d_3d(return_indices):
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=return_indices)
    n = 2 if return_indices else 1
    _check(F.max_pool1d, TF.max_pool1d, randn(2, 3, 10, seed=1), kw, n_out=n)
    _check(F.max_pool3d, TF.max_pool3d, randn(2, 5, 6, 7, seed=2), kw, n_out=n)  # unbatched


def test_max_pool_with_indices_functions():
    x = randn(1, 2, 6, 6, seed=3)
    v, i = F.max_pool2d_with_indices(x, 2)
    tv, ti = TF.max_pool2d_with_indices(to_torch(x), 2)
    assert_close(v, tv)
    np.testing.assert_array_equal(np.asarray(i), ti.numpy())


AVG2D = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 4), stride=(3, 2), padding=(1, 2), ceil_mode=True),
    dict(kernel_size=3, padding=1, divisor_override=5),
]


@pytest.mark.parametrize("kwargs", AVG2D)
def test_avg_pool2d(kwargs):
    _check(F.avg_pool2d, TF.avg_pool2d, randn(2, 3, 8, 7, seed=1), kwargs)


def test_avg_pool1d_3d():
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    _check(F.avg_pool1d, TF.avg_pool1d, randn(2, 3, 10, seed=1), kw)
    _check(F.avg_pool3d, TF.avg_pool3d, randn(2, 2, 5, 6, 7, seed=2), dict(kw, divisor_override=7))
    _check(F.avg_pool3d, TF.avg_pool3d, randn(2, 5, 6, 7, seed=3), kw)  # unbatched


def test_avg_pool_bfloat16_accumulates_in_float32():
    x = randn(1, 2, 8, 8, seed=4)
    out = F.avg_pool2d(jnp.asarray(x, jnp.bfloat16), 4)
    expected = TF.avg_pool2d(to_torch(x).bfloat16(), 4)
    assert out.dtype == jnp.bfloat16
    assert_close(out, expected, rtol=1e-2, atol=1e-2)  # bfloat16 has 8 mantissa bits


@pytest.mark.parametrize("size", [3, (4, 2), (None, 3), (7, 5), 1])
def test_adaptive_avg_pool2d(size):
    _check(
        F.adaptive_avg_pool2d,
        TF.adaptive_avg_pool2d,
        randn(2, 3, 7, 5, seed=1),
        dict(output_size=size),
    )


def test_adaptive_avg_pool1d_3d():
    _check(
        F.adaptive_avg_pool1d, TF.adaptive_avg_pool1d, randn(2, 3, 10, seed=1), dict(output_size=4)
    )
    _check(
        F.adaptive_avg_pool3d,
        TF.adaptive_avg_pool3d,
        randn(2, 5, 6, 7, seed=2),
        dict(output_size=(2, 4, 3)),
    )


@pytest.mark.parametrize("size", [3, (4, 2), (None, 3)])
@pytest.mark.parametrize("return_indices", [False, True])
def test_adaptive_max_pool2d(size, return_indices):
    _check(
        F.adaptive_max_pool2d,
        TF.adaptive_max_pool2d,
        randn(2, 3, 7, 5, seed=1),
        dict(output_size=size, return_indices=return_indices),
        n_out=2 if return_indices else 1,
    )


def test_adaptive_max_pool1d_3d():
    _check(
        F.adaptive_max_pool1d,
        TF.adaptive_max_pool1d,
        randn(2, 3, 10, seed=1),
        dict(output_size=4, return_indices=True),
        n_out=2,
    )
    _check(
        F.adaptive_max_pool3d,
        TF.adaptive_max_pool3d,
        randn(2, 2, 5, 6, 7, seed=2),
        dict(output_size=(2, 4, 3), return_indices=True),
        n_out=2,
    )


@pytest.mark.parametrize("p", [2.0, 3, 1.5, float("inf")])
def test_lp_pool(p):
    x = np.abs(randn(2, 3, 8, 7, seed=1)) + 0.1  # positive: non-integer powers of negatives are NaN
    _check(F.lp_pool2d, TF.lp_pool2d, x, dict(norm_type=p, kernel_size=3, stride=2, ceil_mode=True))
    _check(F.lp_pool1d, TF.lp_pool1d, x[0], dict(norm_type=p, kernel_size=2))
    _check(F.lp_pool3d, TF.lp_pool3d, x, dict(norm_type=p, kernel_size=2))


def test_lp_pool_zero_window_has_zero_gradient():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[..., :2, :2] = randn(2, 2, seed=2)
    _check(F.lp_pool2d, TF.lp_pool2d, x, dict(norm_type=2, kernel_size=2))


@pytest.mark.parametrize(
    "nd, kwargs",
    [
        (1, dict(kernel_size=2)),
        (2, dict(kernel_size=3, stride=2, padding=1)),
        (2, dict(kernel_size=2, output_size=(7, 9))),
        (3, dict(kernel_size=2)),
    ],
)
def test_max_unpool(nd, kwargs):
    pool = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}[nd]
    t_unpool = {1: TF.max_unpool1d, 2: TF.max_unpool2d, 3: TF.max_unpool3d}[nd]
    unpool = {1: F.max_unpool1d, 2: F.max_unpool2d, 3: F.max_unpool3d}[nd]
    x = randn(2, 3, *(7, 9, 6)[:nd], seed=1) if nd < 3 else randn(2, 4, 6, 4, seed=1)
    pkw = {k: v for k, v in kwargs.items() if k != "output_size"}
    vals, idx = pool(to_torch(x), return_indices=True, **pkw)
    _check(
        lambda v, **kw: unpool(v, jnp.asarray(idx.numpy()), **kw),
        lambda v, **kw: t_unpool(v, idx, **kw),
        vals.numpy(),
        kwargs,
    )


def test_max_pool_jit_and_vmap():
    x = randn(4, 2, 6, 6, seed=5)
    out = jax.jit(lambda v: F.max_pool2d(v, 3, 2, 1, return_indices=True))(x)
    tv, ti = TF.max_pool2d(to_torch(x), 3, 2, 1, return_indices=True)
    assert_close(out[0], tv)
    np.testing.assert_array_equal(np.asarray(out[1]), ti.numpy())
    vm = jax.vmap(lambda v: F.avg_pool2d(v, 2))(x)
    assert_close(vm, TF.avg_pool2d(to_torch(x), 2))


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: F.max_pool2d(jnp.ones((1, 4, 5, 5)), 3, padding=2),
            "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3 and dilation=1",
        ),
        (lambda: F.avg_pool2d(jnp.ones((1, 4, 5, 5)), 3, padding=2), "pad should be at most half"),
        (
            lambda: F.max_pool2d(jnp.ones((1, 4, 5, 5)), 7),
            "Given input size: \\(4x5x5\\). Calculated output size: \\(4x0x0\\). Output size is too small",
        ),
        (
            lambda: F.max_pool2d(jnp.ones((1, 4, 5, 5)), 2, stride=0),
            "stride should be greater than zero",
        ),
        (
            lambda: F.max_pool2d(jnp.ones((5, 5)), 2),
            "non-empty 3D or 4D \\(batch mode\\) tensor expected",
        ),
        (
            lambda: F.avg_pool2d(jnp.ones((1, 4, 5, 5)), 2, divisor_override=0),
            "divisor must be not zero",
        ),
        (lambda: F.adaptive_avg_pool2d(jnp.ones((5, 5)), 2), "Expected 3D or 4D tensor"),
        (lambda: F.adaptive_avg_pool2d(jnp.ones((1, 4, 5, 5)), (2, 2, 2)), "output_size must be 2"),
        (
            lambda: F.max_unpool2d(jnp.ones((1, 4, 5, 5)), jnp.full((1, 4, 5, 5), 100), 2),
            "Found an invalid max index: 100 \\(output volumes are of size 10x10\\)",
        ),
    ],
)
def test_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_unpool_output_size_error():
    with pytest.raises(ValueError, match="invalid output_size"):
        F.max_unpool2d(
            jnp.ones((1, 1, 2, 2)), jnp.zeros((1, 1, 2, 2), jnp.int32), 2, output_size=(9, 9)
        )


def test_avg_pool_integer_input_not_implemented():
    with pytest.raises(NotImplementedError, match="integer `input`"):
        F.avg_pool2d(jnp.ones((1, 1, 4, 4), jnp.int32), 2)


@pytest.mark.parametrize(
    "nd, shape, kernel, kwargs",
    [
        (2, (2, 3, 9, 11), (2, 3), dict(output_size=(4, 5))),
        (2, (3, 10, 7), 3, dict(output_ratio=(0.5, 0.5))),
        (3, (2, 2, 6, 7, 8), 2, dict(output_size=(3, 4, 5))),
    ],
)
def test_fractional_max_pool_with_fixed_samples(nd, shape, kernel, kwargs):
    batch = 1 if len(shape) == nd + 1 else shape[0]
    samples = np.random.default_rng(5).uniform(size=(batch, shape[-nd - 1], nd)).astype(np.float32)
    t_fn = TF.fractional_max_pool2d if nd == 2 else TF.fractional_max_pool3d
    fn = F.fractional_max_pool2d if nd == 2 else F.fractional_max_pool3d
    kw = dict(kwargs, _random_samples=samples)
    _check(
        lambda v, **k: fn(v, kernel, return_indices=True, **k),
        lambda v, **k: t_fn(
            v,
            kernel,
            return_indices=True,
            _random_samples=to_torch(samples),
            **{a: b for a, b in k.items() if a != "_random_samples"},
        ),
        randn(*shape, seed=1),
        kw,
        n_out=2,
    )


def test_fractional_max_pool_random_samples_vary_and_stay_valid():
    x = jnp.asarray(randn(1, 4, 11, 11, seed=2))  # 11 -> 5: placement depends on the samples
    a, b = (
        F.fractional_max_pool2d(x, 2, output_size=5),
        F.fractional_max_pool2d(x, 2, output_size=5),
    )
    assert a.shape == (1, 4, 5, 5)
    assert not np.array_equal(np.asarray(a), np.asarray(b))  # fresh samples from the generator
    # every output is the maximum of some 2x2 window of its plane
    windows = np.asarray(F.max_pool2d(x, 2, stride=1))
    for plane in range(4):
        assert np.isin(np.asarray(a)[0, plane], windows[0, plane]).all()


def test_max_pool_nan_propagates_with_torch_index():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 2, 2] = x[0, 0, 3, 3] = np.nan  # two NaNs share the last window
    for fn, t_fn, arg in [
        (F.max_pool2d, TF.max_pool2d, 2),
        (F.adaptive_max_pool2d, TF.adaptive_max_pool2d, 3),
    ]:
        v, i = fn(x, arg, return_indices=True)
        tv, ti = t_fn(to_torch(x), arg, return_indices=True)
        np.testing.assert_array_equal(np.asarray(v), tv.numpy())  # NaNs in the same places
        np.testing.assert_array_equal(np.asarray(i), ti.numpy())  # torch keeps the last NaN
    np.testing.assert_array_equal(
        np.asarray(F.max_pool2d(x, 2)), TF.max_pool2d(to_torch(x), 2).numpy()
    )
