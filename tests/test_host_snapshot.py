"""Host data (torch tensors, numpy arrays) becomes a jax.Array as a snapshot taken at the call, as
`torch.tensor(x)` copies: changing the source in place afterwards changes nothing.

JAX queues a host-to-device transfer behind the work already dispatched and reads the host buffer
only when it runs, so without a private copy an in-place update right after the conversion (a
torch model trained on after `load_state_dict(torch_model.state_dict())`) reached jaxmodule's
parameters whenever the device was busy. Each case here starts device work first so that the
transfer is queued behind it (the ordering the bug needed), converts, changes the source in
place, and checks the jaxmodule side still holds the old values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

_busy = jax.jit(
    lambda a, n: jax.lax.fori_loop(0, n, lambda i, b: jnp.tanh(b @ a), a).sum(),
    static_argnums=1,
)
_A = jnp.full((900, 900), 1e-3)


def _in_flight(n: int = 4):
    """Device work (n matmuls of 900x900, ~8 ms each here) on every device, dispatched and not
    waited for: it occupies the threads that would otherwise run a transfer at once."""
    works = [_busy(jax.device_put(_A, d), n) for d in jax.devices()]
    return _All(works)


class _All:
    def __init__(self, works):
        self.works = works

    def block_until_ready(self):
        for w in self.works:
            w.block_until_ready()


def _torch_model():
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def _model():
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def test_a_torch_state_dict_loaded_then_trained_on_in_torch_keeps_the_loaded_values():
    tm, jm = _torch_model(), _model()
    expected = {k: v.detach().clone().numpy() for k, v in tm.state_dict().items()}
    jm.load_state_dict(tm.state_dict())  # once first: the timed call below is a warm one
    pending = _in_flight(40)
    jm.load_state_dict(tm.state_dict())
    with torch.no_grad():  # torch's optimizer step: in place
        for p in tm.parameters():
            p.add_(1.0)
    pending.block_until_ready()
    for k, v in jm.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), expected[k], err_msg=k)


def _source(kind):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    return torch.tensor(data) if kind == "torch" else data.copy()


def _bump(src):
    if isinstance(src, torch.Tensor):
        src.add_(100.0)
    else:
        src += 100.0


CONVERSIONS = {
    "jaxmodule.tensor": lambda src: jaxmodule.tensor(src),
    "nn.Parameter": lambda src: nn.Parameter(src),
    "register_buffer": lambda src: _with_buffer(src).b,
    "Parameter.data.copy_": lambda src: _copied_into(src),
    "module attribute assignment": lambda src: _assigned(src),
}


def _with_buffer(src):
    m = nn.Module()
    m.register_buffer("b", src)
    return m


def _copied_into(src):
    p = nn.Parameter(jnp.zeros((3, 4)))
    p.data.copy_(src)
    return p


def _assigned(src):
    lin = nn.Linear(4, 3)
    lin.weight = nn.Parameter(src)
    return lin.weight


@pytest.mark.parametrize("kind", ["torch", "numpy"])
@pytest.mark.parametrize("how", list(CONVERSIONS))
def test_a_source_changed_in_place_after_conversion_changes_nothing(how, kind):
    src = _source(kind)
    expected = np.arange(12, dtype=np.float32).reshape(3, 4)
    pending = _in_flight()
    out = CONVERSIONS[how](src)
    _bump(src)
    pending.block_until_ready()
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_from_numpy_is_a_snapshot():
    """torch.from_numpy shares memory; a jax.Array cannot, so jaxmodule's is a snapshot (the
    documented difference), never a half-updated mix."""
    src = np.arange(6, dtype=np.float32)
    pending = _in_flight()
    out = jaxmodule.from_numpy(src)
    src += 100.0
    pending.block_until_ready()
    np.testing.assert_array_equal(np.asarray(out), np.arange(6, dtype=np.float32))
