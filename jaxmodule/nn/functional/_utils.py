"""Small helpers shared by the functional files."""

from __future__ import annotations

from typing import Any

from ..parameter import _TensorCell

__all__ = ["unwrap", "reduce_loss", "ntuple"]


def unwrap(x: Any) -> Any:
    """Parameter/Buffer -> the jax array it holds; anything else unchanged (tracer-safe, cheap)."""
    return x._value if isinstance(x, _TensorCell) else x


def reduce_loss(loss: Any, reduction: str) -> Any:
    """Apply torch's `reduction` ('none' | 'mean' | 'sum')."""
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{reduction} is not a valid value for reduction")


def ntuple(x: Any, n: int, name: str = "argument") -> tuple:
    """torch's _pair/_triple: an int becomes an n-tuple; a sequence must have length n."""
    if isinstance(x, (list, tuple)):
        if len(x) == 1:
            return tuple(x) * n
        if len(x) != n:
            raise ValueError(
                f"expected {name} to be a single int or a sequence of {n} ints, got {x!r}"
            )
        return tuple(x)
    return (x,) * n
