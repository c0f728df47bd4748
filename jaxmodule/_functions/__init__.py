"""torch's tensor functions (`torch.cat`, `torch.topk`, ...) on JAX arrays, one file per family.

Every function takes jax arrays (tracers too) and Parameters/Buffers, follows torch's signature,
argument names, dtype promotion and results, and works under `jax.jit` unless its docstring says
"eager only" (the output shape depends on the values). The package re-exports them at the top
level: `jaxmodule.cat`, `jaxmodule.topk`, ...

Differences from torch that hold everywhere: JAX's 64-bit mode is off, so torch's int64 results
(indices, integer sums, `randperm`, ...) are int32 and float64 is float32; there is no `out=`;
no function works in place.
"""

from . import _return_types as return_types  # noqa: F401
from ._indexing import *  # noqa: F401,F403
from ._indexing import __all__ as _indexing_all
from ._info import *  # noqa: F401,F403
from ._info import __all__ as _info_all
from ._joining import *  # noqa: F401,F403
from ._joining import __all__ as _joining_all
from ._linalg import *  # noqa: F401,F403
from ._linalg import __all__ as _linalg_all
from ._matrix import *  # noqa: F401,F403
from ._matrix import __all__ as _matrix_all
from ._pointwise import *  # noqa: F401,F403
from ._pointwise import __all__ as _pointwise_all
from ._random_fns import *  # noqa: F401,F403
from ._random_fns import __all__ as _random_all
from ._reductions import *  # noqa: F401,F403
from ._reductions import __all__ as _reductions_all
from ._shape import *  # noqa: F401,F403
from ._shape import __all__ as _shape_all
from ._sorting import *  # noqa: F401,F403
from ._sorting import __all__ as _sorting_all

__all__ = [
    "return_types",
    *_indexing_all,
    *_info_all,
    *_joining_all,
    *_linalg_all,
    *_matrix_all,
    *_pointwise_all,
    *_random_all,
    *_reductions_all,
    *_shape_all,
    *_sorting_all,
]
