"""Port a torch model to jaxmodule, check it is the same function, train it, and hand it back.

A torch user's round trip, step by step:

1. a torch model (a small CNN with BatchNorm and Dropout), and the same class written with
   jaxmodule: the source differs only in the imports, so the state_dict keys are the same;
2. `jax_model.load_state_dict(torch_model.state_dict())` (torch tensors are accepted as they
   are), then both run on the same input: the max abs difference is printed and checked < 1e-5;
3. one identical SGD step in both frameworks (BatchNorm in training mode, Dropout off): the
   updated weights agree too;
4. more training in jaxmodule (`jaxmodule.compile`d step, Dropout on), fitting the batch;
5. the trained weights back to torch with `jaxmodule.utils.to_torch_state_dict(jax_model)` and
   `torch_model.load_state_dict(...)`: torch's outputs match jaxmodule's again.

Needs torch (in the `test` extra: `pip install 'jaxmodule[test]'`, or `pip install torch`).

    .venv/bin/python examples/port_torch_model.py
    .venv/bin/python examples/port_torch_model.py --steps 50 --batch-size 64
    .venv/bin/python examples/port_torch_model.py --smoke     # the CI smoke test
"""

from __future__ import annotations

import argparse
import sys

import jax.numpy as jnp
import jaxmodule
import jaxmodule.nn as jnn
import jaxmodule.nn.functional as JF
import numpy as np
from jaxmodule.utils import to_torch_state_dict

try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as TF
except ImportError:
    torch = None

__all__ = ["make_model", "max_abs_diff", "main"]

TOLERANCE = 1e-5


def make_model(nn, F):
    """The model class, written once for either library (`nn`, `F`: torch's or jaxmodule's)."""

    class SmallCNN(nn.Module):
        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(16)
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(32)
            self.pool = nn.MaxPool2d(2)
            self.dropout = nn.Dropout(0.25)
            self.fc1 = nn.Linear(32 * 7 * 7, 64)
            self.fc2 = nn.Linear(64, num_classes)

        def forward(self, x):
            x = self.pool(F.relu(self.bn1(self.conv1(x))))
            x = self.pool(F.relu(self.bn2(self.conv2(x))))
            x = self.dropout(x.reshape(x.shape[0], -1))
            return self.fc2(F.relu(self.fc1(x)))

    return SmallCNN


def max_abs_diff(jax_value, torch_value) -> float:
    return float(np.abs(np.asarray(jax_value) - torch_value.detach().numpy()).max())


def check(what: str, diff: float) -> None:
    print(f"{what}: max abs diff {diff:.2e} (< {TOLERANCE:g}: {diff < TOLERANCE})")
    if not diff < TOLERANCE:
        sys.exit(f"port_torch_model.py: {what} differ by {diff:.2e}, more than {TOLERANCE:g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=20, help="jaxmodule training steps after the shared one"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--smoke", action="store_true", help="few steps (the CI smoke test)")
    args = parser.parse_args(argv)
    if torch is None:
        sys.exit(
            "port_torch_model.py needs PyTorch, which is in the test extra: "
            "pip install 'jaxmodule[test]' (or pip install torch)"
        )
    if args.smoke:
        args.steps, args.batch_size = 3, 16

    torch.manual_seed(0)
    jaxmodule.manual_seed(0)
    torch_model = make_model(tnn, TF)()
    jax_model = make_model(jnn, JF)()
    print(jax_model)

    # 1-2. torch weights into jaxmodule; same outputs
    result = jax_model.load_state_dict(torch_model.state_dict())
    print(
        f"load_state_dict(torch_model.state_dict()): {result}; {len(jax_model.state_dict())} "
        f"entries, keys equal: {list(jax_model.state_dict()) == list(torch_model.state_dict())}"
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, args.batch_size)
    torch_model.eval()
    jax_model.eval()
    with torch.no_grad():
        check(
            "eval outputs, torch weights",
            max_abs_diff(jax_model(jnp.asarray(x)), torch_model(torch.from_numpy(x))),
        )

    # 3. one identical SGD step in both (BatchNorm uses batch statistics, Dropout is off)
    torch_model.train()
    jax_model.train()
    torch_model.dropout.eval()
    jax_model.dropout.eval()
    torch_opt = torch.optim.SGD(torch_model.parameters(), lr=args.lr, momentum=0.9)
    jax_opt = jaxmodule.optim.SGD(jax_model.parameters(), lr=args.lr, momentum=0.9)
    criterion = jnn.CrossEntropyLoss()

    @jaxmodule.compile
    def train_step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda m: criterion(m(x), y), model)  # loss.backward()
        optimizer.step()
        return loss

    torch_opt.zero_grad()
    torch_loss = tnn.CrossEntropyLoss()(torch_model(torch.from_numpy(x)), torch.from_numpy(y))
    torch_loss.backward()
    torch_opt.step()
    jax_loss = train_step(jax_model, jax_opt, jnp.asarray(x), jnp.asarray(y))
    print(f"one SGD step: loss torch {torch_loss.item():.6f}, jaxmodule {float(jax_loss):.6f}")
    torch_sd = torch_model.state_dict()
    check(
        "weights and running statistics after the step",
        max(max_abs_diff(v, torch_sd[k].float()) for k, v in jax_model.state_dict().items()),
    )

    # 4. more training in jaxmodule only, Dropout on: fit the batch (random images, random labels)
    jax_model.dropout.train()
    losses = [
        float(train_step(jax_model, jax_opt, jnp.asarray(x), jnp.asarray(y)))
        for _ in range(args.steps)
    ]
    print(
        f"{args.steps} more jaxmodule steps on the batch (Dropout on): loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    )

    # 5. back to torch
    torch_model.load_state_dict(to_torch_state_dict(jax_model))
    torch_model.eval()
    jax_model.eval()
    with torch.no_grad():
        check(
            "eval outputs after jaxmodule training, weights back in torch",
            max_abs_diff(jax_model(jnp.asarray(x)), torch_model(torch.from_numpy(x))),
        )
    print(
        f"torch's bn2.num_batches_tracked: {int(torch_model.bn2.num_batches_tracked)} "
        f"(1 shared step + {args.steps} jaxmodule steps)"
    )


if __name__ == "__main__":
    main()
