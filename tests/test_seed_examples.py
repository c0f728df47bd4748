"""The examples of the seed document (a Chinese overview of torch.nn.Module) run with torch swapped
for jaxmodule, and print what torch prints where the output is comparable.

Each example is kept as written in the document (source text below). It runs twice: once as is
with torch, once with every `torch` replaced by `jaxmodule`; printed text and results are compared.
Document: /work/shared/seed/000_433cc35795a22147.txt
"""

import contextlib
import io

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch

from tests.helpers import assert_close, to_numpy

PARAMETERS = """
import torch.nn as nn
class MyModel(nn.Module):
    def __init__(self):
        super(MyModel, self).__init__()
        self.fc = nn.Linear(10, 5)
model = MyModel()
print(list(model.parameters()))
"""

SUBMODULES = """
import torch.nn as nn
class MyModel(nn.Module):
    def __init__(self):
        super(MyModel, self).__init__()
        self.fc1 = nn.Linear(10, 5)
        self.fc2 = nn.Linear(5, 2)
model = MyModel()
"""

FORWARD = """
import torch.nn as nn
import torch
class MyModel(nn.Module):
    def __init__(self):
        super(MyModel, self).__init__()
        self.fc = nn.Linear(10, 5)
    def forward(self, x):
        return self.fc(x)
model = MyModel()
input_data = torch.randn(3, 10)
output = model(input_data)
"""

SAVE_LOAD = """
torch.save(model.state_dict(), 'my_model.pth')
loaded_model = MyModel()
loaded_model.load_state_dict(torch.load('my_model.pth'))
"""

TRAINING = """
import torch.optim as optim
optimizer = optim.SGD(model.parameters(), lr=0.01)
criterion = nn.MSELoss()
# 在训练循环中使用 optimizer 和 criterion
"""

CONV_MODEL = """
import torch.nn as nn
import torch.nn.functional as F
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 20, 5)
    def forward(self, x):
        x = F.relu(self.conv1(x))
        return F.relu(self.conv2(x))
"""

BUFFERS = """
import torch
import torch.nn as nn
from collections import OrderedDict
class Model(nn.Module):
    def __init__(self):
        super(Model, self).__init__()
        # (1)常见定义模型时的操作
        self.param_nn = nn.Sequential(OrderedDict([
            ('conv', nn.Conv2d(1, 1, 3, bias=False)),
            ('fc', nn.Linear(1, 2, bias=False))
        ]))
        # (2)使用register_buffer()定义一组参数
        self.register_buffer('param_buf', torch.randn(1, 2))
        # (3)使用形式类似的register_parameter()定义一组参数
        self.register_parameter('param_reg', nn.Parameter(torch.randn(1, 2)))
        # (4)按照类的属性形式定义一组变量
        self.param_attr = torch.randn(1, 2)
    def forward(self, x):
        return x
net = Model()
"""

APPLY = """
@torch.no_grad()
def init_weights(m):
    print(m)
    if type(m) == nn.Linear:
        m.weight.fill_(1.0)
        print(m.weight)
net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
net.apply(init_weights)
"""


def run(source, lib, namespace=None):
    """Execute `source` (torch spelling) with `lib` ('torch' or 'jaxmodule'); (namespace, stdout)."""
    if lib == "jaxmodule":
        source = source.replace("torch", "jaxmodule")
    ns = {} if namespace is None else namespace
    if lib == "jaxmodule":
        ns.setdefault("jaxmodule", jaxmodule)
    else:
        ns.setdefault("torch", torch)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, f"<seed example ({lib})>", "exec"), ns)
    return ns, out.getvalue()


def test_parameters_example():
    tns, tout = run(PARAMETERS, "torch")
    jns, jout = run(PARAMETERS, "jaxmodule")
    assert jout.count("Parameter containing:") == tout.count("Parameter containing:") == 2
    jparams, tparams = list(jns["model"].parameters()), list(tns["model"].parameters())
    assert [p.shape for p in jparams] == [tuple(p.shape) for p in tparams] == [(5, 10), (5,)]
    assert all(isinstance(p, jaxmodule.nn.Parameter) for p in jparams)


def test_submodules_example():
    tns, _ = run(SUBMODULES, "torch")
    jns, _ = run(SUBMODULES, "jaxmodule")
    assert repr(jns["model"]) == repr(tns["model"])
    assert list(jns["model"].state_dict()) == list(tns["model"].state_dict())


def test_forward_example():
    tns, _ = run(FORWARD, "torch")
    jns, _ = run(FORWARD, "jaxmodule")
    assert jns["output"].shape == tuple(tns["output"].shape) == (3, 5)
    assert jns["input_data"].dtype == jnp.float32
    # with torch's weights and input, the outputs agree
    jns["model"].load_state_dict(tns["model"].state_dict())
    assert_close(jns["model"](jnp.asarray(to_numpy(tns["input_data"]))), tns["output"])


def test_save_load_example(tmp_path, monkeypatch):
    (tmp_path / "torch").mkdir()
    (tmp_path / "jaxmodule").mkdir()
    monkeypatch.chdir(tmp_path / "torch")
    tns, _ = run(FORWARD, "torch")
    run(SAVE_LOAD, "torch", tns)
    monkeypatch.chdir(tmp_path / "jaxmodule")
    jns, _ = run(FORWARD, "jaxmodule")
    run(SAVE_LOAD, "jaxmodule", jns)
    for ns in (tns, jns):
        x = ns["input_data"]
        assert_close(ns["loaded_model"](x), ns["model"](x))
    assert list(jns["loaded_model"].state_dict()) == list(tns["loaded_model"].state_dict())
    # the file torch.save wrote loads with jaxmodule.load into the jaxmodule model
    jns["loaded_model"].load_state_dict(jaxmodule.load(str(tmp_path / "torch" / "my_model.pth")))
    x = np.ones((2, 10), np.float32)
    assert_close(jns["loaded_model"](jnp.asarray(x)), tns["model"](torch.from_numpy(x)))


