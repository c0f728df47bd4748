"""End to end: the ported MNIST script (Net, train/test loops, main) matches torch."""

import types

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch

from tests.helpers import assert_close
from tests.port._porting import assert_same_state, ported_fixture, torch_fixture

tm_ = torch_fixture("mnist")


@pytest.fixture(scope="module")
def jm(tmp_path_factory):
    module, result = ported_fixture("mnist", tmp_path_factory.mktemp("mnist"))
    module.report = result.issues
    return module


@pytest.fixture
def models(jm):
    torch.manual_seed(0)
    torch_model = tm_.Net()
    model = jm.Net()
    model.load_state_dict(torch_model.state_dict())
    for m in (model, torch_model):  # dropout masks cannot agree across libraries
        m.dropout1.p = m.dropout2.p = 0.0
    return model, torch_model


def data(n, seed):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n)


def loaders(images, labels, batch_size=8):
    jm_batches = [
        (jnp.asarray(images[i : i + batch_size]), jnp.asarray(labels[i : i + batch_size]))
        for i in range(0, len(images), batch_size)
    ]
    torch_batches = [
        (torch.tensor(images[i : i + batch_size]), torch.tensor(labels[i : i + batch_size]))
        for i in range(0, len(images), batch_size)
    ]
    return jm_batches, torch_batches


def test_report_is_empty(jm):
    assert jm.report == []


def test_adadelta_training_matches(models, jm, capsys):
    model, torch_model = models
    args = types.SimpleNamespace(log_interval=1, dry_run=False)
    jm_loader, torch_loader = loaders(*data(24, 0))
    jm.train(
        args,
        model,
        jaxmodule.device("cpu"),
        jm_loader,
        jaxmodule.optim.Adadelta(model.parameters(), lr=1.0),
        1,
    )
    printed = capsys.readouterr().out
    tm_.train(
        args,
        torch_model,
        torch.device("cpu"),
        torch_loader,
        torch.optim.Adadelta(torch_model.parameters(), lr=1.0),
        1,
    )
    assert_same_state(model, torch_model)
    torch_printed = capsys.readouterr().out
    jm_losses = [float(line.rsplit(" ", 1)[1]) for line in printed.splitlines()]
    torch_losses = [float(line.rsplit(" ", 1)[1]) for line in torch_printed.splitlines()]
    assert_close(np.array(jm_losses), np.array(torch_losses))


def test_evaluation_matches(models, jm):
    model, torch_model = models
    jm_loader, torch_loader = loaders(*data(20, 1))
    loss, correct = jm.test(model, jaxmodule.device("cpu"), jm_loader)
    t_loss, t_correct = tm_.test(torch_model, torch.device("cpu"), torch_loader)
    assert_close(loss, t_loss)
    assert correct == t_correct


def test_main_runs(jm, tmp_path):
    path = tmp_path / "mnist_cnn.pt"
    loss, correct = jm.main(
        ["--train-size", "16", "--batch-size", "8", "--epochs", "1", "--save-model", str(path)]
    )
    assert np.isfinite(loss) and 0 <= correct <= 8
    restored = jm.Net()
    restored.load_state_dict(jaxmodule.load(str(path)))
