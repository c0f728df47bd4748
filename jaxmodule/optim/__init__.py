"""torch.optim on optax: torch's optimizer classes, arguments, state_dict layout and numerics.

>>> import jax.numpy as jnp
>>> from jaxmodule import optim
>>> from jaxmodule.nn import Parameter
>>> w = Parameter(jnp.zeros(3))
>>> opt = optim.Adam([w], lr=0.1)
>>> sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
>>> w.grad = jnp.ones(3)
>>> opt.step(); sched.step()
>>> opt.param_groups[0]["lr"]
0.05
"""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .lion import Lion
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "lr_scheduler",
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Lion",
]
