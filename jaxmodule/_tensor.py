"""Array conversion (jax, numpy, torch, Parameter) and torch-style factory functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._device import META, PLACEMENT, is_meta_spec, placement_target
from ._dtype import get_default_dtype, to_dtype, x64_enabled
from ._random import Generator, next_key

# What reading the data of a meta array (a jax.ShapeDtypeStruct held by a cell) says.
META_DATA_ERROR = (
    "this Parameter/Buffer is on the meta device: it has a shape and dtype but no data. "
    "Allocate it first with module.to_empty(device=...) and then initialise it "
    "(module.reset_parameters() / nn.init) or module.load_state_dict(...)"
)

__all__ = [
    "as_array",
    "is_tensor_cell",
    "cell_value",
    "META_DATA_ERROR",
    "MetaArray",
    "meta_array",
    "is_torch_tensor",
    "spans_devices",
    "tensor",
    "as_tensor",
    "from_numpy",
    "zeros",
    "ones",
    "empty",
    "full",
    "randn",
    "rand",
    "randint",
    "arange",
    "linspace",
    "logspace",
    "eye",
    "zeros_like",
    "ones_like",
    "empty_like",
    "full_like",
    "randn_like",
    "rand_like",
]


def spans_devices(x: Any) -> bool:
    """Whether `x` is a concrete jax array whose shards sit on more than one device (a tracer,
    whose sharding is not known, is not).

    >>> import jax.numpy as jnp
    >>> spans_devices(jnp.ones(2)), spans_devices(2.0)
    (False, False)
    """
    return (
        isinstance(x, jax.Array)
        and not isinstance(x, jax.core.Tracer)
        and len(x.sharding.device_set) > 1
    )


def is_torch_tensor(x: Any) -> bool:
    """True for a torch.Tensor, detected without importing torch."""
    t = type(x)
    return t.__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "dtype")


def _torch_to_numpy(t: Any) -> np.ndarray:
    """A private host copy of a torch tensor's values (never a view of torch's memory): JAX reads
    host data when the transfer runs, which can be after torch has updated the tensor in place
    (see `host_snapshot`)."""
    t = t.detach().cpu()
    name = str(t.dtype)
    if name == "torch.bfloat16":
        return t.float().numpy().astype(jnp.bfloat16)
    return np.array(t.numpy(), copy=True)


def host_snapshot(x: np.ndarray) -> np.ndarray:
    """A private copy of host data about to become a jax.Array.

    JAX does not copy a numpy array when it is handed one: the transfer is queued behind the
    work already dispatched and reads the host buffer when it runs (`jnp.array(x, copy=True)`
    included). Host memory that its owner then changes in place (torch's `p.add_()` after
    `load_state_dict(torch_model.state_dict())`, a numpy batch buffer refilled) would reach the
    array with the new values. torch copies at conversion (`torch.tensor(x)`), so jaxmodule
    does too: a private copy nobody else can change.

    >>> a = np.ones(3)
    >>> b = host_snapshot(a)
    >>> b is a, np.shares_memory(a, b)
    (False, False)
    """
    return np.array(x, copy=True)


class MetaArray(jax.ShapeDtypeStruct):
    """What a meta Parameter/Buffer holds: a `jax.ShapeDtypeStruct` (shape, dtype, planned
    sharding) whose data, asked for in any way (`jnp` on it, `.T`, `.sum()`), raises a
    RuntimeError saying to allocate with `to_empty` first. Any `jax.ShapeDtypeStruct` works as a
    meta value; this one only makes the error clear.

    >>> import jax.numpy as jnp
    >>> m = MetaArray((3, 4), jnp.float32)
    >>> m.shape, m.ndim
    ((3, 4), 2)
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in _SDS_FIELDS:  # jax's own attributes (read while set up)
            raise AttributeError(name)
        raise RuntimeError(META_DATA_ERROR)

    def __jax_array__(self) -> jax.Array:
        raise RuntimeError(META_DATA_ERROR)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise RuntimeError(META_DATA_ERROR)


