"""jaxmodule: PyTorch's nn.Module experience on JAX.

>>> import jaxmodule
>>> from jaxmodule import nn
>>> _ = jaxmodule.manual_seed(0)
>>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
>>> model(jaxmodule.randn(3, 4)).shape
(3, 2)
"""

from . import amp, checkpoint, distributed, nn, optim, utils  # noqa: F401
from ._autograd import backward, grad, value_and_grad  # noqa: F401
from ._compile import compile, set_logs  # noqa: F401,A004
from ._device import device  # noqa: F401 - torch.device: a place, and `with device("meta"):`
from ._dtype import (  # noqa: F401
    bfloat16,
    bool,
    complex64,
    complex128,
    double,
    float,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    uint8,
)
from ._functions import *  # noqa: F401,F403 - torch's tensor functions (cat, topk, max, sum, ...)
from ._grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from ._random import (  # noqa: F401
    Generator,
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    seed,
    set_rng_state,
)
from ._tensor import (  # noqa: F401
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    logspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from ._tensor_type import Size, Tensor, is_tensor  # noqa: F401 - Tensor's methods, installed on cells too
from ._xla_cache import enable_default_cache as _enable_default_cache
from .amp import autocast  # noqa: F401
from .checkpoint import load, save  # noqa: F401
from .nn.modules._purity import refuse_calls as _refuse_calls
from .utils import summary  # noqa: F401

_enable_default_cache()  # a persistent XLA compilation cache by default; see _xla_cache.py
# functions that change global state: an automatically checked eager forward may not call them
_refuse_calls(manual_seed, seed, set_rng_state, save, load, set_default_dtype, set_grad_enabled)
_refuse_calls(backward, Generator.manual_seed)
__version__ = "0.1.0"
