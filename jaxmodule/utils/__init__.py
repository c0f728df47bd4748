"""Interop and inspection helpers: torch / safetensors files, numpy/torch state_dicts, `summary`."""

from ..checkpoint.serialization import register_file_reader
from ._safetensors import load_safetensors, save_safetensors
from .summary import summary
from .torch_interop import load_torch_state_dict, to_numpy_state_dict, to_torch_state_dict

__all__ = [
    "load_torch_state_dict",
    "to_torch_state_dict",
    "to_numpy_state_dict",
    "load_safetensors",
    "save_safetensors",
    "summary",
]

register_file_reader("torch", load_torch_state_dict)  # jaxmodule.load reads these files too
register_file_reader("safetensors", load_safetensors)