def _no_data(self: MetaArray, *args: Any) -> Any:
    raise RuntimeError(META_DATA_ERROR)


for _op in (
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "matmul",
    "and",
    "or",
    "xor",
    "lshift",
    "rshift",
    "divmod",
):
    setattr(MetaArray, f"__{_op}__", _no_data)
    setattr(MetaArray, f"__r{_op}__", _no_data)
for _op in (
    "lt",
    "le",
    "gt",
    "ge",
    "neg",
    "pos",
    "abs",
    "invert",
    "getitem",
    "iter",
    "float",
    "int",
    "complex",
    "index",
    "bool",
):
    setattr(MetaArray, f"__{_op}__", _no_data)

_SDS_FIELDS = frozenset(
    (
        "shape",
        "dtype",
        "sharding",
        "weak_type",
        "manual_axis_type",
        "is_ref",
        "format",
        "size",
        "ndim",
    )
)


def meta_array(x: Any, dtype: Any = None, sharding: Any = None) -> MetaArray:
    """The meta stand-in for `x` (an array, a tracer or a ShapeDtypeStruct): its shape, its dtype
    (or `dtype`) and its sharding (or `sharding`; a tracer's is dropped)."""
    if sharding is None and not isinstance(x, jax.core.Tracer):
        sharding = getattr(x, "sharding", None)
    return MetaArray(tuple(x.shape), x.dtype if dtype is None else dtype, sharding=sharding)


def is_tensor_cell(x: Any) -> bool:
    """True for a Parameter/Buffer (or its `.data` view): an object holding one array in `_value`.

    Decided from the class, never the instance: `jax.Array` has a `_value` property too, and
    reading it copies the whole array to the host (and raises for a non-addressable one).

    >>> import jax.numpy as jnp
    >>> is_tensor_cell(jnp.ones(2))
    False
    """
    if isinstance(x, jax.Array):
        return False
    t = type(x)
    return hasattr(t, "_value") and hasattr(t, "__jax_array__")


def cell_value(x: Any) -> Any:
    """The array a Parameter/Buffer holds; anything else is returned as it is.

    >>> import jax.numpy as jnp
    >>> a = jnp.ones(2)
    >>> cell_value(a) is a
    True
    """
    return x._value if is_tensor_cell(x) else x


def as_array(x: Any, dtype: Any = None) -> jax.Array:
    """Convert jax/numpy arrays, torch tensors, Parameters/Buffers and Python data to a jax.Array.

    Tracers and jax.Arrays (sharded ones included) pass through unchanged and untouched, so this
    is safe inside `jax.jit` and never copies an array to the host.

    >>> import jax.numpy as jnp
    >>> a = jnp.ones(3)
    >>> as_array(a) is a
    True
    """
    if isinstance(x, jax.Array):
        return x if dtype is None else jnp.asarray(x, dtype=to_dtype(dtype))
    if is_tensor_cell(x):  # Parameter / Buffer
        x = x._value
    elif is_torch_tensor(x):
        x = _torch_to_numpy(x)
    elif isinstance(x, np.ndarray):
        x = host_snapshot(x)
    if isinstance(x, jax.ShapeDtypeStruct):
        raise RuntimeError(META_DATA_ERROR)
    if dtype is not None:
        return jnp.asarray(x, dtype=to_dtype(dtype))
    if isinstance(x, jax.Array):
        return x
    if isinstance(x, (float, list, tuple)) and not isinstance(x, np.ndarray):
        arr = np.asarray(x)
        if arr.dtype == np.float64:
            return jnp.asarray(arr, dtype=get_default_dtype())
        if arr.dtype == np.int64 and not x64_enabled():
            return jnp.asarray(arr, dtype=jnp.int32)
        return jnp.asarray(arr)
    return jnp.asarray(x)


