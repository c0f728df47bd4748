"""torch's deprecated hook-based `weight_norm` / `remove_weight_norm`: not provided.

jaxmodule keeps one way to do it: `jaxmodule.nn.utils.parametrizations.weight_norm`, which also
loads state_dicts saved with the old `<name>_g` / `<name>_v` keys.
"""

from __future__ import annotations

from typing import Any

__all__ = ["weight_norm", "remove_weight_norm"]

_MESSAGE = (
    "jaxmodule.nn.utils.{fn} (torch's deprecated hook-based weight norm) is not implemented; use "
    "jaxmodule.nn.utils.parametrizations.weight_norm (it loads old weight_g/weight_v checkpoints) "
    "and jaxmodule.nn.utils.parametrize.remove_parametrizations"
)


def weight_norm(module: Any, name: str = "weight", dim: int | None = 0) -> Any:
    """Not implemented: use `parametrizations.weight_norm` (raises NotImplementedError)."""
    raise NotImplementedError(_MESSAGE.format(fn="weight_norm"))


def remove_weight_norm(module: Any, name: str = "weight") -> Any:
    """Not implemented: use `parametrize.remove_parametrizations` (raises NotImplementedError)."""
    raise NotImplementedError(_MESSAGE.format(fn="remove_weight_norm"))