def test_training_example():
    tns, _ = run(FORWARD, "torch")
    run(TRAINING, "torch", tns)
    jns, _ = run(FORWARD, "jaxmodule")
    run(TRAINING, "jaxmodule", jns)
    assert type(jns["optimizer"]).__name__ == type(tns["optimizer"]).__name__ == "SGD"
    assert repr(jns["criterion"]) == repr(tns["criterion"]) == "MSELoss()"
    assert len(jns["optimizer"].param_groups[0]["params"]) == 2


def test_conv_model_example():
    tns, _ = run(CONV_MODEL, "torch")
    jns, _ = run(CONV_MODEL, "jaxmodule")
    tm, jm = tns["Model"](), jns["Model"]()
    assert repr(jm) == repr(tm)
    assert [(k, tuple(v.shape)) for k, v in jm.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in tm.state_dict().items()
    ]
    jm.load_state_dict(tm.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 1, 12, 12)).astype(np.float32)
    out = jm(jnp.asarray(x))
    assert out.shape == (2, 20, 4, 4)
    assert_close(out, tm(torch.from_numpy(x)), rtol=1e-5, atol=1e-5)


def test_buffer_parameter_attribute_example():
    tns, tout = run(BUFFERS, "torch")
    jns, jout = run(BUFFERS, "jaxmodule")
    t, j = tns["net"], jns["net"]
    assert (
        list(j.state_dict())
        == list(t.state_dict())
        == ["param_reg", "param_buf", "param_nn.conv.weight", "param_nn.fc.weight"]
    )
    assert "param_attr" not in j.state_dict()
    assert (
        [n for n, _ in j.named_parameters()]
        == [n for n, _ in t.named_parameters()]
        == ["param_reg", "param_nn.conv.weight", "param_nn.fc.weight"]
    )
    assert [n for n, _ in j.named_buffers()] == [n for n, _ in t.named_buffers()] == ["param_buf"]
    assert repr(j) == repr(t)
    assert j.param_attr.shape == (1, 2) and not isinstance(j.param_attr, jaxmodule.nn.Buffer)
    assert isinstance(j.param_buf, jaxmodule.nn.Buffer) and isinstance(
        j.param_reg, jaxmodule.nn.Parameter
    )
    assert jout == tout == ""


def test_apply_init_weights_example():
    source = "import torch\nimport torch.nn as nn\n" + APPLY  # the document's earlier imports
    tns, tout = run(source, "torch")
    jns, jout = run(source, "jaxmodule")
    # The printed modules are identical; printed weights differ only in the array text.
    t_lines = [
        line
        for line in tout.splitlines()
        if not line.startswith((" ", "tensor", "Array", "Parameter"))
    ]
    j_lines = [
        line
        for line in jout.splitlines()
        if not line.startswith((" ", "tensor", "Array", "Parameter"))
    ]
    assert j_lines == t_lines
    assert jout.count("Parameter containing:") == tout.count("Parameter containing:") == 2
    assert (
        jout.count("Linear(in_features=2, out_features=2, bias=True)")
        == tout.count("Linear(in_features=2, out_features=2, bias=True)")
        == 4
    )
    assert "Sequential(\n  (0): Linear(in_features=2, out_features=2, bias=True)" in jout
    for m in (jns["net"][0], jns["net"][1]):
        assert to_numpy(m.weight).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert repr(jns["net"]) == repr(tns["net"])
    assert jout.count("Array([[1., 1.],") == tout.count("tensor([[1., 1.],") == 2


@pytest.mark.parametrize(
    "method",
    [
        "bfloat16",
        "half",
        "float",
        "cpu",
        "eval",
        "train",
        "zero_grad",
        "share_memory",
        "requires_grad_",
    ],
)
def test_listed_builtin_methods_run(method):
    """The document's list of built-in functions: each runs on the parameter example's model."""
    tns, _ = run(BUFFERS, "torch")
    jns, _ = run(BUFFERS, "jaxmodule")
    t_ret = getattr(tns["net"], method)()
    j_ret = getattr(jns["net"], method)()
    assert (t_ret is tns["net"]) == (j_ret is jns["net"])
    assert [
        (k, str(v.dtype).replace("torch.", "")) for k, v in tns["net"].state_dict().items()
    ] == [(k, str(v.dtype)) for k, v in jns["net"].state_dict().items()]


def test_listed_getters():
    tns, _ = run(BUFFERS, "torch")
    jns, _ = run(BUFFERS, "jaxmodule")
    t, j = tns["net"], jns["net"]
    assert j.get_buffer("param_buf") is j.param_buf
    assert j.get_parameter("param_nn.fc.weight") is j.param_nn.fc.weight
    assert (
        type(j.get_submodule("param_nn.conv")).__name__
        == type(t.get_submodule("param_nn.conv")).__name__
    )
    assert [n for n, _ in j.named_children()] == [n for n, _ in t.named_children()]
    assert [n for n, _ in j.named_modules()] == [n for n, _ in t.named_modules()]
    assert len(list(j.buffers())) == len(list(t.buffers())) == 1
    assert len(list(j.children())) == len(list(t.children())) == 1
    assert len(list(j.modules())) == len(list(t.modules())) == 4
