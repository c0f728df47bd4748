"""Products and norms: matmul, mm, bmm, baddbmm, addmm, einsum, outer, dot, norm, cdist, ...

As in torch, the matrix products do not promote: both operands must share a dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ..nn.functional.distance import _p_norm
from ._common import (
    arr,
    canon_dtype,
    check_floating,
    is_int_or_bool,
    promote,
    same_dtype,
    wrap_dim,
    wrap_dims,
)

__all__ = [
    "matmul",
    "mm",
    "bmm",
    "mv",
    "baddbmm",
    "addmm",
    "addmv",
    "addbmm",
    "einsum",
    "outer",
    "ger",
    "dot",
    "inner",
    "tensordot",
    "kron",
    "cross",
    "norm",
    "dist",
    "cdist",
]


def _shape_str(x: jax.Array) -> str:
    return "x".join(str(s) for s in x.shape)


def matmul(input: Any, other: Any) -> jax.Array:
    """Matrix product with numpy/torch broadcasting (1-d operands are vectors). Mirrors `torch.matmul`."""
    a, b = arr(input), arr(other)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and {b.ndim}D"
        )
    same_dtype("matmul", a, b)
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != k_b:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({_shape_str(a)} and {_shape_str(b)})"
        )
    try:
        return jnp.matmul(a, b)
    except (TypeError, ValueError) as e:  # batch dims that do not broadcast
        raise RuntimeError(f"matmul: {e}") from None


def _ndim(fn: str, x: jax.Array, n: int, name: str) -> None:
    if x.ndim != n:
        raise RuntimeError(f"{fn}: {name} must be a {n}D tensor, got {x.ndim}D")


def mm(input: Any, mat2: Any) -> jax.Array:
    """Product of two matrices. Mirrors `torch.mm`."""
    a, b = arr(input), arr(mat2)
    _ndim("mm", a, 2, "self")
    _ndim("mm", b, 2, "mat2")
    return matmul(a, b)


def bmm(input: Any, mat2: Any) -> jax.Array:
    """Batched product of (b, n, m) and (b, m, p) arrays, no broadcasting. Mirrors `torch.bmm`."""
    a, b = arr(input), arr(mat2)
    _ndim("bmm", a, 3, "batch1")
    _ndim("bmm", b, 3, "batch2")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(
            f"bmm: batch1 and batch2 must have the same batch size, got {a.shape[0]} and {b.shape[0]}"
        )
    return matmul(a, b)


def mv(input: Any, vec: Any) -> jax.Array:
    """Matrix times vector. Mirrors `torch.mv`."""
    a, v = arr(input), arr(vec)
    _ndim("mv", a, 2, "self")
    _ndim("mv", v, 1, "vec")
    return matmul(a, v)


def _scaled_sum(fn: str, input: Any, product: jax.Array, beta: Any, alpha: Any) -> jax.Array:
    """torch's beta * input + alpha * product; beta == 0 ignores input (its NaNs too)."""
    x = arr(input)
    if is_int_or_bool(product.dtype) and (isinstance(beta, float) or isinstance(alpha, float)):
        raise RuntimeError(
            f"{fn}: for integral input tensors, arguments beta and alpha must not be a floating point number."
        )
    p = product if alpha == 1 else product * jnp.asarray(alpha, product.dtype)
    if beta == 0:
        return jnp.broadcast_to(p, jnp.broadcast_shapes(x.shape, p.shape))
    same_dtype(fn, x, product)
    return (x if beta == 1 else x * jnp.asarray(beta, x.dtype)) + p


def baddbmm(input: Any, batch1: Any, batch2: Any, *, beta: Any = 1, alpha: Any = 1) -> jax.Array:
    """beta * input + alpha * bmm(batch1, batch2). Mirrors `torch.baddbmm`."""
    return _scaled_sum("baddbmm", input, bmm(batch1, batch2), beta, alpha)


def addmm(input: Any, mat1: Any, mat2: Any, *, beta: Any = 1, alpha: Any = 1) -> jax.Array:
    """beta * input + alpha * mm(mat1, mat2). Mirrors `torch.addmm`."""
    return _scaled_sum("addmm", input, mm(mat1, mat2), beta, alpha)


def addmv(input: Any, mat: Any, vec: Any, *, beta: Any = 1, alpha: Any = 1) -> jax.Array:
    """beta * input + alpha * mv(mat, vec). Mirrors `torch.addmv`."""
    return _scaled_sum("addmv", input, mv(mat, vec), beta, alpha)


def addbmm(input: Any, batch1: Any, batch2: Any, *, beta: Any = 1, alpha: Any = 1) -> jax.Array:
    """beta * input + alpha * sum over the batch of bmm(batch1, batch2). Mirrors `torch.addbmm`."""
    return _scaled_sum("addbmm", input, jnp.sum(bmm(batch1, batch2), axis=0), beta, alpha)


