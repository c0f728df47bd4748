"""Module hooks: forward hooks for feature extraction, backward hooks for gradient inspection.

torch's hook API, unchanged:

- `register_forward_hook(fn(module, input, output))` on chosen layers collects intermediate
  activations (feature extraction from a trained or pretrained network), and
  `register_forward_pre_hook(fn(module, input))` sees (or replaces) a layer's input;
- `register_full_backward_hook(fn(module, grad_input, grad_output))` and
  `register_full_backward_pre_hook(fn(module, grad_output))` see the gradients flowing through a
  layer; after `jaxmodule.backward(...)` (torch's `loss.backward()`) each parameter's `.grad`
  holds its gradient, so per-parameter gradient norms are read there (jaxmodule has no
  `Tensor.register_hook` on parameters);
- each `register_*` returns a handle; `handle.remove()` takes the hook off.

Hooks run while the forward runs. Eagerly they see concrete arrays. Inside `jaxmodule.compile`
forward hooks run once, while the step is traced (they see tracers: return what you need from
the step instead of storing it), and backward hooks run on every call with real values (through
`jax.experimental.io_callback`), so they can log gradient norms of a compiled training step.

    .venv/bin/python examples/hooks.py
    .venv/bin/python examples/hooks.py --steps 10
    .venv/bin/python examples/hooks.py --smoke        # the CI smoke test
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import jaxmodule
import jaxmodule.nn.functional as F
import numpy as np
from jaxmodule import nn, optim

__all__ = ["Net", "main"]


class Net(nn.Module):
    """A small CNN with named stages to hook."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = jaxmodule.flatten(self.features(x), 1)
        return self.fc2(F.relu(self.fc1(x)))


def norm(x) -> float:
    return float(jnp.linalg.norm(jnp.asarray(x)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=5, help="compiled training steps with a backward hook"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="3 steps (the CI smoke test)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = 3
    jaxmodule.manual_seed(0)
    model = Net()
    x = jaxmodule.randn(args.batch_size, 1, 16, 16)
    y = jaxmodule.randint(0, 10, (args.batch_size,))
    criterion = nn.CrossEntropyLoss()

    print("--- forward hooks: feature extraction ---")
    activations: dict[str, object] = {}

    def save_activation(name):
        def hook(module, inputs, output):
            activations[name] = output

        return hook

    handles = [
        model.get_submodule(name).register_forward_hook(save_activation(name))
        for name in ("features.1", "features.4", "features.5", "fc1")
    ]
    handles.append(
        model.fc1.register_forward_pre_hook(
            lambda module, inputs: print(f"pre-hook fc1: input {tuple(inputs[0].shape)}")
        )
    )
    with jaxmodule.no_grad():
        logits = model(x)
    for name, act in activations.items():
        print(
            f"activation {name:<11} {type(model.get_submodule(name)).__name__:<17} shape {tuple(act.shape)}, "
            f"mean {float(jnp.mean(act)):.4f}"
        )
    print(f"logits {tuple(logits.shape)}")
    for handle in handles:
        handle.remove()
    activations.clear()
    model(x)
    print(f"after handle.remove(): {len(activations)} activations collected")

    print("--- backward hooks: gradient inspection ---")
    grads_seen: list[str] = []

    def grad_hook(name):
        def hook(module, grad_input, grad_output):
            gin = grad_input[0]
            gin = "None" if gin is None else f"{tuple(gin.shape)} norm {norm(gin):.4f}"
            grads_seen.append(
                f"{name}: grad_output {tuple(grad_output[0].shape)} "
                f"norm {norm(grad_output[0]):.4f}, grad_input {gin}"
            )

        return hook

    def grad_pre_hook(module, grad_output):
        grads_seen.append(f"fc2 pre-hook: grad_output norm {norm(grad_output[0]):.4f}")

    back = [
        model.fc2.register_full_backward_pre_hook(grad_pre_hook),
        model.fc2.register_full_backward_hook(grad_hook("fc2")),
        model.fc1.register_full_backward_hook(grad_hook("fc1")),
    ]
    loss = jaxmodule.backward(lambda m: criterion(m(x), y), model)  # loss.backward()
    print(f"loss {float(loss):.4f}; hooks fired in backward order:")
    for line in grads_seen:
        print("  " + line)
    print("parameter gradient norms (.grad after backward):")
    for name, p in model.named_parameters():
        print(f"  {name:<20} {tuple(p.shape)!s:<16} grad norm {norm(p.grad):.4f}")
    total = jnp.sqrt(sum(jnp.sum(p.grad**2) for p in model.parameters()))
    print(
        f"total grad norm {float(total):.4f} "
        f"(clip_grad_norm_ returns the same: {float(nn.utils.clip_grad_norm_(model.parameters(), 1e9)):.4f})"
    )
    model.zero_grad()

    print("--- a backward hook inside a compiled training step ---")
    for handle in back:
        handle.remove()
    fc1_grad_norms: list[float] = []
    handle = model.fc1.register_full_backward_hook(
        lambda module, grad_input, grad_output: fc1_grad_norms.append(norm(grad_output[0]))
    )
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    @jaxmodule.compile
    def train_step(x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda: criterion(model(x), y))
        optimizer.step()
        return loss

    losses = [float(train_step(x, y)) for _ in range(args.steps)]
    print(f"{args.steps} compiled steps: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(
        f"fc1 grad_output norm per step (the hook ran on every call, with real values): "
        f"{np.round(fc1_grad_norms, 4).tolist()}"
    )
    handle.remove()
    train_step(x, y)
    print(
        f"after handle.remove(): {len(fc1_grad_norms)} hook calls (the step retraced without the hook: "
        f"{train_step.trace_count} traces)"
    )


if __name__ == "__main__":
    main()
