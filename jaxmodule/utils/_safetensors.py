"""safetensors files: `load_safetensors` / `save_safetensors` (needs `pip install safetensors`)."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..checkpoint._placement import Placer
from .torch_interop import _place_tree, to_numpy_state_dict

__all__ = ["load_safetensors", "save_safetensors"]

_ORDER_KEY = "jaxmodule.key_order"
_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": jnp.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
    "C64": np.complex64,
    "F8_E4M3": jnp.float8_e4m3fn,
    "F8_E5M2": jnp.float8_e5m2,
}


def _safetensors() -> Any:
    try:
        import safetensors
    except ImportError:
        raise ImportError(
            "reading and writing .safetensors files needs the safetensors package: "
            "pip install safetensors (or pip install 'jaxmodule[interop]')"
        ) from None
    return safetensors


def load_safetensors(path: str | os.PathLike, map_location: Any = None) -> OrderedDict[str, Any]:
    """Read a `.safetensors` file into an OrderedDict of jax arrays.

    Args:
        path: the file.
        map_location: where the arrays go; the forms `jaxmodule.load` accepts.

    Keys come back in the order they were saved when the file was written by
    `save_safetensors`, else sorted (as `safetensors.torch.load_file` gives them). 64-bit
    integer and float tensors stay numpy arrays unless JAX's x64 mode is on.
    """
    st = _safetensors()
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"load_safetensors: no file at {p}")
    raw = p.read_bytes()
    try:
        items = st.deserialize(raw)
        with st.safe_open(str(p), framework="np") as fh:
            meta = fh.metadata() or {}
    except Exception as e:  # noqa: BLE001 - SafetensorError and friends
        raise RuntimeError(f"safetensors file {p} is truncated or damaged: {e}") from None
    arrays = {}
    for name, view in items:
        if view["dtype"] not in _DTYPES:
            raise NotImplementedError(
                f"load_safetensors: dtype {view['dtype']} of {name!r} in {p} is not supported"
            )
        arrays[name] = np.frombuffer(bytes(view["data"]), _DTYPES[view["dtype"]]).reshape(
            view["shape"]
        )
    order = sorted(arrays)
    if _ORDER_KEY in meta:
        saved = json.loads(meta[_ORDER_KEY])
        if sorted(saved) == order:
            order = saved
    out = OrderedDict((k, arrays[k]) for k in order)
    return _place_tree(out, Placer(map_location, order, str(p)))


def save_safetensors(
    state_dict: Any, path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> None:
    """Write a state_dict (or a Module's state_dict) to a `.safetensors` file.

    Args:
        state_dict: a mapping of names to arrays (jax, numpy, Parameter, torch) or a Module.
        path: the file to write.
        metadata: extra text metadata for the header.

    Tied weights (two keys holding one array) are written twice, as separate tensors.
    """
    st = _safetensors()
    arrays = to_numpy_state_dict(state_dict)
    keep: list[np.ndarray] = []
    specs = {}
    for name, arr in arrays.items():
        if not isinstance(name, str):
            raise TypeError(
                f"save_safetensors: keys must be str, got {type(name).__name__} {name!r}"
            )
        arr = np.ascontiguousarray(arr)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        keep.append(arr)
        if hasattr(st, "TensorSpec"):
            specs[name] = st.TensorSpec(
                dtype=arr.dtype.name, shape=arr.shape, data_ptr=arr.ctypes.data, data_len=arr.nbytes
            )
        else:  # safetensors < 0.6 takes the bytes themselves
            specs[name] = {"dtype": arr.dtype.name, "shape": arr.shape, "data": arr.tobytes()}
    meta = dict(metadata or {})
    meta.setdefault("format", "pt")
    meta[_ORDER_KEY] = json.dumps(list(arrays))
    st.serialize_file(specs, os.fspath(path), metadata=meta)
    del keep
