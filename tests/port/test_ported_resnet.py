"""End to end: the ported ResNet (BatchNorm, shortcuts, torch.flatten) matches torch."""

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch

from tests.helpers import assert_close, randn
from tests.port._porting import assert_same_state, ported_fixture, torch_fixture

tr = torch_fixture("resnet")


@pytest.fixture(scope="module")
def jr(tmp_path_factory):
    module, result = ported_fixture("resnet", tmp_path_factory.mktemp("resnet"))
    module.report = result.issues
    return module


@pytest.fixture
def models(jr):
    torch.manual_seed(0)
    torch_model = tr.resnet_tiny()
    model = jr.resnet_tiny()
    model.load_state_dict(torch_model.state_dict())
    return model, torch_model


def test_report_is_empty(jr):
    assert jr.report == []


def test_eval_and_train_forward_match(models, jr):
    model, torch_model = models
    x = randn(4, 3, 32, 32)
    assert_close(
        model(jnp.asarray(x)), torch_model(torch.tensor(x))
    )  # train mode: batch statistics
    assert_same_state(model, torch_model)  # running statistics updated alike
    assert_close(model.eval()(jnp.asarray(x)), torch_model.eval()(torch.tensor(x)))
    assert_close(jr.predict(model, jnp.asarray(x)), tr.predict(torch_model, torch.tensor(x)))


def test_sgd_epoch_matches(models, jr):
    """Three SGD steps (momentum, weight decay). The batches are ones where torch's own steps are
    stable: for some batches (e.g. seeds 0-2) a relative weight change of 1e-7 after the first
    step already moves torch's own next conv1 gradient by ~1e-3 (measured), so no two float32
    implementations can agree there."""
    model, torch_model = models
    rng = np.random.default_rng(10)
    data = [(randn(4, 3, 32, 32, seed=s + 10), rng.integers(0, 10, 4)) for s in range(3)]
    optimizer = jaxmodule.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    t_optimizer = torch.optim.SGD(
        torch_model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4
    )
    loss, acc = jr.train_epoch(
        model,
        [(jnp.asarray(x), jnp.asarray(y)) for x, y in data],
        optimizer,
        jaxmodule.nn.CrossEntropyLoss(),
        jaxmodule.device("cpu"),
    )
    t_loss, t_acc = tr.train_epoch(
        torch_model,
        [(torch.tensor(x), torch.tensor(y)) for x, y in data],
        t_optimizer,
        torch.nn.CrossEntropyLoss(),
        torch.device("cpu"),
    )
    assert_close(loss, t_loss)
    assert acc == t_acc
    assert_same_state(model, torch_model)
