"""`Parameter` and `Buffer`: mutable cells holding a JAX array, behaving like that array.

JAX arrays are immutable, so torch's in-place methods (`fill_`, `mul_`, `normal_`, ...) replace the
array held in the cell. Modules store the cells themselves (`module._parameters['weight']` is the
`Parameter`), so an in-place call on `m.weight` changes what the module holds, tied weights stay
tied (two modules hold one cell), and optimizers keep references that survive every update.

Cells are JAX pytree nodes with one leaf, so `jnp.dot(p, x)`, `jax.nn.relu(p)` and operators work
eagerly and inside `jax.jit`. `jax.lax` primitives do not accept them: use `p.data` or `jnp`.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, SupportsIndex

import jax
import jax.numpy as jnp
import numpy as np

from .. import _structure
from .._device import device as _device_place
from .._dtype import to_dtype
from .._grad_mode import is_grad_enabled
from .._random import Generator, next_key
from .._swap import register_cell_class
from .._tensor import META_DATA_ERROR, as_array, cell_value, spans_devices

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._cell_methods import CellTensorMethods as _TensorMethods
else:
    # torch.Tensor's methods are installed on _TensorCell at import (install_tensor_methods, at
    # the end of this file); _cell_methods.py declares them for the type checker only.
    _TensorMethods = object

__all__ = ["Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer", "is_lazy"]


def _register(cls: type[_TensorCell]) -> None:
    jax.tree_util.register_pytree_node(
        cls,
        lambda c: ((c._value,), c._aux()),
        lambda aux, children: cls._wrap(children[0], aux),
    )


def _unwrap(x: Any) -> Any:
    return x._value if isinstance(x, _TensorCell) else x


_Meta = jax.ShapeDtypeStruct  # what a meta cell holds: shape, dtype, planned sharding, no data
_META_DEVICE = _device_place("meta")


def _initial_value(data: Any) -> Any:
    """A new cell's value: an array, or a ShapeDtypeStruct (a meta cell, as torch's meta tensors)."""
    v = cell_value(data)
    return v if isinstance(v, _Meta) else as_array(v)


def _meta_repr(v: Any, extra: str = "") -> str:
    """torch's text for a meta tensor: `tensor(..., device='meta', size=(3, 4))`."""
    dt = "" if v.dtype == jnp.float32 else f", dtype={v.dtype}"
    return f"tensor(..., device='meta', size={tuple(v.shape)}{dt}{extra})"