def _size(size: Sequence[Any]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _on(arr: jax.Array, device: Any) -> jax.Array:
    """Place `arr` on `device` (any torch-style spelling, or a Sharding) when one is given."""
    if device is None or is_meta_spec(device):  # meta: only inside a meta module build (traced)
        return arr
    return jax.device_put(arr, placement_target(device))


def _meta_wanted(device: Any) -> bool:
    """`device='meta'`, or no device inside `with jaxmodule.device('meta')`, outside a module
    build (a meta module build traces the constructor, so its factories make traced arrays)."""
    if PLACEMENT.building:
        return False
    return PLACEMENT.target is META if device is None else is_meta_spec(device)


def _made(size: Sequence[Any], dtype: Any, device: Any, make: Any) -> Any:
    """`make(shape, dtype)` placed on `device`, or a MetaArray when the meta device is asked for:
    `zeros(2, 3, device='meta')` is torch's `torch.zeros(2, 3, device='meta')`: no data, no draw."""
    shape, dt = _size(size), to_dtype(dtype)
    if _meta_wanted(device):
        return MetaArray(shape, dt)
    return _on(make(shape, dt), device)


def tensor(
    data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> jax.Array:
    """Make an array from data, with torch's dtype inference (Python floats -> default float dtype).

    >>> tensor([1.0, 2.0]).dtype
    dtype('float32')
    """
    return _on(as_array(data, dtype), device)


def zeros(*size: Any, dtype: Any = None, device: Any = None) -> jax.Array:
    """Mirrors `torch.zeros`; `device='meta'` gives a `MetaArray` (shape and dtype, no data)."""
    return _made(size, dtype, device, jnp.zeros)


def ones(*size: Any, dtype: Any = None, device: Any = None) -> jax.Array:
    """Mirrors `torch.ones`; `device='meta'` gives a `MetaArray` (shape and dtype, no data)."""
    return _made(size, dtype, device, jnp.ones)


def empty(*size: Any, dtype: Any = None, device: Any = None) -> jax.Array:
    """Mirrors `torch.empty`; JAX has no uninitialised memory, so the values are zeros.
    `device='meta'` gives a `MetaArray` (shape and dtype, no data), e.g. for `Parameter(...)`."""
    return _made(size, dtype, device, jnp.zeros)


def full(size: Sequence[int], fill_value: Any, dtype: Any = None, device: Any = None) -> jax.Array:
    """Mirrors `torch.full`."""
    if dtype is None and isinstance(fill_value, (bool, int)):
        return _on(jnp.full(_size((size,)), fill_value), device)
    return _on(jnp.full(_size((size,)), fill_value, to_dtype(dtype)), device)


def randn(
    *size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None
) -> jax.Array:
    """Standard normal samples from the global (or given) generator. Mirrors `torch.randn`
    (`device='meta'`: a `MetaArray`, no draw)."""
    return _made(size, dtype, device, lambda s, d: jax.random.normal(next_key(generator), s, d))


def rand(
    *size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None
) -> jax.Array:
    """Uniform [0, 1) samples. Mirrors `torch.rand` (`device='meta'`: a `MetaArray`, no draw)."""
    return _made(size, dtype, device, lambda s, d: jax.random.uniform(next_key(generator), s, d))


def randint(
    low: int,
    high: int | None = None,
    size: Sequence[int] = (),
    *,
    generator: Generator | None = None,
    dtype: Any = None,
    device: Any = None,
) -> jax.Array:
    """Integers in [low, high). Mirrors `torch.randint` (`randint(high, size)` works too)."""
    if high is None:
        low, high = 0, low
    elif isinstance(high, (tuple, list)) and not size:  # randint(high, size)
        low, high, size = 0, low, high
    dt = jnp.int32 if dtype is None else to_dtype(dtype)
    return _on(jax.random.randint(next_key(generator), _size((size,)), low, high, dtype=dt), device)


def arange(
    start: Any, end: Any = None, step: Any = 1, *, dtype: Any = None, device: Any = None
) -> jax.Array:
    """Mirrors `torch.arange`."""
    if end is None:
        start, end = 0, start
    out = jnp.arange(start, end, step)
    if dtype is not None:
        return _on(out.astype(to_dtype(dtype)), device)
    if jnp.issubdtype(out.dtype, jnp.floating):
        return _on(out.astype(get_default_dtype()), device)
    return _on(out, device)


def zeros_like(x: Any, dtype: Any = None) -> jax.Array:
    return jnp.zeros_like(as_array(x), dtype=None if dtype is None else to_dtype(dtype))


def ones_like(x: Any, dtype: Any = None) -> jax.Array:
    return jnp.ones_like(as_array(x), dtype=None if dtype is None else to_dtype(dtype))


def randn_like(x: Any, dtype: Any = None, generator: Generator | None = None) -> jax.Array:
    a = as_array(x)
    return jax.random.normal(
        next_key(generator), a.shape, a.dtype if dtype is None else to_dtype(dtype)
    )


def rand_like(x: Any, dtype: Any = None, generator: Generator | None = None) -> jax.Array:
    a = as_array(x)
    return jax.random.uniform(
        next_key(generator), a.shape, a.dtype if dtype is None else to_dtype(dtype)
    )


# ---- more creation functions (issue 10) ----------------------------------------------------------
def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> jax.Array:
    """Mirrors `torch.as_tensor`: arrays of the right dtype pass through, other data converts."""
    return tensor(data, dtype, device)


def from_numpy(ndarray: np.ndarray) -> jax.Array:
    """Mirrors `torch.from_numpy`: the numpy dtype is kept (64-bit becomes 32-bit while x64 is off).

    torch's result shares the numpy array's memory; a jax.Array is immutable, so this one is a
    snapshot: later in-place changes of `ndarray` are not seen (`host_snapshot`)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    return jnp.asarray(host_snapshot(ndarray))


def _float_or(dtype: Any) -> Any:
    return get_default_dtype() if dtype is None else to_dtype(dtype)


def linspace(
    start: Any, end: Any, steps: int, *, dtype: Any = None, device: Any = None
) -> jax.Array:
    """`steps` evenly spaced values from start to end inclusive. Mirrors `torch.linspace`.

    Computed as torch does: from `start` for the first half, from `end` for the second.
    """
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dt = _float_or(dtype)
    i = jnp.arange(steps, dtype=jnp.float32)
    step = (end - start) / max(steps - 1, 1)
    vals = jnp.where(i < steps // 2, start + step * i, end - step * (steps - 1 - i))
    return _on(vals.astype(dt), device)


def logspace(
    start: Any, end: Any, steps: int, base: float = 10.0, *, dtype: Any = None, device: Any = None
) -> jax.Array:
    """base ** linspace(start, end, steps). Mirrors `torch.logspace`."""
    return _on(jnp.power(base, linspace(start, end, steps)).astype(_float_or(dtype)), device)


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None) -> jax.Array:
    """An n x m matrix with ones on the diagonal. Mirrors `torch.eye`."""
    return _on(jnp.eye(n, n if m is None else m, dtype=_float_or(dtype)), device)


def empty_like(input: Any, *, dtype: Any = None, device: Any = None) -> jax.Array:
    """Mirrors `torch.empty_like`; JAX has no uninitialised memory, so the values are zeros."""
    return _on(zeros_like(input, dtype), device)


def full_like(input: Any, fill_value: Any, *, dtype: Any = None, device: Any = None) -> jax.Array:
    """An array shaped like `input` filled with `fill_value` (input's dtype by default). Mirrors `torch.full_like`."""
    a = as_array(input)
    return _on(jnp.full(a.shape, fill_value, a.dtype if dtype is None else to_dtype(dtype)), device)
