"""Activation layers. Mirrors `torch.nn.modules.activation` (MultiheadAttention lives in attention.py).

Each layer holds its hyper-parameters and calls the matching `nn.functional` function. `inplace`
is accepted and shown in the repr as in torch, but JAX arrays are immutable: the result is always a
new array.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..._dtype import to_dtype
from .. import functional as F
from .. import init
from ..functional._utils import unwrap
from ..parameter import Parameter
from ._backward_hooks import gate, is_array, register_last_operation, swap_gated
from ._eager import register_pure_forward
from .module import Module

__all__ = [
    "Threshold",
    "ReLU",
    "RReLU",
    "Hardtanh",
    "ReLU6",
    "Sigmoid",
    "Hardsigmoid",
    "Tanh",
    "SiLU",
    "Mish",
    "Hardswish",
    "ELU",
    "CELU",
    "SELU",
    "GLU",
    "GELU",
    "Hardshrink",
    "LeakyReLU",
    "LogSigmoid",
    "Softplus",
    "Softshrink",
    "PReLU",
    "Softsign",
    "Tanhshrink",
    "Softmin",
    "Softmax",
    "Softmax2d",
    "LogSoftmax",
]

Array = jax.Array

# Frames between the warning and the user's `layer(x)` call for the implicit-dim warning of the
# softmax layers: _softmax_dim, _softmax_impl, F.softmax, forward, Module.__call__.
_SOFTMAX_STACKLEVEL = 5


def _inplace_first(inplace: bool) -> str:
    return "inplace=True" if inplace else ""


def _inplace_suffix(inplace: bool) -> str:
    return ", inplace=True" if inplace else ""


class Threshold(Module):
    """`value` where input <= threshold, else input. Mirrors `torch.nn.Threshold`.

    Args:
        threshold: the threshold.
        value: the replacement value.
        inplace: accepted for compatibility (the result is a new array).
    """

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold = threshold
        self.value = value
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.threshold(input, self.threshold, self.value, self.inplace)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, value={self.value}{_inplace_suffix(self.inplace)}"


class ReLU(Module):
    """max(0, x). Mirrors `torch.nn.ReLU`.

    Args:
        inplace: accepted for compatibility (the result is a new array).

    >>> import jax.numpy as jnp
    >>> ReLU()(jnp.array([-1.0, 2.0]))
    Array([0., 2.], dtype=float32)
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return _inplace_first(self.inplace)


class RReLU(Module):
    """Randomised leaky ReLU (random slopes in training, their mean in eval). Mirrors `torch.nn.RReLU`.

    Args:
        lower: lower bound of the negative slope.
        upper: upper bound of the negative slope.
        inplace: accepted for compatibility.
    """

    def __init__(
        self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False
    ) -> None:
        super().__init__()
        self.lower = lower
        self.upper = upper
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}{_inplace_suffix(self.inplace)}"


class Hardtanh(Module):
    """Clamp to [min_val, max_val]. Mirrors `torch.nn.Hardtanh`.

    Args:
        min_val: lower bound.
        max_val: upper bound (must exceed min_val).
        inplace: accepted for compatibility.
        min_value, max_value: deprecated spellings (FutureWarning), as in torch.
    """

    def __init__(
        self,
        min_val: float = -1.0,
        max_val: float = 1.0,
        inplace: bool = False,
        min_value: float | None = None,
        max_value: float | None = None,
    ) -> None:
        super().__init__()
        if min_value is not None:
            warnings.warn(
                "keyword argument `min_value` is deprecated and renamed to `min_val`",
                FutureWarning,
                stacklevel=2,
            )
            min_val = min_value
        if max_value is not None:
            warnings.warn(
                "keyword argument `max_value` is deprecated and renamed to `max_val`",
                FutureWarning,
                stacklevel=2,
            )
            max_val = max_value
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace
        if self.max_val <= self.min_val:
            raise AssertionError(
                f"max_val ({self.max_val}) must be greater than min_val ({self.min_val})"
            )

    def forward(self, input: Array) -> Array:
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}{_inplace_suffix(self.inplace)}"


