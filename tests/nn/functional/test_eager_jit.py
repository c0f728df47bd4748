"""Functionals whose pure part runs as one cached program when called eagerly
(`nn/functional/_eager_jit.py`): same results as op by op, checks still raise, torch agrees."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn import functional as F
from jaxmodule.nn.functional import _eager_jit

from tests.helpers import assert_close

RNG = np.random.default_rng(0)


def _both(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """(cached, op by op) results of fn."""
    cached = fn(*args, **kwargs)
    previous = _eager_jit.set_eager_jit(False)
    try:
        return cached, fn(*args, **kwargs)
    finally:
        _eager_jit.set_eager_jit(previous)


def test_a_wrapped_function_uses_one_program_per_static_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    traces = []

    @_eager_jit.jit_when_eager(static_argnames=("p",))
    def f(x: jax.Array, *, p: int) -> jax.Array:
        traces.append(p)
        return x**p

    x = jnp.arange(3.0)
    for _ in range(3):
        f(x, p=2)
    f(x, p=3)
    assert traces == [2, 3]
    jax.jit(lambda v: f(v, p=2))(x)  # under an outer trace: inline
    assert traces == [2, 3, 2]
    assert f(np.arange(3.0), p=2).tolist() == [0.0, 1.0, 4.0]  # numpy input: inline, same answer


@pytest.mark.parametrize("mask", [None, "bool", "float"])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_torch_and_the_plain_path(mask: str | None, causal: bool) -> None:
    q, k, v = (RNG.standard_normal((2, 3, 5, 4)).astype(np.float32) for _ in range(3))
    m = None
    if mask == "bool":
        m = RNG.random((5, 5)) > 0.3
    elif mask == "float":
        m = RNG.standard_normal((5, 5)).astype(np.float32)
    cached, plain = _both(
        F.scaled_dot_product_attention,
        jnp.asarray(q),
        jnp.asarray(k),
        jnp.asarray(v),
        attn_mask=None if m is None else jnp.asarray(m),
        is_causal=causal,
    )
    want = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q),
        torch.from_numpy(k),
        torch.from_numpy(v),
        attn_mask=None if m is None else torch.from_numpy(m),
        is_causal=causal,
    )
    assert_close(cached, plain)
    assert_close(cached, want.numpy())


def test_attention_mask_dtype_error_is_torch_s() -> None:
    q = jnp.ones((1, 2, 3))
    with pytest.raises(RuntimeError, match="Expected attn_mask dtype to be bool or float"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=jnp.ones((2, 2), jnp.int32))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_and_cross_entropy_match_torch(reduction: str) -> None:
    x = RNG.standard_normal((6, 4)).astype(np.float32)
    t = np.array([0, 3, 1, -100, 2, 3])
    w = RNG.random(4).astype(np.float32)
    for name in ("nll_loss", "cross_entropy"):
        cached, plain = _both(
            getattr(F, name),
            jnp.asarray(x),
            jnp.asarray(t),
            weight=jnp.asarray(w),
            reduction=reduction,
        )
        want = getattr(torch.nn.functional, name)(
            torch.from_numpy(x),
            torch.from_numpy(t),
            weight=torch.from_numpy(w),
            reduction=reduction,
        )
        assert_close(cached, plain)
        assert_close(cached, want.numpy())


def test_nll_target_out_of_range_still_raises() -> None:
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        F.nll_loss(jnp.zeros((2, 3)), jnp.asarray([0, 7]))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16])
def test_softmax_family_dtypes(dtype: Any) -> None:
    x = jnp.asarray(RNG.standard_normal((3, 5)), dtype)
    for fn in (F.softmax, F.softmin, F.log_softmax):
        cached, plain = _both(fn, x, dim=1)
        assert cached.dtype == plain.dtype == dtype
        assert_close(cached.astype(jnp.float32), plain.astype(jnp.float32))


def test_clip_grad_norm_matches_torch() -> None:
    grads = [RNG.standard_normal(s).astype(np.float32) for s in ((3, 4), (4,), (2, 2))]
    ps = [nn.Parameter(jnp.zeros(g.shape)) for g in grads]
    tps = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, tp, g in zip(ps, tps, grads):
        p.grad, tp.grad = jnp.asarray(g), torch.from_numpy(g.copy())
    total = nn.utils.clip_grad_norm_(ps, 0.5)
    want = torch.nn.utils.clip_grad_norm_(tps, 0.5)
    assert_close(total, want.numpy())
    for p, tp in zip(ps, tps):
        assert_close(p.grad, tp.grad.numpy())
