"""Name tables the porting passes consult: torch's tensor functions, tensor methods, dtypes.

The tables list torch's names (torch 2.x). Whether jaxmodule has each one is checked when a file
is ported (`exists`), so a name jaxmodule lacks is converted and reported, never silently kept.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any

__all__ = [
    "TENSOR_FUNCTIONS",
    "TORCH_LEVEL",
    "DTYPES",
    "TENSOR_METHODS",
    "PY_RESULT_METHODS",
    "MODULE_ALSO_HAS",
    "INPLACE_ONLY",
    "RANDOM_INPLACE",
    "NOT_PORTABLE",
    "PARAM_ATTRS",
    "TENSOR_ATTRS",
    "PY_ATTRS",
    "MODULE_RESULT_METHODS",
    "MODULE_NAME_RE",
    "PY_NAME_RE",
    "PY_BUILTINS",
    "exists",
    "inplace_base",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# torch.<name>(...) functions on tensors; jaxmodule mirrors them as jaxmodule.<name>.
TENSOR_FUNCTIONS = _words("""
    tensor as_tensor from_numpy zeros ones empty full zeros_like ones_like empty_like full_like
    arange linspace logspace eye rand randn randint randperm rand_like randn_like randint_like
    normal bernoulli multinomial poisson
    cat concat concatenate stack hstack vstack dstack column_stack split chunk tensor_split
    unbind narrow reshape flatten unflatten squeeze unsqueeze transpose swapaxes swapdims permute
    movedim moveaxis t flip fliplr flipud roll rot90 tile repeat_interleave broadcast_to
    broadcast_tensors meshgrid atleast_1d atleast_2d atleast_3d
    tril triu tril_indices triu_indices diag diagonal diag_embed trace
    gather scatter scatter_add index_select masked_select masked_fill take take_along_dim where
    nonzero argwhere
    abs absolute neg negative sign sgn exp exp2 expm1 log log2 log10 log1p sqrt rsqrt square
    pow float_power sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh sigmoid
    erf erfc erfinv lgamma digamma reciprocal floor ceil round trunc frac fmod remainder
    clamp clip clamp_min clamp_max lerp add sub subtract mul multiply div divide true_divide
    floor_divide addcmul addcdiv maximum minimum fmax fmin logaddexp logsumexp hypot
    sum mean median nanmean nansum prod std var std_mean var_mean max min amax amin aminmax
    argmax argmin all any norm dist cumsum cumprod cummax cummin logcumsumexp diff count_nonzero
    topk sort argsort msort kthvalue unique unique_consecutive bincount histc bucketize
    searchsorted
    eq ne lt le gt ge equal allclose isclose isnan isinf isfinite isneginf isposinf logical_and
    logical_or logical_not logical_xor bitwise_and bitwise_or bitwise_xor bitwise_not
    matmul mm bmm mv dot vdot outer inner addmm addbmm baddbmm einsum tensordot kron cross
    cdist cosine_similarity pairwise_distance
    softmax log_softmax relu dropout layer_norm batch_norm group_norm embedding conv1d conv2d
    cosh cumulative_trapezoid trapezoid clone detach numel is_tensor is_floating_point
    is_complex is_nonzero result_type promote_types can_cast complex real imag angle polar
    conj nan_to_num sort deg2rad rad2deg heaviside
""")

# torch-level functions and classes that are not tensor math but that jaxmodule also mirrors.
TORCH_LEVEL = _words("""
    Tensor Generator device no_grad enable_grad set_grad_enabled is_grad_enabled inference_mode
    manual_seed seed initial_seed get_rng_state set_rng_state save load compile autocast
    get_default_dtype set_default_dtype set_printoptions
""")

DTYPES = _words("""
    float float32 float64 float16 bfloat16 double half int int8 int16 int32 int64 uint8 long
    short bool complex64 complex128 cfloat cdouble
