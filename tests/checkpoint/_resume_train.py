"""Training loop shared by test_manager's resume test (imported in-process and run as a script).

A Linear-ReLU-Dropout-Linear model with SGD(momentum) and StepLR on a deterministic data source
(per-epoch permutations of a fixed dataset). `python _resume_train.py DIR TOTAL OUT` restores the
latest step from the CheckpointManager in DIR, trains up to TOTAL steps, and writes the losses
and final parameters to OUT (a .npz file).
"""

from __future__ import annotations

import sys

import jaxmodule
import jaxmodule.nn.functional as F
import numpy as np
from jaxmodule import nn, optim
from jaxmodule.checkpoint import CheckpointManager

DATA_X = np.random.default_rng(0).standard_normal((24, 4)).astype(np.float32)
DATA_Y = DATA_X @ np.arange(4, dtype=np.float32)[:, None] * 0.1
BATCH = 8


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(x))))


def batch(step: int) -> tuple[np.ndarray, np.ndarray]:
    """The data order: epoch e visits the dataset in permutation rng(e)."""
    per_epoch = len(DATA_X) // BATCH
    epoch, pos = divmod(step, per_epoch)
    idx = np.random.default_rng(1000 + epoch).permutation(len(DATA_X))[
        pos * BATCH : (pos + 1) * BATCH
    ]
    return DATA_X[idx], DATA_Y[idx]


def make():
    jaxmodule.manual_seed(0)
    model = Net()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7)
    return model, opt, sched


def state(model, opt, sched, step):
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "step": step,
        "rng": jaxmodule.default_generator.get_state(),
    }


def restore(mgr, model, opt, sched) -> int:
    st = mgr.restore()
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    jaxmodule.default_generator.set_state(st["rng"])
    return st["step"]


def train(model, opt, sched, start, stop, mgr=None, save_at=None):
    losses = []
    for step in range(start, stop):
        x, y = batch(step)
        opt.zero_grad()
        loss = jaxmodule.backward(lambda m, x, y: ((m(x) - y) ** 2).mean(), model, x, y)
        opt.step()
        sched.step()
        losses.append(float(loss))
        if mgr is not None and step + 1 == save_at:
            mgr.save(step + 1, state(model, opt, sched, step + 1), force=True)
    return losses


def params(model):
    return {k: np.asarray(v) for k, v in model.state_dict().items()}


if __name__ == "__main__":
    directory, total, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    model, opt, sched = make()
    with CheckpointManager(directory) as mgr:
        start = restore(mgr, model, opt, sched)
    losses = train(model, opt, sched, start, total)
    np.savez(out, losses=np.array(losses, np.float64), **params(model))
