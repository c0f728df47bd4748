"""Random sampling functions drawing from jaxmodule's global generator (or `generator=`).

Each call splits a fresh key off the generator, so draws differ between calls and repeat after
`jaxmodule.manual_seed`. Inside `jaxmodule.compile` the generator is threaded through the
compiled program and advances on every call; inside a plain `jax.jit` drawing from a global
generator raises (its new key would escape the trace): pass a traced `Generator` or use
`jaxmodule.compile`. `rand`, `randn`, `randint`, `rand_like` and `randn_like` live in
`jaxmodule/_tensor.py`. The streams differ from torch's (a different generator).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .._random import Generator, next_key
from .._tensor import _on
from ._common import arr, canon_dtype, float_dtype, int_list, is_int_or_bool, long_dtype

__all__ = ["randperm", "multinomial", "bernoulli", "normal", "poisson", "randint_like"]


def randperm(
    n: int, *, generator: Generator | None = None, dtype: Any = None, device: Any = None
) -> jax.Array:
    """A random permutation of 0..n-1. Mirrors `torch.randperm` (int32 by default here: x64 is off)."""
    if n < 0:
        raise RuntimeError(f"randperm: n must be non-negative, got {n}")
    dt = long_dtype() if dtype is None else canon_dtype(dtype)
    return _on(jax.random.permutation(next_key(generator), int(n)).astype(dt), device)


def _check_probs(x: jax.Array) -> None:
    """torch's eager checks of a multinomial weight array (skipped when traced)."""
    if isinstance(x, jax.core.Tracer):
        return
    if bool(jnp.any(x < 0)) or not bool(jnp.all(jnp.isfinite(x))):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if bool(jnp.any(jnp.sum(x, axis=-1) <= 0)):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")


def multinomial(
    input: Any, num_samples: int, replacement: bool = False, *, generator: Generator | None = None
) -> jax.Array:
    """Draw `num_samples` category indices per row of non-negative weights (1-d or 2-d).

    Mirrors `torch.multinomial`. Without replacement the indices in a row are distinct (the
    Gumbel top-k trick: sampling proportional to weight, one at a time, without replacement).
    Weight checks (negative, non-finite, zero rows, too few non-zero categories) run eagerly
    only; under jit such rows give unspecified indices.

    >>> import jax.numpy as jnp, jaxmodule
    >>> _ = jaxmodule.manual_seed(0)
    >>> sorted(multinomial(jnp.ones(4), 4).tolist())
    [0, 1, 2, 3]
    """
    w = arr(input)
    if w.ndim not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got {w.ndim}")
    if not jnp.issubdtype(w.dtype, jnp.floating):
        raise RuntimeError(
            f"multinomial only supports floating-point dtypes for input, got: {w.dtype}"
        )
    n = w.shape[-1]
    if num_samples <= 0:
        raise RuntimeError(f"cannot sample n_sample <= 0 samples, got {num_samples}")
    if not replacement and num_samples > n:
        raise RuntimeError(
            "cannot sample n_sample > prob_dist.size(-1) samples without replacement"
        )
    _check_probs(w)
    logits = jnp.log(w.astype(jnp.float32))
    key = next_key(generator)
    if replacement:
        out = jax.random.categorical(key, logits, axis=-1, shape=(num_samples,) + w.shape[:-1])
        out = jnp.moveaxis(out, 0, -1)
    else:
        if not isinstance(w, jax.core.Tracer) and bool(
            jnp.any(jnp.sum(w > 0, axis=-1) < num_samples)
        ):
            raise RuntimeError(
                "invalid multinomial distribution (with replacement=False, not enough "
                "non-negative category to sample)"
            )
        perturbed = logits + jax.random.gumbel(key, logits.shape)
        out = jax.lax.top_k(perturbed, num_samples)[1]
    return out.astype(long_dtype())


def bernoulli(
    input: Any, p: float | None = None, *, generator: Generator | None = None
) -> jax.Array:
    """0/1 draws with probability `input` (or the number `p`), in input's dtype. Mirrors `torch.bernoulli`."""
    x = arr(input)
    prob = x if p is None else jnp.full(x.shape, p, float_dtype(x.dtype))
    return jax.random.bernoulli(next_key(generator), prob, x.shape).astype(x.dtype)


def normal(
    mean: Any = 0.0,
    std: Any = 1.0,
    size: Any = None,
    *,
    generator: Generator | None = None,
    dtype: Any = None,
    device: Any = None,
) -> jax.Array:
    """Normal draws with element-wise `mean`/`std` (arrays broadcast) or numbers and `size`.

    Mirrors `torch.normal`'s forms: (Tensor, Tensor), (Tensor, float), (float, Tensor),
    (float, float, size).
    """
    m_num, s_num = isinstance(mean, (int, float)), isinstance(std, (int, float))
    if m_num and s_num:
        if size is None:
            raise TypeError("normal(): with numbers for mean and std, pass `size`")
        dt = canon_dtype(dtype)
        return _on(
            mean + std * jax.random.normal(next_key(generator), int_list((size,)), dt), device
        )
    m, s = (jnp.asarray(mean) if m_num else arr(mean)), (jnp.asarray(std) if s_num else arr(std))
    dt = canon_dtype(dtype) if dtype is not None else float_dtype(m.dtype if not m_num else s.dtype)
    if not isinstance(s, jax.core.Tracer) and not s_num and bool(jnp.any(s < 0)):
        raise RuntimeError("normal expects all elements of std >= 0.0")
    if s_num and std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    shape = jnp.broadcast_shapes(m.shape, s.shape)
    z = jax.random.normal(next_key(generator), shape, dt)
    return _on(m.astype(dt) + s.astype(dt) * z, device)


def poisson(input: Any, generator: Generator | None = None) -> jax.Array:
    """Poisson draws with rates `input`, in input's dtype. Mirrors `torch.poisson`."""
    x = arr(input)
    return jax.random.poisson(next_key(generator), x, x.shape).astype(x.dtype)


def randint_like(
    input: Any,
    low: int = 0,
    high: int | None = None,
    *,
    generator: Generator | None = None,
    dtype: Any = None,
) -> jax.Array:
    """Integers in [low, high) shaped like `input` (`randint_like(x, high)` too). Mirrors `torch.randint_like`."""
    x = arr(input)
    if high is None:
        low, high = 0, low
    dt = x.dtype if dtype is None else canon_dtype(dtype)
    draw_dt = dt if is_int_or_bool(dt) and dt != jnp.bool_ else jnp.int32
    return jax.random.randint(next_key(generator), x.shape, low, high, draw_dt).astype(dt)