@register_cell_class
class _TensorCell(_TensorMethods):
    """Shared array behaviour of Parameter and Buffer (torch.Tensor's role)."""

    __slots__ = ("_value", "_grad", "__dict__", "__weakref__")
    __array_priority__ = 100

    _value: jax.Array  # on the meta device, a MetaArray stands in (see __jax_array__)
    _grad: Any
    # Parameter._wrap / Buffer._wrap: a cell of this class around `value`, without conversion,
    # given what `_aux()` returned.
    _wrap: ClassVar[Callable[..., Any]]

    # ---- array protocol --------------------------------------------------------------------
    def __jax_array__(self) -> jax.Array:
        v = self._value
        if isinstance(v, _Meta):
            raise RuntimeError(META_DATA_ERROR)
        return v

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = np.asarray(self._value)
        return arr if dtype is None else arr.astype(dtype)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the cell does not define: delegate (reshape, sum, astype, ...).
        if name.startswith("__") or name in ("_value", "_grad"):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        v = self._value
        if isinstance(v, _Meta) and not hasattr(v, name):  # `.T` of a meta cell lands here too
            raise RuntimeError(META_DATA_ERROR)
        return getattr(v, name)

    @property
    def grad(self) -> Any:
        """The accumulated gradient array, or None (torch's `.grad`)."""
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        if (value is None) != (self._grad is None):
            _structure.counters.grad_presence += 1
        self._grad = value

    @property
    def data(self) -> _DataView:
        """The held array, detached: in-place calls on it skip the grad-mode check, as in torch."""
        return _DataView(self)

    @data.setter
    def data(self, value: Any) -> None:
        self._value = as_array(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._value.shape

    @property
    def dtype(self) -> Any:
        return self._value.dtype

    @property
    def ndim(self) -> int:
        return self._value.ndim

    @property
    def T(self) -> jax.Array:  # noqa: N802
        return self._value.T

    @property
    def mT(self) -> jax.Array:  # noqa: N802
        return self._value.mT

    @property
    def device(self) -> Any:
        if isinstance(self._value, _Meta):
            return _META_DEVICE
        devs = self._value.devices()
        return next(iter(devs)) if len(devs) == 1 else self._value.sharding

    @property
    def is_leaf(self) -> bool:
        return True

    # torch.Tensor's methods (size, dim, view, transpose, sum, to, float, ...): installed from
    # jaxmodule.Tensor, see the "torch.Tensor methods" block at the end of this file; the type
    # checker reads their declarations in nn/_cell_methods.py (the base class, for it only).

    def __getitem__(self, idx: Any) -> jax.Array:
        return self._value[_unwrap(idx)]

    def __len__(self) -> int:
        return len(self._value)

    def __iter__(self) -> Any:
        return iter(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __float__(self) -> float:
        return float(self._value)

    def __int__(self) -> int:
        return int(self._value)

    def __index__(self) -> int:
        return operator.index(self._value)

    def __complex__(self) -> complex:
        return complex(self._value)

    def __format__(self, spec: str) -> str:
        return format(self._value, spec) if spec else repr(self)

    __hash__ = object.__hash__

    # ---- value replacement (the in-place helpers all come through here) ---------------------
    def _check_inplace(self) -> None:
        pass

    def _set(self, new: Any) -> Any:
        """Replace the held value by `new`, cast to the held dtype and broadcast to the held shape."""
        self._check_inplace()
        return self._store(new)

    def _set_result(self, new: jax.Array) -> Any:
        """`_set` for an in-place arithmetic result: as in torch, a result of a higher dtype kind
        (float into an integer cell, complex into a real one) raises instead of being cast."""
        if _kind(new.dtype) > _kind(self._value.dtype):
            raise RuntimeError(
                f"result type {new.dtype} can't be cast to the desired output type "
                f"{self._value.dtype}"
            )
        return self._set(new)

    def _store(self, new: Any) -> Any:
        old = self._value
        if isinstance(old, _Meta):  # as torch: writing into a meta tensor does nothing
            return self
        new = jnp.asarray(_unwrap(new))
        if new.dtype != old.dtype:
            new = new.astype(old.dtype)
        if new.shape != old.shape:
            new = jnp.broadcast_to(new, old.shape)
        if (
            spans_devices(old)
            and not isinstance(new, jax.core.Tracer)
            and new.sharding != old.sharding
        ):
            new = jax.device_put(
                new, old.sharding
            )  # in place on a sharded cell keeps its placement
        self._value = new
        return self

    def fill_(self, value: Any) -> Any:
        return self._set(jnp.full(self._value.shape, _unwrap(value), self._value.dtype))

    def zero_(self) -> Any:
        return self._set(jnp.zeros_like(self._value))

    def copy_(self, src: Any, non_blocking: bool = False) -> Any:
        src = as_array(src)
        try:
            jnp.broadcast_shapes(src.shape, self._value.shape)
        except ValueError:
            raise RuntimeError(
                f"copy_: the source shape {tuple(src.shape)} cannot be broadcast to the "
                f"destination shape {tuple(self._value.shape)}"
            ) from None
        return self._set(src)

    def normal_(
        self, mean: float = 0.0, std: float = 1.0, *, generator: Generator | None = None
    ) -> Any:
        v = self._value
        return self._set(
            _unwrap(mean)
            + _unwrap(std) * jax.random.normal(next_key(generator), v.shape, _float(v.dtype))
        )

    def uniform_(
        self, from_: float = 0.0, to: float = 1.0, *, generator: Generator | None = None
    ) -> Any:
        v = self._value
        return self._set(
            jax.random.uniform(next_key(generator), v.shape, _float(v.dtype), from_, to)
        )

    def bernoulli_(self, p: float = 0.5, *, generator: Generator | None = None) -> Any:
        return self._set(jax.random.bernoulli(next_key(generator), _unwrap(p), self._value.shape))

    def exponential_(self, lambd: float = 1.0, *, generator: Generator | None = None) -> Any:
        v = self._value
        return self._set(
            jax.random.exponential(next_key(generator), v.shape, _float(v.dtype)) / lambd
        )

    def log_normal_(
        self, mean: float = 1.0, std: float = 2.0, *, generator: Generator | None = None
    ) -> Any:
        v = self._value
        return self._set(
            jnp.exp(mean + std * jax.random.normal(next_key(generator), v.shape, _float(v.dtype)))
        )

    def cauchy_(
        self, median: float = 0.0, sigma: float = 1.0, *, generator: Generator | None = None
    ) -> Any:
        v = self._value
        return self._set(
            median + sigma * jax.random.cauchy(next_key(generator), v.shape, _float(v.dtype))
        )

    def add_(self, other: Any, *, alpha: Any = 1) -> Any:
        return self._set_result(self._value + alpha * _unwrap(other))

    def sub_(self, other: Any, *, alpha: Any = 1) -> Any:
        return self._set_result(self._value - alpha * _unwrap(other))

    def mul_(self, other: Any) -> Any:
        return self._set_result(self._value * _unwrap(other))

    def div_(self, other: Any, *, rounding_mode: str | None = None) -> Any:
        q = self._value / _unwrap(other)
        if rounding_mode is None:
            return self._set_result(q)
        return self._set(jnp.trunc(q) if rounding_mode == "trunc" else jnp.floor(q))

    def pow_(self, exponent: Any) -> Any:
        return self._set_result(self._value ** _unwrap(exponent))

    def clamp_(self, min: Any = None, max: Any = None) -> Any:  # noqa: A002 - torch names
        return self._set_result(jnp.clip(self._value, _unwrap(min), _unwrap(max)))

    clip_ = clamp_

    def clamp_min_(self, min: Any) -> Any:  # noqa: A002
        return self.clamp_(min=min)

    def clamp_max_(self, max: Any) -> Any:  # noqa: A002
        return self.clamp_(max=max)

    def addcmul_(self, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Any:
        return self._set_result(self._value + value * _unwrap(tensor1) * _unwrap(tensor2))

    def addcdiv_(self, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Any:
        return self._set_result(self._value + value * _unwrap(tensor1) / _unwrap(tensor2))

    def lerp_(self, end: Any, weight: Any) -> Any:
        return self._set_result(self._value + _unwrap(weight) * (_unwrap(end) - self._value))

    def masked_fill_(self, mask: Any, value: Any) -> Any:
        return self._set(jnp.where(_unwrap(mask), _unwrap(value), self._value))

    def fill_diagonal_(self, fill_value: Any, wrap: bool = False) -> Any:
        v = self._value
        n = min(v.shape)
        idx = jnp.arange(n)
        return self._set(v.at[(idx,) * v.ndim].set(fill_value))

    def requires_grad_(self, requires_grad: bool = True) -> Any:
        self.requires_grad = requires_grad
        return self

    def share_memory_(self) -> Any:
        return self

    def detach_(self) -> Any:
        return self

    def detach(self) -> jax.Array:
        """The held array with gradients stopped. Mirrors `torch.Tensor.detach`.

        torch's result shares the parameter's memory, so it shows later in-place updates; JAX
        arrays are immutable, so here it keeps the values of the moment of the call. It stays
        readable after later steps: the array is recorded as handed out (as `state_dict()`
        values are), so a compiled step copies it before donating the parameter's buffer.
        """
        v = self._value
        _structure.export((v,))
        return jax.lax.stop_gradient(v)

    # ---- operators: results are plain jax arrays, as torch's are plain Tensors ---------------
    # Each calls the held array's own operator, so an unsupported operand still gets
    # NotImplemented and Python tries the other side, as it would with the array itself.

    def __add__(self, other: Any) -> jax.Array:
        return self._value.__add__(_unwrap(other))

    def __radd__(self, other: Any) -> jax.Array:
        return self._value.__radd__(_unwrap(other))

    def __sub__(self, other: Any) -> jax.Array:
        return self._value.__sub__(_unwrap(other))

    def __rsub__(self, other: Any) -> jax.Array:
        return self._value.__rsub__(_unwrap(other))

    def __mul__(self, other: Any) -> jax.Array:
        return self._value.__mul__(_unwrap(other))

    def __rmul__(self, other: Any) -> jax.Array:
        return self._value.__rmul__(_unwrap(other))

    def __truediv__(self, other: Any) -> jax.Array:
        return self._value.__truediv__(_unwrap(other))

    def __rtruediv__(self, other: Any) -> jax.Array:
        return self._value.__rtruediv__(_unwrap(other))

    def __floordiv__(self, other: Any) -> jax.Array:
        return self._value.__floordiv__(_unwrap(other))

    def __rfloordiv__(self, other: Any) -> jax.Array:
        return self._value.__rfloordiv__(_unwrap(other))

    def __mod__(self, other: Any) -> jax.Array:
        return self._value.__mod__(_unwrap(other))

    def __rmod__(self, other: Any) -> jax.Array:
        return self._value.__rmod__(_unwrap(other))

    def __divmod__(self, other: Any) -> tuple[jax.Array, jax.Array]:
        return self._value.__divmod__(_unwrap(other))

    def __rdivmod__(self, other: Any) -> tuple[jax.Array, jax.Array]:
        return self._value.__rdivmod__(_unwrap(other))  # type: ignore[return-value]  # jax's stub says Array; it is (q, r)

    def __pow__(self, other: Any) -> jax.Array:
        return self._value.__pow__(_unwrap(other))

    def __rpow__(self, other: Any) -> jax.Array:
        return self._value.__rpow__(_unwrap(other))

    def __matmul__(self, other: Any) -> jax.Array:
        return self._value.__matmul__(_unwrap(other))

    def __rmatmul__(self, other: Any) -> jax.Array:
        return self._value.__rmatmul__(_unwrap(other))

    def __and__(self, other: Any) -> jax.Array:
        return self._value.__and__(_unwrap(other))

    def __rand__(self, other: Any) -> jax.Array:
        return self._value.__rand__(_unwrap(other))

    def __or__(self, other: Any) -> jax.Array:
        return self._value.__or__(_unwrap(other))

    def __ror__(self, other: Any) -> jax.Array:
        return self._value.__ror__(_unwrap(other))

    def __xor__(self, other: Any) -> jax.Array:
        return self._value.__xor__(_unwrap(other))

    def __rxor__(self, other: Any) -> jax.Array:
        return self._value.__rxor__(_unwrap(other))

    def __lshift__(self, other: Any) -> jax.Array:
        return self._value.__lshift__(_unwrap(other))

    def __rlshift__(self, other: Any) -> jax.Array:
        return self._value.__rlshift__(_unwrap(other))

    def __rshift__(self, other: Any) -> jax.Array:
        return self._value.__rshift__(_unwrap(other))

    def __rrshift__(self, other: Any) -> jax.Array:
        return self._value.__rrshift__(_unwrap(other))

    def __lt__(self, other: Any) -> jax.Array:
        return self._value.__lt__(_unwrap(other))

    def __le__(self, other: Any) -> jax.Array:
        return self._value.__le__(_unwrap(other))

    def __gt__(self, other: Any) -> jax.Array:
        return self._value.__gt__(_unwrap(other))

    def __ge__(self, other: Any) -> jax.Array:
        return self._value.__ge__(_unwrap(other))

    def __eq__(self, other: Any) -> jax.Array:  # type: ignore[override]  # element-wise, as torch
        return self._value.__eq__(_unwrap(other))

    def __ne__(self, other: Any) -> jax.Array:  # type: ignore[override]  # element-wise, as torch
        return self._value.__ne__(_unwrap(other))

    def __neg__(self) -> jax.Array:
        return self._value.__neg__()

    def __pos__(self) -> jax.Array:
        return self._value.__pos__()

    def __abs__(self) -> jax.Array:
        return self._value.__abs__()

    def __invert__(self) -> jax.Array:
        return self._value.__invert__()

    # ---- in-place operators: `p += x` replaces the held array and keeps the cell, as torch's
    # in-place ops keep the tensor; a result of a higher dtype kind raises (see `_set_result`).

    def __iadd__(self, other: Any) -> Self:
        return self._set_result(self._value + _unwrap(other))

    def __isub__(self, other: Any) -> Self:
        return self._set_result(self._value - _unwrap(other))

    def __imul__(self, other: Any) -> Self:
        return self._set_result(self._value * _unwrap(other))

    def __itruediv__(self, other: Any) -> Self:
        return self._set_result(self._value / _unwrap(other))

    def __ifloordiv__(self, other: Any) -> Self:
        return self._set_result(self._value // _unwrap(other))

    def __imod__(self, other: Any) -> Self:
        return self._set_result(self._value % _unwrap(other))

    def __ipow__(self, other: Any) -> Self:
        return self._set_result(self._value ** _unwrap(other))

    def __iand__(self, other: Any) -> Self:
        return self._set_result(self._value & _unwrap(other))

    def __ior__(self, other: Any) -> Self:
        return self._set_result(self._value | _unwrap(other))

    def __ixor__(self, other: Any) -> Self:
        return self._set_result(self._value ^ _unwrap(other))

    # ---- element-wise in-place methods: the cell holds `f(self)` afterwards and is returned;
    # an integer cell whose result is float raises, as in torch.

    def exp_(self) -> Self:
        """In-place `exp`, as `torch.Tensor.exp_`."""
        return self._set_result(jnp.exp(self._value))

    def log_(self) -> Self:
        """In-place `log`, as `torch.Tensor.log_`."""
        return self._set_result(jnp.log(self._value))

    def sqrt_(self) -> Self:
        """In-place `sqrt`, as `torch.Tensor.sqrt_`."""
        return self._set_result(jnp.sqrt(self._value))

    def rsqrt_(self) -> Self:
        """In-place `rsqrt` (1 / sqrt), as `torch.Tensor.rsqrt_`."""
        return self._set_result(jax.lax.rsqrt(self._value))

    def neg_(self) -> Self:
        """In-place `neg`, as `torch.Tensor.neg_`."""
        return self._set_result(jnp.negative(self._value))

    def abs_(self) -> Self:
        """In-place `abs`, as `torch.Tensor.abs_`."""
        return self._set_result(jnp.abs(self._value))

    def sign_(self) -> Self:
        """In-place `sign`, as `torch.Tensor.sign_`."""
        return self._set_result(jnp.sign(self._value))

    def sigmoid_(self) -> Self:
        """In-place `sigmoid`, as `torch.Tensor.sigmoid_`."""
        v = self._value
        return self._set_result(jax.nn.sigmoid(v.astype(_float(v.dtype))))

    def tanh_(self) -> Self:
        """In-place `tanh`, as `torch.Tensor.tanh_`."""
        return self._set_result(jnp.tanh(self._value))

    def relu_(self) -> Self:
        """In-place `relu`, as `torch.Tensor.relu_`."""
        return self._set_result(jax.nn.relu(self._value))

    def floor_(self) -> Self:
        """In-place `floor`, as `torch.Tensor.floor_`."""
        return self._set_result(jnp.floor(self._value))

    def ceil_(self) -> Self:
        """In-place `ceil`, as `torch.Tensor.ceil_`."""
        return self._set_result(jnp.ceil(self._value))

    def round_(self) -> Self:
        """In-place `round` (half to even), as `torch.Tensor.round_`."""
        return self._set_result(jnp.round(self._value))

    def trunc_(self) -> Self:
        """In-place `trunc`, as `torch.Tensor.trunc_`."""
        return self._set_result(jnp.trunc(self._value))

    def reciprocal_(self) -> Self:
        """In-place `reciprocal` (1 / x), as `torch.Tensor.reciprocal_`."""
        return self._set_result(jnp.reciprocal(self._value))

    def square_(self) -> Self:
        """In-place `square`, as `torch.Tensor.square_`."""
        return self._set_result(jnp.square(self._value))

    def sin_(self) -> Self:
        """In-place `sin`, as `torch.Tensor.sin_`."""
        return self._set_result(jnp.sin(self._value))

    def cos_(self) -> Self:
        """In-place `cos`, as `torch.Tensor.cos_`."""
        return self._set_result(jnp.cos(self._value))

    # ---- pickling ----------------------------------------------------------------------------
    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        v = self._value
        return (
            _rebuild,
            (
                type(self),
                v if isinstance(v, _Meta) else np.asarray(v),
                self._aux(),
                self.grad,
                dict(self.__dict__),
            ),
        )

    def __deepcopy__(self, memo: dict) -> Any:
        import copy

        v = self._value
        new = type(self)._wrap(v if isinstance(v, _Meta) else jnp.array(v, copy=True), self._aux())
        memo[id(self)] = new
        new.grad = None if self.grad is None else jnp.array(self.grad, copy=True)
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new


def _kind(dtype: Any) -> int:
    """torch's dtype categories for in-place casting: bool < integer < floating < complex."""
    if dtype == jnp.bool_:
        return 0
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return 3
    return 2 if jnp.issubdtype(dtype, jnp.floating) else 1


def _float(dtype: Any) -> Any:
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def _rebuild(cls: type[_TensorCell], value: np.ndarray, aux: Any, grad: Any, extra: dict) -> Any:
    cell = cls._wrap(value if isinstance(value, _Meta) else jnp.asarray(value), aux)
    cell.grad = grad
    cell.__dict__.update(extra)
    return cell


class Parameter(_TensorCell):
    """A trainable array held by a Module. Mirrors `torch.nn.Parameter`.

    Args:
        data: the initial value (jax/numpy array, torch tensor, nested lists); None gives an
            empty float array.
        requires_grad: whether `jaxmodule.grad` and optimizers treat it as trainable.

    >>> import jax.numpy as jnp
    >>> p = Parameter(jnp.ones((2, 3)))
    >>> p.shape, p.requires_grad
    ((2, 3), True)
    >>> (p * 2).sum().item()
    12.0

    Differences from torch: arithmetic returns plain `jax.Array`s; `p.data` is a detached view
    whose in-place methods write into `p`; in-place methods replace the held array.
    """

    __slots__ = ("_requires_grad",)

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = jnp.zeros((0,), jnp.float32)
        self._value = _initial_value(data)
        self._grad = None
        self._requires_grad = bool(requires_grad)

    @classmethod
    def _wrap(cls, value: Any, requires_grad: bool = True) -> Parameter:
        """Wrap a value (possibly a tracer or any pytree placeholder) without conversion."""
        p = object.__new__(cls)
        p._value = value
        p._grad = None
        p._requires_grad = requires_grad
        return p

    def _aux(self) -> Any:
        return self._requires_grad

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"requires_grad must be a bool, got {type(value).__name__}")
        if value != self._requires_grad:
            self._requires_grad = value
            _structure.bump()

    def _check_inplace(self) -> None:
        if self._requires_grad and is_grad_enabled():
            raise_if_torch_init(
                type(self).__name__
            )  # issue 10: torch.nn.init.xavier_uniform_(p) & co.
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation."
            )

    def __repr__(self) -> str:
        v = self._value
        if isinstance(v, _Meta):
            return "Parameter containing:\n" + _meta_repr(
                v, ", requires_grad=True" if self._requires_grad else ""
            )
        return "Parameter containing:\n" + repr(v)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls)


class Buffer(_TensorCell):
    """A non-trainable array held by a Module (running statistics, masks, counters).

    Mirrors `torch.nn.Buffer`: assigning `module.name = Buffer(x, persistent=False)` registers a
    buffer, as `register_buffer` does.

    >>> import jax.numpy as jnp
    >>> b = Buffer(jnp.zeros(3), persistent=False)
    >>> b.persistent
    False
    """

    __slots__ = ("persistent", "_registered")

    def __init__(self, data: Any = None, *, persistent: bool = True) -> None:
        if data is None:
            data = jnp.zeros((0,), jnp.float32)
        self._value = _initial_value(data)
        self._grad = None
        self.persistent = persistent
        self._registered = (
            False  # a marker until a module registers it (then it is that module's cell)
        )

    @classmethod
    def _wrap(cls, value: Any, persistent: bool = True) -> Buffer:
        b = object.__new__(cls)
        b._value = value
        b._grad = None
        b.persistent = persistent
        b._registered = True
        return b

    def _aux(self) -> Any:
        return self.persistent

    requires_grad = False

    def __repr__(self) -> str:
        v = self._value
        return _meta_repr(v) if isinstance(v, _Meta) else repr(v)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls)


class _DataView(_TensorCell):
    """What `cell.data` returns: reads and writes the owner's array, with no grad-mode check."""

    __slots__ = ("_owner",)

    def __init__(self, owner: _TensorCell) -> None:
        object.__setattr__(self, "_owner", owner)
        self._grad = None

    @property
    def _value(self) -> jax.Array:
        return self._owner._value

    @_value.setter
    def _value(self, v: jax.Array) -> None:
        self._owner._value = v

    def _set(self, new: Any) -> Any:
        self._owner._store(new)
        return self

    def __repr__(self) -> str:
        return repr(self._owner._value)


class UninitializedParameter(Parameter):
    """A parameter whose shape is not known yet (lazy modules). Mirrors torch's."""

    def __init__(self, requires_grad: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__(jnp.zeros((0,), to_dtype(dtype)), requires_grad)

    def materialize(self, shape: tuple[int, ...], device: Any = None, dtype: Any = None) -> None:
        self._value = jnp.zeros(
            tuple(shape), to_dtype(dtype) if dtype is not None else self._value.dtype
        )
        self.__class__ = Parameter  # type: ignore[assignment]  # materialized: a plain cell now, as in torch

    def __repr__(self) -> str:
        return "<UninitializedParameter>"


class UninitializedBuffer(Buffer):
    """A buffer whose shape is not known yet (lazy modules)."""

    def materialize(self, shape: tuple[int, ...], device: Any = None, dtype: Any = None) -> None:
        self._value = jnp.zeros(
            tuple(shape), to_dtype(dtype) if dtype is not None else self._value.dtype
        )
        self.__class__ = Buffer  # type: ignore[assignment]  # materialized: a plain cell now, as in torch

    def __repr__(self) -> str:
        return "<UninitializedBuffer>"


def is_lazy(x: Any) -> bool:
    """True for an uninitialized (lazy) parameter or buffer."""
    return isinstance(x, (UninitializedParameter, UninitializedBuffer))


_register(Parameter)
_register(Buffer)
jax.tree_util.register_pytree_node(
    _DataView,
    lambda c: ((c._value,), None),  # a view comes back as a Buffer:
    lambda aux, ch: Buffer._wrap(ch[0]),  # type: ignore[arg-type, return-value]
)


# ---- torch.Tensor methods (issue 10) ----------------------------------------------------------------
# Cells answer torch.Tensor's methods as torch does (`p.transpose(0, 1)`, `p.view(2, 3)`,
# `p.sum(dim=1)`, `p.max(0)`), returning plain arrays, by sharing `jaxmodule.Tensor`'s functions:
# one implementation. Those functions sit above the cells in the import order, so
# jaxmodule/_tensor_type.py hands them over once, when it is imported by jaxmodule/__init__.py.
# Names the cell defines itself (in-place methods, properties) are kept.
def install_tensor_methods(methods: dict[str, Any]) -> None:
    """Give `_TensorCell` each of torch.Tensor's methods that it does not define itself."""
    for name, fn in methods.items():
        if name not in _TensorCell.__dict__:
            setattr(_TensorCell, name, fn)
            INSTALLED_TENSOR_METHODS[name] = fn


# What was installed, by name: the type checker's declarations in nn/_cell_methods.py are generated
# from it (scripts/gen_cell_methods.py) and tests/nn/test_parameter_methods_visible.py compares the two.
INSTALLED_TENSOR_METHODS: dict[str, Callable[..., Any]] = {}


# The public functions of `jaxmodule.nn.init`, which declares them here when it is imported (it
# builds on the cells, so this file does not import it); used only by the message below.
INIT_FUNCTION_NAMES: set[str] = set()


def raise_if_torch_init(kind: str) -> None:
    """Raise a TypeError pointing to jaxmodule.nn.init if torch.nn.init is on the call stack.

    torch.nn.init's functions either dispatch through `__torch_function__` or call the cell's
    in-place methods under `torch.no_grad()`, which jaxmodule cannot see; both failures come here
    (error paths only, so the stack walk costs nothing otherwise).
    """
    frame: FrameType | None = sys._getframe(1)
    name: str | None = None
    while frame is not None:
        if frame.f_globals.get(
            "__name__"
        ) == "torch.nn.init" and not frame.f_code.co_name.startswith("_"):
            name = (
                frame.f_code.co_name
            )  # the outermost public one: xavier_uniform_, not _no_grad_uniform_
        frame = frame.f_back
    if name is not None:
        use = (
            f"jaxmodule.nn.init.{name}(param, ...)"
            if name in INIT_FUNCTION_NAMES
            else "jaxmodule.nn.init"
        )
        raise TypeError(
            f"torch.nn.init.{name} cannot initialise a jaxmodule {kind}: use {use}, which "
            f"fills the {kind} in place from jaxmodule's generator"
        )


def _torch_function(cls: type, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
    """torch.overrides hook: a torch function given a cell fails with a message saying what to use."""
    raise_if_torch_init(cls.__name__)
    name = getattr(func, "__name__", repr(func))
    raise TypeError(
        f"torch function {name} was given a jaxmodule {cls.__name__}: use jaxmodule.{name} or "
        f"jax.numpy on it, or convert it first with torch.from_numpy(numpy.asarray(p))"
    )


def _dlpack(self: _TensorCell, *args: Any, **kwargs: Any) -> Any:
    """What `torch.tensor(p)` / `torch.as_tensor(p)` read (torch skips `__array__` for objects with
    `__torch_function__`): a host copy, never the live buffer a compiled step may donate."""
    return np.array(self._value).__dlpack__(*args, **kwargs)


def _dlpack_device(self: _TensorCell) -> tuple[int, int]:
    return (1, 0)  # DLPack's CPU device: the copy above lives in host memory


def _is_meta(self: _TensorCell) -> bool:
    """torch's `is_meta`: the cell holds a `jax.ShapeDtypeStruct` (shape and dtype, no data), as
    after building under `jaxmodule.device('meta')`; torch.nn.init reads it first, so it gets the hint."""
    raise_if_torch_init(type(self).__name__)
    return isinstance(self._value, _Meta)


_TensorCell.__torch_function__ = classmethod(_torch_function)  # type: ignore[attr-defined]
_TensorCell.is_meta = property(_is_meta)  # type: ignore[attr-defined]
_TensorCell.__dlpack__ = _dlpack  # type: ignore[attr-defined]
_TensorCell.__dlpack_device__ = _dlpack_device  # type: ignore[attr-defined]