def einsum(equation: str, *operands: Any) -> jax.Array:
    """Einstein summation; operands may also be given as one list. Mirrors `torch.einsum`."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return jnp.einsum(equation, *(arr(o) for o in operands))


def outer(input: Any, vec2: Any) -> jax.Array:
    """Outer product of two vectors. Mirrors `torch.outer`."""
    a, b = promote(input, vec2)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"outer: expected 1D tensors, got {a.ndim}D and {b.ndim}D")
    return a[:, None] * b[None, :]


ger = outer


def dot(input: Any, tensor: Any) -> jax.Array:
    """Inner product of two 1-d arrays of one dtype. Mirrors `torch.dot`."""
    a, b = arr(input), arr(tensor)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a.shape != b.shape:
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src [{b.shape[0]}] "
            f"to have the same number of elements, but got {a.shape[0]} and {b.shape[0]} elements respectively"
        )
    same_dtype("dot", a, b)
    return jnp.dot(a, b)


def inner(input: Any, other: Any) -> jax.Array:
    """Sum of products over the last dims (scalars multiply). Mirrors `torch.inner`."""
    a, b = promote(input, other)
    if a.ndim and b.ndim and a.shape[-1] != b.shape[-1]:
        raise RuntimeError(
            f"inner() the last dimension must match on both input tensors but got shapes "
            f"{list(a.shape)} and {list(b.shape)}"
        )
    return jnp.inner(a, b)


def tensordot(a: Any, b: Any, dims: int | Sequence[Any] = 2) -> jax.Array:
    """Contract the last `dims` dims of `a` with the first of `b` (or the listed pairs). Mirrors `torch.tensordot`."""
    x, y = promote(a, b)
    axes = (
        dims
        if isinstance(dims, int)
        else tuple(tuple(d) if isinstance(d, (list, tuple)) else d for d in dims)
    )
    return jnp.tensordot(x, y, axes)


def kron(input: Any, other: Any) -> jax.Array:
    """Kronecker product. Mirrors `torch.kron`."""
    a, b = promote(input, other)
    return jnp.kron(a, b)


def cross(input: Any, other: Any, dim: int | None = None) -> jax.Array:
    """Cross product of 3-vectors along `dim` (the first size-3 dim when None). Mirrors `torch.cross`."""
    a, b = promote(input, other)
    a, b = jnp.broadcast_arrays(a, b)
    if dim is None:
        dim = next((i for i, s in enumerate(a.shape) if s == 3), None)
        if dim is None:
            raise RuntimeError("no dimension of size 3 in input")
    d = wrap_dim(dim, a.ndim)
    if a.shape[d] != 3:
        raise RuntimeError(
            f"linalg.cross: inputs dimension {d} must have length 3. Got {a.shape[d]} and {b.shape[d]}"
        )
    return jnp.cross(a, b, axis=d)


def norm(
    input: Any,
    p: float | str | None = "fro",
    dim: Any = None,
    keepdim: bool = False,
    dtype: Any = None,
) -> jax.Array:
    """Vector p-norm over `dim` (all elements when None); 'fro' is the 2-norm, 'nuc' the nuclear norm.

    Mirrors `torch.norm` (which forwards to `torch.linalg.vector_norm` / `matrix_norm`).

    >>> import jax.numpy as jnp
    >>> norm(jnp.array([[3.0, 4.0]]), dim=1)
    Array([5.], dtype=float32)
    """
    x = arr(input)
    if dtype is not None:
        x = x.astype(canon_dtype(dtype))
    check_floating("linalg.vector_norm", x)
    if p == "nuc":
        axes = wrap_dims(dim, x.ndim) or tuple(range(x.ndim))
        if len(axes) != 2:
            raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {list(axes)}")
        out = jnp.linalg.norm(jnp.moveaxis(x, axes, (-2, -1)), ord="nuc", axis=(-2, -1))
        return jnp.expand_dims(out, axes) if keepdim else out
    if isinstance(p, str) and p != "fro":
        raise RuntimeError(f"linalg.matrix_norm: Order {p} not supported.")
    order = 2.0 if p in ("fro", None) else float(p)
    reduced = wrap_dims(dim, x.ndim)
    return _p_norm(jnp.abs(x) if jnp.iscomplexobj(x) else x, order, reduced, keepdim)


def dist(input: Any, other: Any, p: float = 2) -> jax.Array:
    """p-norm of input - other. Mirrors `torch.dist`."""
    a, b = promote(input, other)
    return norm(a - b, p)


_MM_MODES = (
    "use_mm_for_euclid_dist_if_necessary",
    "use_mm_for_euclid_dist",
    "donot_use_mm_for_euclid_dist",
)


def cdist(
    x1: Any, x2: Any, p: float = 2.0, compute_mode: str = "use_mm_for_euclid_dist_if_necessary"
) -> jax.Array:
    """p-norm distances between each row of x1 (..., P, M) and of x2 (..., R, M): (..., P, R).

    Mirrors `torch.cdist`, including when the Euclidean case uses the matmul formula
    (|a|^2 + |b|^2 - 2ab, default: when P or R exceeds 25), which is faster and less exact.
    """
    a, b = arr(x1), arr(x2)
    check_floating("cdist", a, "x1")
    check_floating("cdist", b, "x2")
    if a.ndim < 2 or b.ndim < 2:
        raise RuntimeError(
            f"cdist only supports at least 2D tensors, X1 got: {a.ndim}D, X2 got: {b.ndim}D"
        )
    if a.shape[-1] != b.shape[-1]:
        raise RuntimeError(
            f"X1 and X2 must have the same number of columns. X1: {a.shape[-1]} X2: {b.shape[-1]}"
        )
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    if compute_mode not in _MM_MODES:
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    use_mm = p == 2 and (
        compute_mode == _MM_MODES[1]
        or (compute_mode == _MM_MODES[0] and (a.shape[-2] > 25 or b.shape[-2] > 25))
    )
    if use_mm:
        sq = jnp.sum(a * a, -1)[..., :, None] + jnp.sum(b * b, -1)[..., None, :]
        d2 = sq - 2 * jnp.matmul(a, jnp.swapaxes(b, -1, -2))
        return jnp.sqrt(jnp.maximum(d2, 0))
    return _p_norm(a[..., :, None, :] - b[..., None, :, :], float(p), -1, False)
