"""Dropout layers: `Dropout`, `Dropout1d/2d/3d`, `AlphaDropout`, `FeatureAlphaDropout`.

Mirrors `torch.nn.modules.dropout`: each layer calls its `nn.functional` counterpart with
`training=self.training`, so it is the identity in eval mode. Masks are drawn from jaxmodule's
global generator (`jaxmodule.manual_seed`), which advances on every training-mode call: compile
training steps with `jaxmodule.compile`, which threads the generator's key through the program (a
plain `jax.jit` would leave a tracer in the generator). `inplace=True` is accepted, but the input
cannot be modified (JAX arrays are immutable): use the returned array.
"""

from __future__ import annotations

from typing import Any

import jax

from .. import functional as F
from ._backward_hooks import gate, is_array, register_last_operation
from ._eager import register_pure_forward
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"]


class _DropoutNd(Module):
    """Shared constructor and repr. Mirrors `torch.nn.modules.dropout._DropoutNd`."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability `p` in training, scaling the rest by `1 / (1 - p)`.

    Mirrors `torch.nn.Dropout`.

    Args:
        p: probability of zeroing an element.
        inplace: accepted for compatibility; the result is returned (see the module docstring).

    Shape:
        - Input: any; output: same shape.

    >>> import jax.numpy as jnp
    >>> Dropout(0.5).eval()(jnp.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def forward(self, input: Any) -> jax.Array:
        return F.dropout(input, self.p, self.training, self.inplace)


# legacy backward hooks: torch's last operation of Dropout.forward (see _backward_hooks.py)
def _dropout_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    if len(args) != 1 or kwargs or not m.training or not is_array(args[0]):
        return NotImplemented
    xg, _ = gate(sessions, (args[0], None))  # mul(input, mask): the mask needs no gradient
    return m.forward(xg), True


register_last_operation(Dropout, _dropout_rule)


class Dropout1d(_DropoutNd):
    """Zero whole channels of `(N, C, L)` or `(C, L)` inputs. Mirrors `torch.nn.Dropout1d`."""

    def forward(self, input: Any) -> jax.Array:
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zero whole channels of `(N, C, H, W)` inputs. Mirrors `torch.nn.Dropout2d`
    (3-D inputs are read as `(N, C, L)` with a warning, as in torch)."""

    def forward(self, input: Any) -> jax.Array:
        return F.dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(_DropoutNd):
    """Zero whole channels of `(N, C, D, H, W)` or `(C, D, H, W)` inputs.

    Mirrors `torch.nn.Dropout3d`.
    """

    def forward(self, input: Any) -> jax.Array:
        return F.dropout3d(input, self.p, self.training, self.inplace)


class AlphaDropout(_DropoutNd):
    """Dropout that keeps the zero mean and unit variance of SELU activations.

    Mirrors `torch.nn.AlphaDropout`.
    """

    def forward(self, input: Any) -> jax.Array:
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(_DropoutNd):
    """Alpha dropout of whole channels of `(N, C, *)` inputs. Mirrors `torch.nn.FeatureAlphaDropout`."""

    def forward(self, input: Any) -> jax.Array:
        return F.feature_alpha_dropout(input, self.p, self.training)


# pure inside a cached parent; in training they draw, and the parent's program takes and returns
# the generator's key (see _eager.py)
register_pure_forward(
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    AlphaDropout,
    FeatureAlphaDropout,
    draws=lambda m: m.training and m.p > 0,
    alone=False,  # eval: it returns its input object itself, as torch's does: nothing to cache
)
