"""End to end: the ported GPT runs, loads torch's weights and matches torch's outputs and steps."""

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch

from tests.helpers import assert_close
from tests.port._porting import assert_same_state, ported_fixture, torch_fixture

tg = torch_fixture("gpt")


@pytest.fixture(scope="module")
def jg(tmp_path_factory):
    module, result = ported_fixture("gpt", tmp_path_factory.mktemp("gpt"))
    module.report = result.issues
    return module


@pytest.fixture
def models(jg):
    torch.manual_seed(0)
    torch_model = tg.GPT(tg.GPTConfig())
    model = jg.GPT(jg.GPTConfig())
    model.load_state_dict(torch_model.state_dict())
    return model, torch_model


def tokens(shape, seed=0):
    return np.random.default_rng(seed).integers(0, tg.GPTConfig.vocab_size, shape)


def test_report_is_empty(jg):
    assert jg.report == []


def test_forward_and_loss_match(models):
    model, torch_model = models
    idx, targets = tokens((3, 12)), tokens((3, 12), seed=1)
    logits, loss = model(jnp.asarray(idx), jnp.asarray(targets))
    t_logits, t_loss = torch_model(torch.tensor(idx), torch.tensor(targets))
    assert_close(logits, t_logits)
    assert_close(loss, t_loss)
    last, none = model(jnp.asarray(idx))
    assert none is None
    assert_close(last, torch_model(torch.tensor(idx))[0])


def test_generate_greedy_matches(models):
    model, torch_model = models
    idx = tokens((2, 4))
    out = model.generate(jnp.asarray(idx), 3, top_k=1)
    np.testing.assert_array_equal(
        np.asarray(out), torch_model.generate(torch.tensor(idx), 3, top_k=1).numpy()
    )


def _batches():
    return [(tokens((4, 16), seed=s), tokens((4, 16), seed=s + 10)) for s in range(3)]


def _run_both(jg, model, torch_model, optimizer, t_optimizer):
    batches = _batches()
    losses = jg.train_steps(
        model, optimizer, [(jnp.asarray(x), jnp.asarray(y)) for x, y in batches]
    )
    t_losses = tg.train_steps(
        torch_model, t_optimizer, [(torch.tensor(x), torch.tensor(y)) for x, y in batches]
    )
    assert_close(np.array(losses), np.array(t_losses))


def test_sgd_steps_match(models, jg):
    model, torch_model = models
    _run_both(
        jg,
        model,
        torch_model,
        jaxmodule.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9),
    )
    assert_same_state(model, torch_model)
    assert model.transformer.wte.weight is model.lm_head.weight  # still tied after the steps


def test_adamw_steps_match(models, jg):
    """AdamW through the file's configure_optimizers. Losses are compared: Adam's first steps are
    about lr * sign(grad), so parameters whose gradient is rounding noise (the key bias, whose true
    gradient is zero under softmax) move by +-lr differently in the two libraries."""
    model, torch_model = models
    _run_both(
        jg,
        model,
        torch_model,
        model.configure_optimizers(0.1, 3e-3, (0.9, 0.95)),
        torch_model.configure_optimizers(0.1, 3e-3, (0.9, 0.95)),
    )
