"""LazyLinear loaded from a state_dict before its first call, as torch allows."""

import jax.numpy as jnp
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn


def test_lazy_linear_loaded_then_called_matches_torch():
    src = torch.nn.Linear(3, 2)
    t, j = torch.nn.LazyLinear(2), nn.LazyLinear(2)
    t.load_state_dict(src.state_dict())
    j.load_state_dict(src.state_dict())
    x = randn(4, 3)
    assert_close(j(jnp.asarray(x)), t(torch.tensor(x)))
    assert type(j).__name__ == type(t).__name__ == "Linear"
    assert repr(j) == repr(t) and j.in_features == t.in_features == 3
