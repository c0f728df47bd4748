"""torch's deprecated hook-based `spectral_norm` / `remove_spectral_norm`: not provided.

jaxmodule keeps one way to do it: `jaxmodule.nn.utils.parametrizations.spectral_norm`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["spectral_norm", "remove_spectral_norm"]

_MESSAGE = (
    "jaxmodule.nn.utils.{fn} (torch's deprecated hook-based spectral norm) is not implemented; use "
    "jaxmodule.nn.utils.parametrizations.spectral_norm and "
    "jaxmodule.nn.utils.parametrize.remove_parametrizations"
)


def spectral_norm(
    module: Any,
    name: str = "weight",
    n_power_iterations: int = 1,
    eps: float = 1e-12,
    dim: int | None = None,
) -> Any:
    """Not implemented: use `parametrizations.spectral_norm` (raises NotImplementedError)."""
    raise NotImplementedError(_MESSAGE.format(fn="spectral_norm"))


def remove_spectral_norm(module: Any, name: str = "weight") -> Any:
    """Not implemented: use `parametrize.remove_parametrizations` (raises NotImplementedError)."""
    raise NotImplementedError(_MESSAGE.format(fn="remove_spectral_norm"))
