"""PyTorch interop: read `torch.save` files (with or without torch) and export state_dicts."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._dtype import x64_enabled
from .._tensor import _torch_to_numpy, cell_value, is_torch_tensor
from ..checkpoint._placement import Placer
from ._torch_pickle import ExpansionBudget, UnsafePickleError, read_torch_file, verify_zip

__all__ = ["load_torch_state_dict", "to_torch_state_dict", "to_numpy_state_dict"]


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _tensor_to_numpy(t: Any) -> np.ndarray:
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(jnp.bfloat16)
    if t.dtype in (getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)):
        return t.contiguous().view(torch.uint8).numpy().view(jnp.dtype(str(t.dtype).split(".")[-1]))
    return t.numpy().copy()


def _torch_to_numpy_tree(obj: Any, budget: Any, parts: tuple = ()) -> Any:
    """torch tensors -> numpy arrays, each first accounted for in `budget` (an ExpansionBudget)."""
    if is_torch_tensor(obj):
        budget.take(obj.numel() * obj.element_size(), "/".join(str(p) for p in parts))
        return _tensor_to_numpy(obj)
    if isinstance(obj, OrderedDict):
        out = OrderedDict((k, _torch_to_numpy_tree(v, budget, (*parts, k))) for k, v in obj.items())
        for name, value in getattr(obj, "__dict__", {}).items():
            setattr(out, name, value)
        return out
    if isinstance(obj, dict):
        return {k: _torch_to_numpy_tree(v, budget, (*parts, k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_to_numpy_tree(v, budget, (*parts, i)) for i, v in enumerate(obj))
    if type(obj).__module__.startswith("torch") and type(obj).__name__ == "device":
        return str(obj)
    if type(obj).__module__.startswith("torch") and type(obj).__name__ == "dtype":
        return jnp.dtype(str(obj).split(".")[-1])
    return obj


def _place_tree(obj: Any, placer: Any, parts: tuple = ()) -> Any:
    """numpy arrays -> jax arrays where placer says (64-bit data stays numpy without x64)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.itemsize == 8 and obj.dtype.kind in "iuf" and not x64_enabled():
            return obj
        key = "/".join(str(p) for p in parts)
        sharding = placer(key, jax.ShapeDtypeStruct(obj.shape, obj.dtype), "cpu", lambda: None)
        return jax.device_put(obj, sharding)
    if isinstance(obj, OrderedDict):
        out = OrderedDict((k, _place_tree(v, placer, (*parts, k))) for k, v in obj.items())
        for name, value in getattr(obj, "__dict__", {}).items():
            setattr(out, name, value)
        return out
    if isinstance(obj, dict):
        return {k: _place_tree(v, placer, (*parts, k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_place_tree(v, placer, (*parts, i)) for i, v in enumerate(obj))
    return obj


def _array_keys(obj: Any, parts: tuple = ()) -> list[str]:
    if isinstance(obj, np.ndarray):
        return ["/".join(str(p) for p in parts)]
    if isinstance(obj, dict):
        return [k for key, v in obj.items() for k in _array_keys(v, (*parts, key))]
    if isinstance(obj, (list, tuple)):
        return [k for i, v in enumerate(obj) for k in _array_keys(v, (*parts, i))]
    return []


def load_torch_state_dict(
    path: str | os.PathLike, map_location: Any = None, *, use_torch: bool | None = None
) -> Any:
    """Read a file written by `torch.save` (usually a state_dict) as jax arrays.

    Args:
        path: the `.pth`/`.pt` file (zip or legacy format).
        map_location: where the arrays go; the forms `jaxmodule.load` accepts.
        use_torch: True reads through `torch.load(weights_only=True)` (torch required); False
            uses jaxmodule's own restricted unpickler (no torch needed); None (default) uses
            torch when it is installed.

    Returns:
        The saved object with every tensor replaced by a jax array; 64-bit integer and float
        tensors stay numpy arrays unless JAX's x64 mode is on (JAX would truncate them).

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError: `path` is a directory.
        RuntimeError: the file is truncated or damaged (a zip file's records are checked against
            their CRC-32 first), or its tensors would expand to more than 64 times the file's
            size plus 1 MiB (stride-0 views); the message names the file.
        pickle.UnpicklingError: the file holds objects other than tensors, containers and plain
            Python values (this error is also a RuntimeError).
    """
    p = Path(os.fspath(path))
    if p.is_dir():
        raise IsADirectoryError(f"load_torch_state_dict: {p} is a directory, not a torch.save file")
    if not p.is_file():
        raise FileNotFoundError(f"load_torch_state_dict: no file at {p}")
    if use_torch is None:
        use_torch = _torch_available()
    if use_torch:
        import torch

        where = f"torch file {p}"
        with open(p, "rb") as fh:
            if fh.read(4) == b"PK\x03\x04":
                verify_zip(p, where)
        try:
            obj = torch.load(p, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as e:
            lines = [ln for ln in str(e).splitlines() if "WeightsUnpickler error" in ln] or str(
                e
            ).splitlines()
            reason = lines[0].strip()[:300] if lines else type(e).__name__
            raise UnsafePickleError(f"{where}: refusing to load it ({reason})") from e
        except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, OSError, EOFError, ...
            raise RuntimeError(
                f"{where} is truncated or damaged: {type(e).__name__}: {str(e)[:300]}"
            ) from e
        obj = _torch_to_numpy_tree(obj, ExpansionBudget(p.stat().st_size, where))
    else:
        obj = read_torch_file(p)
    placer = Placer(map_location, _array_keys(obj), str(p))
    return _place_tree(obj, placer)


def _state_items(model_or_sd: Any) -> list[tuple[str, Any]]:
    sd = model_or_sd.state_dict() if hasattr(model_or_sd, "state_dict") else model_or_sd
    return list(sd.items())


def to_numpy_state_dict(model: Any) -> OrderedDict[str, np.ndarray]:
    """The model's state_dict (or a given state_dict) with every value copied to a numpy array.

    bfloat16 values come back as numpy arrays of `ml_dtypes.bfloat16` (jnp.bfloat16).
    """
    out = OrderedDict()
    for k, v in _state_items(model):
        v = cell_value(v)
        out[k] = _torch_to_numpy(v) if is_torch_tensor(v) else np.array(v, copy=True)
    return out


def to_torch_state_dict(model: Any) -> OrderedDict[str, Any]:
    """The model's state_dict as torch tensors (CPU), ready for `torch_model.load_state_dict`.

    Requires torch. bfloat16 and other dtypes are kept bit-exact.
    """
    try:
        import torch
    except ImportError:
        raise ImportError("to_torch_state_dict requires PyTorch: pip install torch") from None
    out = OrderedDict()
    for k, v in to_numpy_state_dict(model).items():
        if v.dtype == jnp.bfloat16:
            out[k] = torch.from_numpy(np.ascontiguousarray(v).view(np.int16)).view(torch.bfloat16)
        else:
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
    return out
