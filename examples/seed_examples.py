"""The examples of a torch.nn.Module overview, with `torch` swapped for `jaxmodule`.

Each section of the overview (parameters, submodules, forward, save/load, training, buffers,
`apply(init_fn)`, and its list of built-in methods) runs here as a torch user would write it,
printing what torch prints: parameters, module reprs, state_dict keys, train/eval flags, hooks,
dtypes and devices. `tests/test_seed_examples.py` runs the same snippets under torch and
jaxmodule and compares them; this file is the readable tour.

    .venv/bin/python examples/seed_examples.py              # every section
    .venv/bin/python examples/seed_examples.py --section apply --section hooks
    .venv/bin/python examples/seed_examples.py --smoke      # the CI smoke test (same sections)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable

import jax.numpy as jnp
import jaxmodule
import jaxmodule.nn as nn
import jaxmodule.nn.functional as F
import jaxmodule.optim as optim

__all__ = ["MyModel", "TwoLayer", "ConvModel", "BufferModel", "CounterModel", "SECTIONS", "main"]


class MyModel(nn.Module):
    """The overview's first model: one Linear layer and a forward."""

    def __init__(self) -> None:
        super(MyModel, self).__init__()  # noqa: UP008 - the overview's spelling
        self.fc = nn.Linear(10, 5)

    def forward(self, x):
        return self.fc(x)


