"""Convergence: the seed's MSELoss + SGD example and a small classifier reach a fixed loss in a
fixed number of steps (eagerly and compiled)."""

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
from jaxmodule import nn, optim


class MyModel(nn.Module):
    """The seed document's model."""

    def __init__(self):
        super(MyModel, self).__init__()  # noqa: UP008 - as written in the seed
        self.fc = nn.Linear(10, 5)

    def forward(self, x):
        return self.fc(x)


def make_step(criterion, compiled):
    def step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda m: criterion(m(x), y), model)
        optimizer.step()
        return loss

    return jaxmodule.compile(step) if compiled else step


@pytest.mark.parametrize("compiled", [False, True])
def test_seed_mse_sgd_example_converges(compiled):
    rng = np.random.default_rng(0)
    w_true = rng.standard_normal((10, 5)).astype(np.float32)
    x = jnp.asarray(rng.standard_normal((64, 10)).astype(np.float32))
    y = x @ w_true + 0.5
    model = MyModel()
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    criterion = nn.MSELoss()

    step = make_step(criterion, compiled)
    first = float(step(model, optimizer, x, y))
    for _ in range(1499):
        loss = step(model, optimizer, x, y)
    assert first > 5.0
    assert float(loss) < 1e-2


@pytest.mark.parametrize("compiled", [False, True])
def test_small_classifier_reaches_low_loss(compiled):
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((4, 8)).astype(np.float32) * 3
    labels = rng.integers(0, 4, 256)
    x = jnp.asarray(centers[labels] + rng.standard_normal((256, 8)).astype(np.float32))
    y = jnp.asarray(labels.astype(np.int32))
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()

    step = make_step(criterion, compiled)
    for _ in range(150):
        loss = step(model, optimizer, x, y)
    assert float(loss) < 0.05
    accuracy = float((model(x).argmax(-1) == y).mean())
    assert accuracy > 0.98
