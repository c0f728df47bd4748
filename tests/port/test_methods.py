"""Tensor-method calls: activations -> jaxmodule.Tensor.<method>(x, ...); other receivers kept."""

import textwrap

import pytest

from tests.port._porting import ported, reasons

HEAD = "import torch\nimport torch.nn as nn\n\n"


def body(code: str) -> str:
    """Port `code` (after HEAD) and return what follows the import lines."""
    out = ported(HEAD + textwrap.dedent(code))
    return out.split("\n\n", 1)[1]


@pytest.mark.parametrize(
    "src, expected",
    [
        ("y = x.view(B, T, C)", "y = jaxmodule.Tensor.view(x, B, T, C)"),
        (
            "y = x.transpose(1, 2).contiguous().view(B, T, C)",
            "y = jaxmodule.Tensor.view(jaxmodule.Tensor.contiguous(jaxmodule.Tensor.transpose(x, 1, 2)), B, T, C)",
        ),
        ("n = x.size(-1)", "n = jaxmodule.Tensor.size(x, -1)"),
        ("y = x.masked_fill(mask, 0.0)", "y = jaxmodule.Tensor.masked_fill(x, mask, 0.0)"),
        ("y = x.float()", "y = jaxmodule.Tensor.float(x)"),
        ("y = x.new_zeros(3, 4)", "y = jaxmodule.Tensor.new_zeros(x, 3, 4)"),
        ("y = x.type_as(z)", "y = jaxmodule.Tensor.type_as(x, z)"),
        ("a, b = x.split(2, dim=-1)", "a, b = jaxmodule.Tensor.split(x, 2, dim=-1)"),
        ("p = logits.softmax(dim=-1)", "p = jaxmodule.Tensor.softmax(logits, dim=-1)"),
        ("y = (a + b).sum()", "y = jaxmodule.Tensor.sum(a + b)"),
        ("y = x.to(torch.float16)", "y = jaxmodule.Tensor.to(x, jaxmodule.float16)"),
        ("y = x.to(device)", "y = x"),
        ("y = x.cuda()", "y = x"),
        ("y = x.cpu().numpy()", "y = jaxmodule.Tensor.numpy(x)"),
        (
            "def f(model, x):\n    return model(x).data.max(1)[1]",
            "def f(model, x):\n    return jaxmodule.Tensor.max(jaxmodule.Tensor.detach(model(x)), 1)[1]",
        ),
        (
            "ok = pred.eq(target.view_as(pred)).sum().item()",
            "ok = jaxmodule.Tensor.item(jaxmodule.Tensor.sum(jaxmodule.Tensor.eq(pred, jaxmodule.Tensor.view_as(target, pred))))",
        ),
    ],
)
def test_tensor_methods_rewritten(src, expected):
    assert body(src + "\n") == expected + "\n"


@pytest.mark.parametrize(
    "src",
    [
        "layers = []\nlayers.append(block)",
        "optimizer.step()",
        "model.train()",
        "for k, v in d.items():\n    pass",
        'parts = "a,b".split(",")',
        "words = line.split()",
        "names.sort(key=len)",
        'seen = set()\nseen.add("x")',
        "import numpy as np\ntotal = np.zeros(3).sum()",
        "model.to(device)",
        "net.float()",
        "model = nn.Linear(2, 2)\nmodel = model.half()",
        "self_made = Net()\nself_made.cuda()\nclass Net(nn.Module):\n    pass",
    ],
)
def test_other_receivers_kept(src):
    src = textwrap.dedent(src) + "\n"
    assert body(src) == src


def test_module_attributes_decided_by_init():
    src = textwrap.dedent("""\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
                self.register_buffer("scale", torch.ones(2))

            def forward(self, x):
                self.fc.float()
                return self.fc(x).float() * self.scale.float()
        """)
    assert body(src) == src.replace("torch.ones", "jaxmodule.ones").replace(
        "self.fc(x).float() * self.scale.float()",
        "jaxmodule.Tensor.float(self.fc(x)) * jaxmodule.Tensor.float(self.scale)",
    )


def test_forward_arguments_are_tensors():
    src = "class Net(nn.Module):\n    def forward(self, model):\n        return model.float()\n"
    assert body(src) == src.replace("model.float()", "jaxmodule.Tensor.float(model)")


def test_device_only_assignment_removed():
    src = "for data, target in loader:\n    data, target = data.to(device), target.to(device)\n    step(data, target)\n"
    assert body(src) == "for data, target in loader:\n    step(data, target)\n"


def test_parameter_inplace_helpers_kept():
    src = textwrap.dedent("""\
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        layer.weight.data.normal_(0.0, 0.02)
        """)
    assert body(src) == src


def test_hooks_on_activations_reported():
    assert reasons(HEAD + "def f(h, fn):\n    h.register_hook(fn)\n") == [
        "hooks on activations are not supported: use a module hook "
        "(register_forward_hook / register_full_backward_hook)"
    ]