""")

# torch.Tensor methods (out of place). `<name>_` of any of them is the in-place variant.
TENSOR_METHODS = _words("""
    view view_as reshape reshape_as expand expand_as repeat repeat_interleave tile flatten
    unflatten squeeze unsqueeze transpose permute t movedim contiguous chunk split tensor_split
    unbind narrow flip roll unfold select index_select masked_select masked_fill masked_scatter
    gather scatter scatter_add index_add index_fill index_copy index_put take nonzero
    tril triu diag diagonal
    size dim ndimension numel nelement element_size stride item tolist numpy is_contiguous
    is_floating_point is_complex data_ptr get_device
    to type type_as float double half bfloat16 int long short bool byte char cpu cuda
    detach clone new_zeros new_ones new_full new_empty new_tensor
    abs neg sign exp log log2 log10 log1p expm1 sqrt rsqrt square pow sin cos tan tanh sigmoid
    asin acos atan atan2 sinh cosh erf reciprocal floor ceil round trunc frac fmod remainder
    clamp clip clamp_min clamp_max lerp add sub mul div true_divide floor_divide addcmul
    addcdiv maximum minimum logsumexp
    sum mean median nanmean nansum prod std var max min amax amin argmax argmin all any norm
    cumsum cumprod cummax cummin diff count_nonzero logical_not logical_and logical_or
    topk sort argsort kthvalue unique
    eq ne lt le gt ge equal allclose isclose isnan isinf isfinite
    matmul mm bmm mv dot outer softmax log_softmax relu
    nan_to_num masked_fill float_power bernoulli multinomial
    backward register_hook retain_grad requires_grad_
""")

# In-place tensor methods that have no out-of-place method of the same stem.
INPLACE_ONLY = _words(
    "zero_ fill_ copy_ normal_ uniform_ bernoulli_ exponential_ geometric_ "
    "cauchy_ log_normal_ random_ fill_diagonal_ apply_ share_memory_ detach_"
)

# In-place random draws: on an activation these have no deterministic out-of-place rewrite.
RANDOM_INPLACE = _words(
    "normal_ uniform_ bernoulli_ exponential_ geometric_ cauchy_ log_normal_ random_"
)

# Tensor methods whose result is a Python value (or a numpy array), not a tensor.
PY_RESULT_METHODS = _words(
    "size dim ndimension numel nelement element_size stride item tolist "
    "numpy is_contiguous is_floating_point is_complex data_ptr get_device "
    "equal allclose"
)

# Tensor methods that torch.nn.Module also has: decided by the receiver (see _kinds.py).
MODULE_ALSO_HAS = _words("to type float double half bfloat16 cpu cuda requires_grad_")

# Calls on a module that return the module itself.
MODULE_RESULT_METHODS = _words(
    "to type float double half bfloat16 cpu cuda train eval requires_grad_ apply to_empty"
)

# Tensor methods the port leaves in place and reports when called on an activation.
NOT_PORTABLE = {
    "register_hook": "hooks on activations are not supported: use a module hook "
    "(register_forward_hook / register_full_backward_hook)",
    "retain_grad": "gradients of activations are not kept: return the value as an aux output "
    "of jaxmodule.grad(..., has_aux=True)",
    "requires_grad_": "activations do not carry requires_grad: differentiate with "
    "jaxmodule.grad / jaxmodule.backward",
}

# Attribute names that hold a module's parameters or buffers (in-place helpers allowed there).
PARAM_ATTRS = _words(
    "weight bias data running_mean running_var in_proj_weight in_proj_bias "
    "weight_ih_l0 weight_hh_l0 bias_ih_l0 bias_hh_l0"
)

# Tensor attributes that are tensors; and those that are plain Python values.
TENSOR_ATTRS = _words("T mT H mH real imag grad data")
PY_ATTRS = _words("shape dtype device ndim requires_grad is_cuda is_leaf layout")

# Unannotated names that hold a module (`model.to(device)` stays a module call).
MODULE_NAME_RE = re.compile(
    r"(?:^|_)(?:model|net|network|module|criterion|encoder|decoder|classifier|backbone)$"
)
# Unannotated parameter names that hold plain Python values.
PY_NAME_RE = re.compile(
    r"^(?:args|config|cfg|opt|optimizer|scheduler|device|epoch|epochs|"
    r"lr|log_interval|step|steps|batch_size|seed)$"
)

PY_BUILTINS = _words(
    "len int float str bool range enumerate zip list dict set tuple sorted "
    "print isinstance issubclass hasattr getattr type repr open format divmod "
    "round id hash callable vars dir reversed frozenset bytes ord chr"
)


def inplace_base(method: str) -> str | None:
    """`masked_fill_` -> `masked_fill`; None when `method` is not an in-place tensor method."""
    if method in INPLACE_ONLY:
        return method
    if method.endswith("_") and not method.endswith("__") and method[:-1] in TENSOR_METHODS:
        return method[:-1]
    return None


@functools.cache
def exists(dotted: str) -> bool:
    """True if `dotted` (e.g. 'jaxmodule.nn.functional.relu') names something that exists."""
    parts = dotted.split(".")
    obj: Any = None
    for i, part in enumerate(parts):
        if i == 0:
            try:
                obj = importlib.import_module(part)
            except ImportError:
                return False
            continue
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(parts[: i + 1]))
        except ImportError:
            return False
    return True
