"""Mixed precision: autocast keeps float32 master weights; GradScaler follows torch's schedule."""

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn, optim

from tests.helpers import assert_close, randn


def test_autocast_computes_in_low_precision_with_float32_master_weights():
    model = nn.Linear(4, 3)
    x = jnp.asarray(randn(2, 4))
    with jaxmodule.autocast("cpu", dtype=jnp.bfloat16):
        assert jaxmodule.amp.is_autocast_enabled()
        y = model(x)
    assert not jaxmodule.amp.is_autocast_enabled()
    assert y.dtype == jnp.bfloat16
    assert model.weight.dtype == jnp.float32
    # bfloat16 has 8 mantissa bits: agreement with float32 to ~1e-2 relative is the best possible.
    np.testing.assert_allclose(
        np.asarray(y, np.float32), np.asarray(model(x)), rtol=3e-2, atol=3e-2
    )
    g = jaxmodule.grad(
        lambda m: jaxmodule.autocast("cpu")(lambda: m(x).astype(jnp.float32).sum())()
    )(model)
    assert g.weight._value.dtype == jnp.float32


def test_autocast_disabled_and_bad_dtype():
    with jaxmodule.autocast("cpu", enabled=False):
        assert nn.Linear(2, 2)(jnp.ones((1, 2))).dtype == jnp.float32
    with pytest.raises(ValueError, match="floating"):
        jaxmodule.autocast("cpu", dtype=jnp.int32)


def test_compiled_step_is_keyed_on_autocast():
    model = nn.Linear(2, 2)
    fwd = jaxmodule.compile(lambda m, x: m(x))
    assert fwd(model, jnp.ones((1, 2))).dtype == jnp.float32
    with jaxmodule.autocast("cpu", dtype=jnp.float16):
        assert fwd(model, jnp.ones((1, 2))).dtype == jnp.float16
    assert fwd(model, jnp.ones((1, 2))).dtype == jnp.float32


@pytest.mark.parametrize("compiled", [False, True])
def test_grad_scaler_matches_torch_schedule_and_skips_nonfinite_steps(compiled):
    pattern = [False, True, False, False, True, False, False, False]  # steps with inf gradients
    tp = torch.nn.Parameter(torch.tensor(randn(3)))
    jm = nn.Linear(3, 1, bias=False)
    jm.weight.data = jnp.asarray(tp.detach().numpy())[None]
    topt = torch.optim.SGD([tp], lr=0.1)
    jopt = optim.SGD(jm.parameters(), lr=0.1)
    tsc = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=2)
    jsc = jaxmodule.amp.GradScaler(init_scale=8.0, growth_interval=2)

    def jstep(model, opt, scaler, bad):
        opt.zero_grad()
        jaxmodule.backward(
            lambda m: scaler.scale((m.weight * bad).sum() + (m.weight**2).sum()), model
        )
        scaler.step(opt)
        scaler.update()

    if compiled:
        jstep = jaxmodule.compile(jstep)
    for inf in pattern:
        bad = float("inf") if inf else 1.0
        topt.zero_grad()
        tsc.scale((tp * bad).sum() + (tp**2).sum()).backward()
        tsc.step(topt)
        tsc.update()
        jstep(jm, jopt, jsc, jnp.float32(bad))
        assert float(jsc.get_scale()) == tsc.get_scale()
        assert_close(jm.weight._value[0], tp.detach())
    assert jsc.state_dict()["scale"] == tsc.state_dict()["scale"]


def test_grad_scaler_state_dict_round_trip_and_errors():
    sc = jaxmodule.amp.GradScaler(init_scale=4.0)
    sc2 = jaxmodule.amp.GradScaler()
    sc2.load_state_dict(sc.state_dict())
    assert float(sc2.get_scale()) == 4.0
    with pytest.raises(ValueError, match="growth factor"):
        jaxmodule.amp.GradScaler(growth_factor=1.0)
    with pytest.raises(RuntimeError, match="empty"):
        sc2.load_state_dict({})


@pytest.mark.parametrize("kind", ["conv", "lstm", "mha"])
def test_autocast_covers_conv_rnn_and_attention(kind):
    if kind == "conv":
        layer, args = nn.Conv2d(2, 3, 3), (jnp.ones((1, 2, 5, 5)),)
    elif kind == "lstm":
        layer, args = nn.LSTM(4, 6), (jnp.ones((5, 2, 4)),)
    else:
        layer, args = nn.MultiheadAttention(8, 2), (jnp.ones((3, 2, 8)),) * 3
    with jaxmodule.autocast("cpu", dtype=jnp.bfloat16):
        out = layer(*args)
    out = out[0] if isinstance(out, tuple) else out
    assert out.dtype == jnp.bfloat16
    assert all(p.dtype == jnp.float32 for p in layer.parameters())
