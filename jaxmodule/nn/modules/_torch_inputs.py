"""A torch.Tensor handed to a jaxmodule layer: a TypeError that names the layer and the fix.

JAX's own error for a torch tensor ("Error interpreting argument to <function matmul> as an
abstract array") names neither the layer nor the conversion. `Module.__call__` calls
`raise_if_torch_input` only in its `except` clause, after the call already failed, so a normal
call pays nothing. Calls that succeed (JAX converted the tensor through `__array__`) are left
alone.
"""

from __future__ import annotations

from typing import Any

from ..._tensor import is_torch_tensor

__all__ = ["TorchInputError", "raise_if_torch_input", "TORCH_INPUT_HINT"]

TORCH_INPUT_HINT = (
    "{layer} was called with a torch.Tensor ({where}); jaxmodule layers take jax arrays. Convert it "
    "first:\n"
    "    x = jaxmodule.tensor(t)                   # keeps the dtype, bfloat16 included\n"
    "    x = jnp.asarray(t.detach().cpu().numpy().copy())  # a copy: torch may change t in place\n"
    "A torch state_dict loads directly: model.load_state_dict(torch_model.state_dict())."
)


class TorchInputError(TypeError):
    """A torch.Tensor reached a jaxmodule layer."""


def _find(value: Any, path: str, depth: int = 0) -> str | None:
    if is_torch_tensor(value):
        return path
    if depth < 2 and isinstance(value, (list, tuple)):
        return next(
            (p for i, v in enumerate(value) if (p := _find(v, f"{path}[{i}]", depth + 1))), None
        )
    if depth < 2 and isinstance(value, dict):
        return next(
            (p for k, v in value.items() if (p := _find(v, f"{path}[{k!r}]", depth + 1))), None
        )
    return None


def raise_if_torch_input(module: Any, args: tuple, kwargs: dict, error: BaseException) -> None:
    """Raise TorchInputError (from `error`) if an argument is a torch.Tensor; else return.

    An error already raised for an inner layer passes through unchanged, so the innermost layer
    that received the tensor is the one named; so does jaxmodule's own, more precise message
    for a torch object it recognised (e.g. a torch PackedSequence given to an RNN).
    """
    if isinstance(error, TorchInputError) or "jaxmodule" in str(error):
        return
    where = next((p for i, a in enumerate(args) if (p := _find(a, f"argument {i}"))), None)
    if where is None:
        where = next((p for k, v in kwargs.items() if (p := _find(v, f"argument {k!r}"))), None)
    if where is not None:
        raise TorchInputError(
            TORCH_INPUT_HINT.format(layer=type(module).__name__, where=where)
        ) from error
