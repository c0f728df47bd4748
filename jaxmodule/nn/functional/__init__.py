"""`jaxmodule.nn.functional`: torch.nn.functional's names and signatures on jax.numpy.

The math of every layer lives here once; modules hold state and call these functions.
Functions accept jax arrays and jaxmodule Parameters/Buffers and return jax arrays.
"""

from .activation import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .distance import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .sparse import *  # noqa: F401,F403
from .vision import *  # noqa: F401,F403
