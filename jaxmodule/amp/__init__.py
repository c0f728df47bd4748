"""`jaxmodule.amp`: mixed precision as torch.amp does it.

Keep float32 master weights in the model, run matmul-heavy ops (linear, conv, attention, RNN
cells) in bfloat16 or float16 inside `autocast`, and scale the loss with `GradScaler` for
float16 so small gradients do not underflow.

>>> import jax.numpy as jnp, jaxmodule
>>> from jaxmodule import nn
>>> model = nn.Linear(4, 2)
>>> with jaxmodule.amp.autocast("cpu", dtype=jnp.bfloat16):
...     y = model(jnp.ones((3, 4)))
>>> y.dtype, model.weight.dtype
(dtype(bfloat16), dtype('float32'))
"""

from .autocast_mode import autocast, autocast_inputs, get_autocast_dtype, is_autocast_enabled
from .grad_scaler import GradScaler

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype", "autocast_inputs"]