class ReLU6(Hardtanh):
    """min(max(0, x), 6). Mirrors `torch.nn.ReLU6`."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return _inplace_first(self.inplace)


class Sigmoid(Module):
    """1 / (1 + exp(-x)). Mirrors `torch.nn.Sigmoid`."""

    def forward(self, input: Array) -> Array:
        return F.sigmoid(input)


class Hardsigmoid(Module):
    """relu6(x + 3) / 6. Mirrors `torch.nn.Hardsigmoid`."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.hardsigmoid(input, self.inplace)


class Tanh(Module):
    """tanh(x). Mirrors `torch.nn.Tanh`."""

    def forward(self, input: Array) -> Array:
        return F.tanh(input)


class SiLU(Module):
    """x * sigmoid(x). Mirrors `torch.nn.SiLU`."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.silu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return _inplace_first(self.inplace)


class Mish(Module):
    """x * tanh(softplus(x)). Mirrors `torch.nn.Mish`."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.mish(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return _inplace_first(self.inplace)


class Hardswish(Module):
    """x * relu6(x + 3) / 6. Mirrors `torch.nn.Hardswish`."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.hardswish(input, self.inplace)


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1). Mirrors `torch.nn.ELU`."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}{_inplace_suffix(self.inplace)}"


class CELU(Module):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1)). Mirrors `torch.nn.CELU`."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.celu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}{_inplace_suffix(self.inplace)}"


class SELU(Module):
    """Scaled ELU with the self-normalising constants. Mirrors `torch.nn.SELU`."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.selu(input, self.inplace)

    def extra_repr(self) -> str:
        return _inplace_first(self.inplace)


class GLU(Module):
    """a * sigmoid(b) over the two halves of `dim`. Mirrors `torch.nn.GLU`."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Array) -> Array:
        return F.glu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class GELU(Module):
    """x * Phi(x), exact ('none') or tanh-approximated. Mirrors `torch.nn.GELU`."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Array) -> Array:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Hardshrink(Module):
    """0 for |x| <= lambd, else x. Mirrors `torch.nn.Hardshrink`."""

    def __init__(self, lambd: float = 0.5) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, input: Array) -> Array:
        return F.hardshrink(input, self.lambd)

    def extra_repr(self) -> str:
        return f"{self.lambd}"


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x. Mirrors `torch.nn.LeakyReLU`."""

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}{_inplace_suffix(self.inplace)}"


class LogSigmoid(Module):
    """log(sigmoid(x)). Mirrors `torch.nn.LogSigmoid`."""

    def forward(self, input: Array) -> Array:
        return F.logsigmoid(input)


class Softplus(Module):
    """log(1 + exp(beta x)) / beta, linear above `threshold`. Mirrors `torch.nn.Softplus`."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input: Array) -> Array:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softshrink(Module):
    """x -+ lambd outside [-lambd, lambd], else 0. Mirrors `torch.nn.Softshrink`."""

    def __init__(self, lambd: float = 0.5) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, input: Array) -> Array:
        return F.softshrink(input, self.lambd)

    def extra_repr(self) -> str:
        return str(self.lambd)