class TwoLayer(nn.Module):
    """Submodules registered as attributes form the hierarchy."""

    def __init__(self) -> None:
        super(TwoLayer, self).__init__()  # noqa: UP008 - the overview's spelling
        self.fc1 = nn.Linear(10, 5)
        self.fc2 = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class ConvModel(nn.Module):
    """The overview's use case: two convolutions with ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 20, 5)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        return F.relu(self.conv2(x))


class BufferModel(nn.Module):
    """The four ways of holding state: submodules, a buffer, a parameter, a plain attribute."""

    def __init__(self) -> None:
        super(BufferModel, self).__init__()  # noqa: UP008 - the overview's spelling
        self.param_nn = nn.Sequential(
            OrderedDict(
                [
                    ("conv", nn.Conv2d(1, 1, 3, bias=False)),
                    ("fc", nn.Linear(1, 2, bias=False)),
                ]
            )
        )
        self.register_buffer("param_buf", jaxmodule.randn(1, 2))  # saved, not trained
        self.register_parameter("param_reg", nn.Parameter(jaxmodule.randn(1, 2)))  # trained
        self.param_attr = jaxmodule.randn(1, 2)  # neither

    def forward(self, x):
        return x


class CounterModel(nn.Module):
    """`extra_repr` and `get_extra_state`/`set_extra_state`: a non-array entry in the state_dict."""

    def __init__(self, scale: float = 2.0) -> None:
        super().__init__()
        self.scale = scale
        self.calls = 0

    def forward(self, x):
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"

    def get_extra_state(self) -> dict:
        return {"calls": self.calls}

    def set_extra_state(self, state: dict) -> None:
        self.calls = state["calls"]


def heading(title: str) -> None:
    print(f"\n=== {title} ===")


def section_parameters(args: argparse.Namespace) -> None:
    model = MyModel()
    print(list(model.parameters()))
    for name, p in model.named_parameters():
        print(f"{name}: shape {tuple(p.shape)}, requires_grad={p.requires_grad}")


def section_submodules(args: argparse.Namespace) -> None:
    model = TwoLayer()
    print(model)
    print("named_modules:", [name for name, _ in model.named_modules()])
    print("named_children:", [name for name, _ in model.named_children()])
    print("state_dict keys:", list(model.state_dict()))


def section_forward(args: argparse.Namespace) -> None:
    model = MyModel()
    input_data = jaxmodule.randn(3, 10)
    output = model(input_data)
    print(f"input {tuple(input_data.shape)} -> output {tuple(output.shape)} {output.dtype}")


def section_save_load(args: argparse.Namespace) -> None:
    model = MyModel()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(args.dir or tmp, "my_model.pth")
        jaxmodule.save(model.state_dict(), path)  # a directory (an orbax checkpoint)
        loaded_model = MyModel()
        loaded_model.load_state_dict(jaxmodule.load(path))
        x = jaxmodule.randn(2, 10)
        diff = float(jnp.abs(loaded_model(x) - model(x)).max())
        print(
            f"saved and loaded {path!r}: keys {list(loaded_model.state_dict())}, "
            f"max abs diff {diff}"
        )


def section_training(args: argparse.Namespace) -> None:
    model = MyModel()
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    criterion = nn.MSELoss()
    x, y = jaxmodule.randn(32, 10), jaxmodule.randn(32, 5)

    @jaxmodule.compile
    def train_step(x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda: criterion(model(x), y))  # loss.backward()
        optimizer.step()
        return loss

    losses = [float(train_step(x, y)) for _ in range(args.steps)]
    print(
        f"{optimizer.__class__.__name__} + {criterion}: loss {losses[0]:.4f} -> {losses[-1]:.4f} "
        f"in {len(losses)} steps"
    )


def section_conv(args: argparse.Namespace) -> None:
    model = ConvModel()
    print(model)
    out = model(jaxmodule.randn(2, 1, 28, 28))
    print(f"(2, 1, 28, 28) -> {tuple(out.shape)}")


def section_buffers(args: argparse.Namespace) -> None:
    net = BufferModel()
    print(net)
    print("state_dict keys:", list(net.state_dict()))
    print("named_parameters:", [name for name, _ in net.named_parameters()])
    print("named_buffers:", [name for name, _ in net.named_buffers()])
    print("param_attr in state_dict:", "param_attr" in net.state_dict())


def section_apply(args: argparse.Namespace) -> None:
    @jaxmodule.no_grad()
    def init_weights(m):
        print(m)
        if type(m) == nn.Linear:  # noqa: E721 - as the overview writes it
            m.weight.fill_(1.0)
            print(m.weight)

    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    net.apply(init_weights)


def section_modes(args: argparse.Namespace) -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    x = jnp.ones((1, 4))
    print(f"training={net.training}, dropout zeroes some outputs: {bool((net(x) == 0).any())}")
    net.eval()
    print(
        f"after eval(): training={net.training}, {[m.training for m in net.modules()]}, "
        f"same output twice: {bool((net(x) == net(x)).all())}"
    )
    net.train()
    print(f"after train(): training={net.training}")


def section_hooks(args: argparse.Namespace) -> None:
    net = TwoLayer()
    seen: list[str] = []
    pre = net.fc1.register_forward_pre_hook(
        lambda m, inp: seen.append(f"pre fc1 {tuple(inp[0].shape)}")
    )
    post = net.fc2.register_forward_hook(
        lambda m, inp, out: seen.append(f"post fc2 {tuple(out.shape)}")
    )
    back = net.fc1.register_full_backward_hook(
        lambda m, gin, gout: seen.append(f"backward fc1 grad_output {tuple(gout[0].shape)}")
    )
    x = jaxmodule.randn(3, 10)
    jaxmodule.backward(lambda m: m(x).sum(), net)
    print("\n".join(seen))
    for handle in (pre, post, back):
        handle.remove()
    seen.clear()
    net(x)
    print(f"after handle.remove(): {len(seen)} hook calls")
    print("fc1.weight.grad shape:", tuple(net.fc1.weight.grad.shape))
    net.zero_grad()
    print("after zero_grad(): fc1.weight.grad is", net.fc1.weight.grad)


def section_builtins(args: argparse.Namespace) -> None:
    net = BufferModel()
    net.add_module("extra", CounterModel())
    print("add_module + extra_repr:", net.extra)
    print("children:", [type(m).__name__ for m in net.children()])
    print("get_submodule('param_nn.conv'):", net.get_submodule("param_nn.conv"))
    print(
        "get_parameter('param_nn.fc.weight'):", tuple(net.get_parameter("param_nn.fc.weight").shape)
    )
    print("get_buffer('param_buf'):", tuple(net.get_buffer("param_buf").shape))
    net.extra.calls = 7
    sd = net.state_dict()
    print(
        "get_extra_state in state_dict:",
        {k: v for k, v in sd.items() if k.endswith("_extra_state")},
    )
    fresh = BufferModel()
    fresh.add_module("extra", CounterModel())
    print("load_state_dict:", fresh.load_state_dict(sd), "extra.calls =", fresh.extra.calls)
    for method in ("half", "bfloat16", "float"):
        getattr(net, method)()
        print(
            f"{method}():",
            sorted({str(v.dtype) for v in net.state_dict().values() if hasattr(v, "dtype")}),
        )
    net.to(jaxmodule.device("cpu"))
    print("to('cpu'):", net.param_reg.device, "| cpu():", net.cpu() is net)
    net.requires_grad_(False)
    print("requires_grad_(False):", [p.requires_grad for p in net.parameters()])
    print("share_memory() returns the module:", net.share_memory() is net)
    compiled = MyModel()
    compiled.compile()
    print("compile(): forward compiled, output", tuple(compiled(jaxmodule.randn(2, 10)).shape))


SECTIONS: dict[str, tuple[str, Callable[[argparse.Namespace], None]]] = {
    "parameters": ("parameters(): the registered parameters", section_parameters),
    "submodules": ("submodules: named_modules, named_children, state_dict", section_submodules),
    "forward": ("forward: model(input)", section_forward),
    "save_load": ("save and load the state_dict", section_save_load),
    "training": ("training with an optimizer and a criterion", section_training),
    "conv": ("use case: a convolutional model", section_conv),
    "buffers": ("register_buffer / register_parameter / plain attribute", section_buffers),
    "apply": ("apply(init_weights) under no_grad", section_apply),
    "modes": ("train() / eval()", section_modes),
    "hooks": ("forward pre-hooks, forward hooks, full backward hooks", section_hooks),
    "builtins": ("the other built-in methods", section_builtins),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--section",
        action="append",
        choices=list(SECTIONS),
        help="run only this section (repeatable); default: all",
    )
    parser.add_argument(
        "--steps", type=int, default=20, help="training steps in the training section"
    )
    parser.add_argument(
        "--dir", default=None, help="where save_load writes (default: a temporary folder)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="few training steps (the CI smoke test)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = 5
    jaxmodule.manual_seed(0)
    for name in args.section or list(SECTIONS):
        title, run = SECTIONS[name]
        heading(title)
        run(args)


if __name__ == "__main__":
    main()
