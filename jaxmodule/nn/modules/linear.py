"""Linear layers: `Identity`, `Linear`, `Bilinear`, `LazyLinear`."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ... import _structure
from ..._dtype import to_dtype
from .. import functional as F
from .. import init
from ..parameter import Parameter, UninitializedParameter, is_lazy
from ._backward_hooks import gate, gate_view, is_array, register_last_operation, swap_gated
from ._eager import register_pure_forward
from .module import Module

__all__ = ["Identity", "Linear", "Bilinear", "LazyLinear"]


def reset_weight_and_bias(weight: Parameter, bias: Parameter | None) -> None:
    """torch's default init of Linear and convolutions: kaiming_uniform_(a=sqrt(5)) weight and
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


class Identity(Module):
    """Returns its input unchanged; accepts and ignores any constructor arguments. Mirrors torch.

    >>> Identity(54, unused="x")(3)
    3
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


class Linear(Module):
    """`y = x W^T + b`. Mirrors `torch.nn.Linear` (weight (out, in), torch's default init).

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).

    Shape:
        input (*, in_features) -> output (*, out_features)

    >>> m = Linear(20, 30)
    >>> m(jnp.ones((128, 20))).shape
    (128, 30)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        dt = to_dtype(dtype)
        self.weight = Parameter(jnp.empty((out_features, in_features), dt))
        if bias:
            self.bias = Parameter(jnp.empty((out_features,), dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """kaiming_uniform_(a=sqrt(5)) weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias, as torch."""
        reset_weight_and_bias(self.weight, self.bias)

    def forward(self, input: Any) -> jax.Array:
        try:
            return F.linear(input, self.weight, self.bias)
        except RuntimeError as e:  # error path only: name the layer under torch's message
            if str(e).startswith("mat1 and mat2") and hasattr(e, "add_note"):
                e.add_note(
                    f"in {self!r}: the input's last dimension ({input.shape[-1]}) must be "
                    f"in_features ({self.in_features})"
                )
            raise

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


# legacy backward hooks: torch's last operation of Linear.forward (see _backward_hooks.py)
_TRANSPOSE = (lambda g: g.T, lambda g: g.T)


def _linear_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    if len(args) != 1 or kwargs or not is_array(args[0]):
        return NotImplemented
    x = args[0]
    if jnp.ndim(x) != 2:  # torch: addmm/mm on the flattened input, then a view
        y = m.forward(x)
        return gate_view(sessions, y, (int(np.prod(jnp.shape(y)[:-1])), jnp.shape(y)[-1])), True
    if m.bias is None:  # mm(input, weight.T)
        xg, wg = gate(sessions, (x, m.weight), (None, _TRANSPOSE))
        bg = None
    else:  # addmm(bias, input, weight.T)
        bg, xg, wg = gate(sessions, (m.bias, x, m.weight), (None, None, _TRANSPOSE))
    with swap_gated(((m.weight, wg), (m.bias, bg))):
        return m.forward(xg), True


register_last_operation(Linear, _linear_rule)


class Bilinear(Module):
    """`y = x1^T A x2 + b`. Mirrors `torch.nn.Bilinear` (weight (out, in1, in2))."""

    def __init__(
        self,
        in1_features: int,
        in2_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in1_features = in1_features
        self.in2_features = in2_features
        self.out_features = out_features
        dt = to_dtype(dtype)
        self.weight = Parameter(jnp.empty((out_features, in1_features, in2_features), dt))
        if bias:
            self.bias = Parameter(jnp.empty((out_features,), dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1: Any, input2: Any) -> jax.Array:
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


class LazyLinear(Linear):
    """A Linear whose `in_features` is inferred from the first input. Mirrors `torch.nn.LazyLinear`.

    After the first call it becomes a plain `Linear` (as torch's lazy modules do).
    """

    cls_to_become = Linear

    def __init__(
        self, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None
    ) -> None:
        Module.__init__(self)
        self.in_features = 0
        self.out_features = out_features
        self.weight = UninitializedParameter(dtype=dtype)
        if bias:
            self.bias = UninitializedParameter(dtype=dtype)
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Any) -> None:
        self.in_features = input.shape[-1]
        self.weight.materialize((self.out_features, self.in_features))
        if self.bias is not None:
            self.bias.materialize((self.out_features,))

        _structure.bump()
        self.reset_parameters()

    def forward(self, input: Any) -> jax.Array:
        if is_lazy(self.weight):
            self.initialize_parameters(input)
        elif self.in_features == 0:  # parameters came from load_state_dict, as torch allows
            self.in_features = self.weight.shape[-1]
        self.__class__ = self.cls_to_become  # type: ignore[assignment]  # a lazy module becomes its eager class, as in torch
        return F.linear(input, self.weight, self.bias)


# eager calls of these run one cached jit program (see _eager.py)
register_pure_forward(Linear, Bilinear)
# Identity returns its input object itself, as torch's does: cached only inside a pure parent
register_pure_forward(Identity, alone=False)