class PReLU(Module):
    """Leaky ReLU with a learned negative slope, shared or one per channel. Mirrors `torch.nn.PReLU`.

    Args:
        num_parameters: 1 (one shared slope) or the number of channels (dim 1 of the input).
        init: the initial slope.

    Shape:
        input (N, C, *) or any shape when num_parameters == 1 -> output of the same shape.
    """

    def __init__(
        self, num_parameters: int = 1, init: float = 0.25, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(jnp.empty((num_parameters,), to_dtype(dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.constant_(self.weight, self.init)

    def forward(self, input: Array) -> Array:
        return F.prelu(input, self.weight)  # type: ignore[arg-type]  # F.prelu unwraps a cell; its hint says Array

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


# legacy backward hooks: torch's last operation of PReLU.forward (see _backward_hooks.py)
def _prelu_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    if len(args) != 1 or kwargs or jnp.ndim(args[0]) < 2:
        return NotImplemented
    x = args[0]
    shape = [1] * jnp.ndim(x)
    shape[1] = int(np.prod(m.weight.shape))
    to_torch = (lambda g: g.reshape(shape), lambda g: g.reshape(m.weight.shape))
    xg, wg = gate(sessions, (x, m.weight), (None, to_torch))
    with swap_gated(((m.weight, wg),)):
        return m.forward(xg), True


register_last_operation(PReLU, _prelu_rule)


class Softsign(Module):
    """x / (1 + |x|). Mirrors `torch.nn.Softsign`."""

    def forward(self, input: Array) -> Array:
        return F.softsign(input)


# legacy backward hooks: torch's last operation of Softsign.forward (see _backward_hooks.py)
def _softsign_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    if len(args) != 1 or kwargs or not is_array(args[0]):
        return NotImplemented
    x = unwrap(args[0])
    a, b = gate(sessions, (x, 1 + jnp.abs(x)))  # div(input, 1 + |input|)
    return a / b, True


register_last_operation(Softsign, _softsign_rule)


class Tanhshrink(Module):
    """x - tanh(x). Mirrors `torch.nn.Tanhshrink`."""

    def forward(self, input: Array) -> Array:
        return F.tanhshrink(input)


# legacy backward hooks: torch's last operation of Tanhshrink.forward (see _backward_hooks.py)
def _tanhshrink_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    if len(args) != 1 or kwargs or not is_array(args[0]):
        return NotImplemented
    x = unwrap(args[0])
    a, b = gate(sessions, (x, jnp.tanh(x)))  # sub(input, tanh(input))
    return a - b, True


register_last_operation(Tanhshrink, _tanhshrink_rule)


class Softmin(Module):
    """softmax(-x) along `dim`. Mirrors `torch.nn.Softmin` (dim=None: torch's implicit dim, warns)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Array) -> Array:
        return F.softmin(input, self.dim, _stacklevel=_SOFTMAX_STACKLEVEL)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# legacy backward hooks: torch's last operation of Softmin.forward (see _backward_hooks.py)
def _softmin_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    if len(args) != 1 or kwargs or not is_array(args[0]):
        return NotImplemented
    neg = (lambda g: -g, lambda g: -g)  # softmax(-input): the operand is -input
    (xg,) = gate(sessions, (args[0],), (neg,))
    return m.forward(xg), True


register_last_operation(Softmin, _softmin_rule)


class Softmax(Module):
    """exp(x) / sum(exp(x)) along `dim`. Mirrors `torch.nn.Softmax` (dim=None: torch's implicit dim, warns).

    >>> import jax.numpy as jnp
    >>> Softmax(dim=-1)(jnp.zeros((1, 2)))
    Array([[0.5, 0.5]], dtype=float32)
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Array) -> Array:
        return F.softmax(input, self.dim, _stacklevel=_SOFTMAX_STACKLEVEL)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax2d(Module):
    """Softmax over channels (dim -3) of (C, H, W) or (N, C, H, W) input. Mirrors `torch.nn.Softmax2d`."""

    def forward(self, input: Array) -> Array:
        if input.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {input.ndim}D instead")
        return F.softmax(input, -3, _stacklevel=_SOFTMAX_STACKLEVEL)


class LogSoftmax(Module):
    """log(softmax(x)) along `dim`. Mirrors `torch.nn.LogSoftmax` (dim=None: torch's implicit dim, warns)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Array) -> Array:
        return F.log_softmax(input, self.dim, _stacklevel=_SOFTMAX_STACKLEVEL)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# eager calls of these run one cached jit program (see _eager.py)
register_pure_forward(
    Threshold,
    ReLU,
    Hardtanh,
    ReLU6,
    Sigmoid,
    Hardsigmoid,
    Tanh,
    SiLU,
    Mish,
    Hardswish,
    ELU,
    CELU,
    SELU,
    GLU,
    GELU,
    Hardshrink,
    LeakyReLU,
    LogSigmoid,
    Softplus,
    Softshrink,
    PReLU,
    Softsign,
    Tanhshrink,
)
# dim=None warns on every call (torch's implicit dim): only an explicit dim is cached
register_pure_forward(Softmin, Softmax, LogSoftmax, when=lambda m: m.dim is not None)
