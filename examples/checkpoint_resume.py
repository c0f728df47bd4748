"""Resumable training with jaxmodule.checkpoint.CheckpointManager.

Run it, interrupt it (Ctrl-C) or let it finish, run it again: it continues from the last saved
step with the same parameters, optimizer momentum, learning-rate schedule, dropout RNG and data
order, so the result is bit-identical to an uninterrupted run.

    python examples/checkpoint_resume.py --dir /tmp/run --steps 200
"""

from __future__ import annotations

import argparse

import jaxmodule
import jaxmodule.nn.functional as F
import numpy as np
from jaxmodule import nn, optim
from jaxmodule.checkpoint import CheckpointManager


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(32, 1)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(x))))


def batch(step: int, size: int = 16):
    """A deterministic data source: batch `step` is always the same."""
    rng = np.random.default_rng(step)
    x = rng.standard_normal((size, 8)).astype(np.float32)
    return x, np.sin(x.sum(1, keepdims=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/jaxmodule_resume_example")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--save-every", type=int, default=20)
    args = ap.parse_args()

    jaxmodule.manual_seed(0)
    model = Net()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=50, gamma=0.5)

    with CheckpointManager(args.dir, save_interval_steps=args.save_every, max_to_keep=3) as mgr:
        start = 0
        if mgr.latest_step() is not None:
            state = mgr.restore()
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            jaxmodule.default_generator.set_state(state["rng"])
            start = state["step"]
            print(f"resumed from step {start}")
        for step in range(start, args.steps):
            loss = train_step(model, opt, *batch(step))
            sched.step()
            if mgr.save(
                step + 1,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "step": step + 1,
                    "rng": jaxmodule.default_generator.get_state(),
                },
            ):
                print(f"step {step + 1}: loss {float(loss):.4f} (saved)")
    print("final fc2.bias:", np.asarray(model.fc2.bias))


@jaxmodule.compile
def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = jaxmodule.backward(lambda m: ((m(x) - y) ** 2).mean(), model)
    opt.step()
    return loss


if __name__ == "__main__":
    main()
