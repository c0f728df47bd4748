"""`jaxmodule.nn`: torch.nn's public names (Module, Parameter, Buffer, layers, init, functional)."""

from . import functional, init, utils  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules.module import (  # noqa: F401
    register_module_backward_hook,
    register_module_buffer_registration_hook,
    register_module_forward_hook,
    register_module_forward_pre_hook,
    register_module_full_backward_hook,
    register_module_full_backward_pre_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)
from .parameter import Buffer, Parameter, UninitializedBuffer, UninitializedParameter  # noqa: F401
