"""Shape functions: reshape, squeeze, permute, broadcast, flip, repeat, ... with torch's dims.

Shape errors raise what torch raises (RuntimeError for a bad size, IndexError for a bad dim).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._common import arr, check_concrete, int_list, wrap_dim, wrap_dims

__all__ = [
    "reshape",
    "flatten",
    "unflatten",
    "ravel",
    "squeeze",
    "unsqueeze",
    "permute",
    "transpose",
    "swapaxes",
    "swapdims",
    "t",
    "adjoint",
    "movedim",
    "moveaxis",
    "flip",
    "fliplr",
    "flipud",
    "roll",
    "rot90",
    "repeat_interleave",
    "tile",
    "broadcast_to",
    "broadcast_tensors",
    "broadcast_shapes",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
]

Shape = Sequence[int]


def infer_shape(shape: Shape, numel: int) -> tuple[int, ...]:
    """Resolve one -1 in `shape` for `numel` elements; RuntimeError (torch's message) if invalid."""
    shape = tuple(int(s) for s in shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if any(s < -1 for s in shape):
        raise RuntimeError(f"invalid shape dimension {min(shape)}")
    known = math.prod(s for s in shape if s != -1)
    if unknown:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        return shape[: unknown[0]] + (numel // known,) + shape[unknown[0] + 1 :]
    if known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def reshape(input: Any, shape: Shape) -> jax.Array:
    """The same elements in `shape` (one entry may be -1). Mirrors `torch.reshape`."""
    x = arr(input)
    return jnp.reshape(x, infer_shape(int_list((shape,)), x.size))


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> jax.Array:
    """Merge dims `start_dim..end_dim` into one. Mirrors `torch.flatten` (a 0-d input gives 1-d)."""
    x = arr(input)
    if x.ndim == 0:
        return x.reshape(1)
    s, e = wrap_dim(start_dim, x.ndim), wrap_dim(end_dim, x.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return x.reshape(x.shape[:s] + (math.prod(x.shape[s : e + 1]),) + x.shape[e + 1 :])


def unflatten(input: Any, dim: int, sizes: Shape) -> jax.Array:
    """Split dim `dim` into `sizes` (one may be -1). Mirrors `torch.unflatten`."""
    x = arr(input)
    d = wrap_dim(dim, x.ndim)
    if len(sizes) == 0:
        raise RuntimeError("unflatten: sizes must be non-empty")
    try:
        inner = infer_shape(sizes, x.shape[d])
    except RuntimeError:
        raise RuntimeError(
            f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size "
            f"of dim {dim} ({x.shape[d]}) in the input tensor"
        ) from None
    return x.reshape(x.shape[:d] + inner + x.shape[d + 1 :])


def ravel(input: Any) -> jax.Array:
    """A 1-D array of all elements. Mirrors `torch.ravel`."""
    return arr(input).reshape(-1)


def squeeze(input: Any, dim: int | Shape | None = None) -> jax.Array:
    """Remove size-1 dims (all, one, or a tuple); a named dim whose size is not 1 is left alone.

    Mirrors `torch.squeeze`.
    """
    x = arr(input)
    if dim is None:
        return jnp.squeeze(x)
    dims = wrap_dims(dim, x.ndim) or ()  # an empty tuple squeezes nothing
    return jnp.squeeze(x, tuple(d for d in dims if x.shape[d] == 1))


def unsqueeze(input: Any, dim: int) -> jax.Array:
    """Insert a size-1 dim at `dim` (in [-ndim-1, ndim]). Mirrors `torch.unsqueeze`."""
    x = arr(input)
    return jnp.expand_dims(x, wrap_dim(dim, x.ndim + 1))


def permute(input: Any, dims: Shape) -> jax.Array:
    """Reorder the dims. Mirrors `torch.permute`."""
    x = arr(input)
    dims = int_list((dims,), "dims")
    if len(dims) != x.ndim:
        raise RuntimeError(
            f"permute(sparse_coo): number of dimensions in the tensor input does not match "
            f"the length of the desired ordering of dimensions i.e. input.dim() = {x.ndim} "
            f"is not equal to len(dims) = {len(dims)}"
        )
    perm = wrap_dims(dims, x.ndim) if x.ndim else ()
    return jnp.transpose(x, perm)


def transpose(input: Any, dim0: int, dim1: int) -> jax.Array:
    """Swap two dims. Mirrors `torch.transpose`.

    >>> import jax.numpy as jnp
    >>> transpose(jnp.zeros((2, 3, 4)), 0, -1).shape
    (4, 3, 2)
    """
    x = arr(input)
    if x.ndim == 0:
        wrap_dim(dim0, 0), wrap_dim(dim1, 0)
        return x
    return jnp.swapaxes(x, wrap_dim(dim0, x.ndim), wrap_dim(dim1, x.ndim))


swapaxes = swapdims = transpose


def t(input: Any) -> jax.Array:
    """Transpose a matrix (0-d and 1-d unchanged). Mirrors `torch.t`."""
    x = arr(input)
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return x.T


def adjoint(input: Any) -> jax.Array:
    """Conjugate transpose of the last two dims. Mirrors `torch.adjoint`."""
    return jnp.conj(jnp.swapaxes(arr(input), -1, -2))


def movedim(input: Any, source: int | Shape, destination: int | Shape) -> jax.Array:
    """Move dims from `source` to `destination` positions. Mirrors `torch.movedim`."""
    x = arr(input)
    src, dst = wrap_dims(source, x.ndim) or (), wrap_dims(destination, x.ndim) or ()
    if len(src) != len(dst):
        raise RuntimeError(
            f"movedim: Invalid source or destination dims: source ({list(np.atleast_1d(source))} dims) "
            f"should contain the same number of dims as destination ({list(np.atleast_1d(destination))} dims)"
        )
    return jnp.moveaxis(x, src, dst) if x.ndim else x


moveaxis = movedim


def flip(input: Any, dims: int | Shape) -> jax.Array:
    """Reverse the order along `dims`. Mirrors `torch.flip`."""
    x = arr(input)
    return jnp.flip(x, wrap_dims(dims, x.ndim) or ()) if x.ndim else x


def fliplr(input: Any) -> jax.Array:
    """Flip dim 1. Mirrors `torch.fliplr` (needs >= 2 dims)."""
    x = arr(input)
    if x.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return jnp.flip(x, 1)


def flipud(input: Any) -> jax.Array:
    """Flip dim 0. Mirrors `torch.flipud` (needs >= 1 dim)."""
    x = arr(input)
    if x.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return jnp.flip(x, 0)


def roll(input: Any, shifts: int | Shape, dims: int | Shape | None = None) -> jax.Array:
    """Shift elements cyclically along `dims` (the flattened array when None). Mirrors `torch.roll`."""
    x = arr(input)
    if dims is None:
        if isinstance(shifts, (tuple, list)) and len(shifts) != 1:
            raise RuntimeError(f"roll: shifts {list(shifts)} needs a dims of the same length")
        return jnp.roll(x.reshape(-1), shifts).reshape(x.shape)
    shifts_t = shifts if isinstance(shifts, (tuple, list)) else (shifts,)
    dims_t = wrap_dims(dims, x.ndim) or ()
    if len(shifts_t) != len(dims_t):
        raise RuntimeError(
            f"shifts and dimensions must align. shifts: {len(shifts_t)}, dims:{len(dims_t)}"
        )
    return jnp.roll(x, tuple(shifts_t), dims_t) if x.ndim else x


def rot90(input: Any, k: int = 1, dims: Shape = (0, 1)) -> jax.Array:
    """Rotate by 90 degrees k times in the plane `dims`. Mirrors `torch.rot90`."""
    x = arr(input)
    axes = wrap_dims(dims, x.ndim) or ()
    if len(axes) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(axes)}")
    return jnp.rot90(x, k, (axes[0], axes[1]))


def repeat_interleave(
    input: Any, repeats: Any = None, dim: int | None = None, *, output_size: int | None = None
) -> jax.Array:
    """Repeat each element `repeats` times along `dim` (the flattened input when None).

    Mirrors `torch.repeat_interleave`, including the one-argument form
    `repeat_interleave(repeats)`. With an array of repeats the output length depends on its
    values: pass `output_size` to use it under `jax.jit`.
    """
    if repeats is None:  # repeat_interleave(repeats): repeat 0..n-1
        counts = arr(input)
        return repeat_interleave(jnp.arange(counts.shape[0]), counts, 0, output_size=output_size)
    x = arr(input)
    if dim is None:
        x, dim = x.reshape(-1), 0
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        x = x.reshape(1)
    if isinstance(repeats, (int, np.integer)):
        return jnp.repeat(x, int(repeats), axis=d)
    r = arr(repeats)
    if r.ndim > 1 or r.size not in (1, x.shape[d]):
        raise RuntimeError(
            "repeats must be 0-dim or 1-dim tensor with the size of the input along dim"
        )
    if r.size == 1:
        r = jnp.broadcast_to(r.reshape(()), (x.shape[d],))
    if output_size is None:
        check_concrete("repeat_interleave", r, hint=" (or pass output_size=)")
    return jnp.repeat(x, r, axis=d, total_repeat_length=output_size)


def tile(input: Any, dims: Shape) -> jax.Array:
    """Repeat the whole array `dims` times per dim (leading 1s added as needed). Mirrors `torch.tile`."""
    return jnp.tile(arr(input), int_list((dims,), "dims"))


def broadcast_to(input: Any, size: Shape) -> jax.Array:
    """Broadcast to `size`; -1 keeps a dim's size. Mirrors `torch.broadcast_to` (= `Tensor.expand`)."""
    x = arr(input)
    size = int_list((size,))
    lead = len(size) - x.ndim
    if lead < 0:
        raise RuntimeError(
            f"expand: the number of sizes provided ({len(size)}) must be greater or equal "
            f"to the number of dimensions in the tensor ({x.ndim})"
        )
    out = []
    for i, s in enumerate(size):
        if i < lead:
            if s < 0:
                raise RuntimeError(
                    f"The expanded size of the tensor ({s}) isn't allowed in a leading, "
                    f"non-existing dimension {i}"
                )
            out.append(s)
            continue
        have = x.shape[i - lead]
        if s == -1:
            s = have
        elif have != 1 and have != s:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({have}) "
                f"at non-singleton dimension {i}.  Target sizes: {list(size)}.  "
                f"Tensor sizes: {list(x.shape)}"
            )
        out.append(s)
    return jnp.broadcast_to(x, tuple(out))


def broadcast_shapes(*shapes: Any) -> tuple[int, ...]:
    """The broadcast of the given shapes (ints count as 1-d shapes). Mirrors `torch.broadcast_shapes`."""
    norm = [(s,) if isinstance(s, (int, np.integer)) else tuple(s) for s in shapes]
    try:
        return tuple(jnp.broadcast_shapes(*norm))
    except ValueError:
        raise RuntimeError(
            f"Shape mismatch: objects cannot be broadcast to a single shape: {norm}"
        ) from None


def broadcast_tensors(*tensors: Any) -> tuple[jax.Array, ...]:
    """Broadcast all arguments to one shape. Mirrors `torch.broadcast_tensors`."""
    xs = [arr(x) for x in tensors]
    shape = broadcast_shapes(*(x.shape for x in xs))
    return tuple(jnp.broadcast_to(x, shape) for x in xs)


def _atleast(n: int, tensors: tuple) -> Any:
    fn = {1: jnp.atleast_1d, 2: jnp.atleast_2d, 3: jnp.atleast_3d}[n]
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        return tuple(fn(arr(x)) for x in tensors[0])
    out = tuple(fn(arr(x)) for x in tensors)
    return out[0] if len(out) == 1 else out


def atleast_1d(*tensors: Any) -> Any:
    """View 0-d inputs as 1-d. Mirrors `torch.atleast_1d`."""
    return _atleast(1, tensors)


def atleast_2d(*tensors: Any) -> Any:
    """View inputs with fewer dims as 2-d. Mirrors `torch.atleast_2d`."""
    return _atleast(2, tensors)


def atleast_3d(*tensors: Any) -> Any:
    """View inputs with fewer dims as 3-d. Mirrors `torch.atleast_3d`."""
    return _atleast(3, tensors)
