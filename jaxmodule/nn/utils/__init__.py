"""`jaxmodule.nn.utils`: torch.nn.utils' gradient clipping, parameter/vector conversion and
parametrizations,
and `kv_cache` (a static key/value cache for generation, which torch.nn does not have).

The deprecated hook-based `weight_norm`/`spectral_norm` (and their `remove_*`) raise
NotImplementedError pointing at `parametrizations.weight_norm` / `parametrizations.spectral_norm`,
which torch recommends (one way to do each thing).
"""

from ..modules._eager import plain_forward, pure_forward  # noqa: F401
from . import kv_cache, parametrizations, parametrize  # noqa: F401
from .clip_grad import (  # noqa: F401
    clip_grad_norm,
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
)
from .convert_parameters import parameters_to_vector, vector_to_parameters  # noqa: F401
from .spectral_norm import remove_spectral_norm, spectral_norm  # noqa: F401
from .weight_norm import remove_weight_norm, weight_norm  # noqa: F401

__all__ = [
    "clip_grad_norm",
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "get_total_norm",
    "kv_cache",
    "parameters_to_vector",
    "parametrizations",
    "parametrize",
    "plain_forward",
    "pure_forward",
    "remove_spectral_norm",
    "remove_weight_norm",
    "spectral_norm",
    "vector_to_parameters",
    "weight_norm",
]
