"""In-place updates: activations are rebound out of place; parameters keep their helpers."""

import textwrap

import pytest

from tests.port._porting import ported, reasons

HEAD = "import torch\n\n"


def body(code: str) -> str:
    out = ported(HEAD + "x = torch.zeros(4, 4)\n" + textwrap.dedent(code))
    return out.split("x = jaxmodule.zeros(4, 4)\n", 1)[1]


@pytest.mark.parametrize(
    "src, expected",
    [
        ("x[mask] = v", "x = x.at[mask].set(v)"),
        ("x[:, 0] += 1", "x = x.at[:, 0].add(1)"),
        ("x[0] -= y", "x = x.at[0].subtract(y)"),
        ("x[..., 1] *= 2", "x = x.at[..., 1].multiply(2)"),
        ("x[1:] /= 3", "x = x.at[1:].divide(3)"),
        ("x.masked_fill_(m, 0.0)", "x = jaxmodule.Tensor.masked_fill(x, m, 0.0)"),
        ("x.add_(y)", "x = x + y"),
        ("x.add_(y, alpha=2)", "x = x + 2 * y"),
        ("x.sub_(a + b)", "x = x - (a + b)"),
        ("x.mul_(0.5)", "x = x * 0.5"),
        ("x.div_(n)", "x = x / n"),
        ("x.relu_()", "x = jaxmodule.Tensor.relu(x)"),
        ("x.clamp_(min=0)", "x = jaxmodule.Tensor.clamp(x, min=0)"),
        ("x.zero_()", "x = jaxmodule.zeros_like(x)"),
        ("x.fill_(1.0)", "x = jaxmodule.full_like(x, 1.0)"),
        ("x.detach_()", "x = jaxmodule.Tensor.detach(x)"),
    ],
)
def test_activation_updates(src, expected):
    assert body(src + "\n") == expected + "\n"


def test_unknown_receiver_with_array_index_rewritten():
    assert (
        ported("def f(t):\n    t[:, 0] = 0\n    return t\n")
        == "def f(t):\n    t = t.at[:, 0].set(0)\n    return t\n"
    )


@pytest.mark.parametrize(
    "src",
    [
        "d = {}\nd['a'] = 1",
        "items = [0, 0]\nitems[1] = 5",
        "def f(args):\n    args.values[0] = 1",
    ],
)
def test_python_containers_kept(src):
    src = src + "\n"
    assert ported(src) == src
    assert reasons(src) == []


def test_parameters_keep_inplace_helpers():
    src = textwrap.dedent("""\
        import torch
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
                self.scale = nn.Parameter(torch.ones(2))
                with torch.no_grad():
                    self.fc.weight.fill_(0.5)
                    self.fc.bias.zero_()
                    self.scale.mul_(2)


        @torch.no_grad()
        def init(model):
            for p in model.parameters():
                p.uniform_(-0.1, 0.1)
        """)
    assert ported(src) == src.replace("import torch\n", "import jaxmodule\n").replace(
        "import torch.nn", "import jaxmodule.nn"
    ).replace("torch.", "jaxmodule.")


def test_not_convertible_reported():
    src = textwrap.dedent("""\
        import torch


        def f(t, buf, i, module):
            t.add_(1)
            buf[i] = 0
            y = torch.zeros(3)
            y.normal_()
            z = y.add_(1)
            with torch.no_grad():
                module.weight[0] = 1.0
        """)
    assert reasons(src) == [
        "in-place `add_` on a function argument: the caller's value cannot be updated in JAX; "
        "return the new value instead",
        "cannot tell whether `buf` is a tensor: if it is, write `buf = buf.at[i].set(v)`",
        "random in-place `normal_` on an activation: draw a new array (jaxmodule.randn_like / "
        "rand_like) and assign it",
        "in-place `add_` on an activation used as a value: compute it out of place and assign the result",
        "indexed write into a parameter or buffer: write `p.copy_(p.at[i].set(v))` inside "
        "`with jaxmodule.no_grad()`",
    ]


def test_rewritten_updates_run():
    out = ported(
        textwrap.dedent("""\
        import torch
        x = torch.zeros(2, 3)
        x[:, 0] += 1
        x[x > 0] = 5.0
        x.add_(torch.ones(2, 3), alpha=2)
        x.masked_fill_(x > 6, -1.0)
        """)
    )
    namespace: dict = {}
    exec(out, namespace)
    assert namespace["x"].tolist() == [[-1.0, 2.0, 2.0], [-1.0, 2.0, 2.0]]
