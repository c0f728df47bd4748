"""`jaxmodule.backward` in the forms torch code needs: `backward(lambda: expr)` (torch's
`loss.backward()`: every trainable Parameter the loss read) and `has_aux=True` (the loss plus
logits or a new hidden state), eagerly and compiled, against torch's gradients."""

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn


def two_models():
    """An encoder and a head, with one frozen parameter, as torch would train them."""
    tenc, thead = torch.nn.Linear(5, 7), torch.nn.Linear(7, 3)
    jenc, jhead = nn.Linear(5, 7), nn.Linear(7, 3)
    jenc.load_state_dict(tenc.state_dict())
    jhead.load_state_dict(thead.state_dict())
    thead.bias.requires_grad_(False)
    jhead.bias.requires_grad_(False)
    return tenc, thead, jenc, jhead


def torch_grads(tenc, thead, x, y):
    out = thead(torch.tanh(tenc(torch.tensor(x))))
    loss = torch.nn.functional.cross_entropy(out, torch.tensor(y))
    loss.backward()
    return loss, out


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("has_aux", [False, True])
def test_zero_argument_backward_matches_torch(compiled, has_aux):
    tenc, thead, jenc, jhead = two_models()
    x, y = randn(4, 5), np.array([0, 2, 1, 2])
    tl, tout = torch_grads(tenc, thead, x, y)

    def step(x, y):
        def loss_fn():
            out = jhead(jnp.tanh(jenc(x)))
            loss = nn.functional.cross_entropy(out, y)
            return (loss, out) if has_aux else loss

        return jaxmodule.backward(loss_fn, has_aux=has_aux)

    run = jaxmodule.compile(step, keep_grads=True) if compiled else step
    res = run(jnp.asarray(x), jnp.asarray(y))
    loss, aux = res if has_aux else (res, None)
    assert_close(loss, tl)
    if has_aux:
        assert_close(aux, tout)
        assert not isinstance(aux, jax.core.Tracer)
    for (tname, tp), (jname, jp) in zip(
        [*tenc.named_parameters(), *thead.named_parameters()],
        [*jenc.named_parameters(), *jhead.named_parameters()],
    ):
        assert tname == jname
        if tp.grad is None:
            assert jp.grad is None, jname  # frozen: untouched, as in torch
        else:
            assert_close(jp.grad, tp.grad)


def test_zero_argument_backward_accumulates_like_torch():
    tenc, thead, jenc, jhead = two_models()
    for i in range(2):
        x, y = randn(4, 5, seed=i), np.array([0, 2, 1, 2])
        torch_grads(tenc, thead, x, y)
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        jaxmodule.backward(
            lambda xj=xj, yj=yj: nn.functional.cross_entropy(jhead(jnp.tanh(jenc(xj))), yj)
        )
    for tp, jp in zip([*tenc.parameters()], [*jenc.parameters()]):
        assert_close(jp.grad, tp.grad)


def test_zero_argument_backward_keeps_buffer_updates_once_and_restores_on_error():
    """BatchNorm statistics are updated once (not twice for the discovery pass), and a loss
    that raises leaves every cell as it was."""
    tbn, jbn = torch.nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    x = randn(6, 3)
    tbn(torch.tensor(x)).sum().backward()
    jaxmodule.backward(lambda: jbn(jnp.asarray(x)).sum())
    assert_close(jbn.running_mean, tbn.running_mean)
    assert int(jbn.num_batches_tracked) == int(tbn.num_batches_tracked) == 1
    assert_close(jbn.weight.grad, tbn.weight.grad)

    before = np.array(jbn.running_mean)

    def bad():
        jbn(jnp.asarray(x))
        raise ValueError("in the loss")

    with pytest.raises(ValueError):
        jaxmodule.backward(bad)
    np.testing.assert_array_equal(np.asarray(jbn.running_mean), before)
    assert not isinstance(jbn.running_mean._value, jax.core.Tracer)


def test_has_aux_with_module_arguments_returns_the_rnn_state():
    """A language-model loop needs the new hidden state from the same forward."""
    trnn, jrnn = torch.nn.GRU(3, 4, batch_first=True), nn.GRU(3, 4, batch_first=True)
    jrnn.load_state_dict(trnn.state_dict())
    x = randn(2, 5, 3)
    tout, th = trnn(torch.tensor(x))
    tout.pow(2).mean().backward()

    def loss_fn(m, x):
        out, h = m(x)
        return (out**2).mean(), h

    step = jaxmodule.compile(
        lambda m, x: jaxmodule.backward(loss_fn, m, x, has_aux=True), keep_grads=True
    )
    loss, h = step(jrnn, jnp.asarray(x))
    assert_close(h, th)
    for tp, jp in zip(trnn.parameters(), jrnn.parameters()):
        assert_close(jp.grad, tp.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("compiled", [False, True])
def test_zero_argument_backward_with_dropout_in_training_mode(compiled):
    """Dropout draws from the global generator: the pass that finds the parameters must not trip
    the guard against draws inside plain jax tracing, and the generator advances exactly once."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    x = jnp.ones((8, 4))
    gen = jaxmodule.default_generator
    key_before = np.array(gen.get_state())

    def step(x):
        return jaxmodule.backward(lambda: model(x).sum())

    loss = (jaxmodule.compile(step, keep_grads=True) if compiled else step)(x)
    key_after = np.array(gen.get_state())
    gen.set_state(key_before)  # replaying from the same key gives backward's draw
    assert_close(loss, model(x).sum())
    np.testing.assert_array_equal(np.array(gen.get_state()), key_after)
    assert model[0].weight.grad is not None
