"""References into torch: functions, dtypes, Tensor, fully spelled submodules, devices."""

import jaxmodule
import pytest
from jaxmodule.port import _names

from tests.port._porting import ported, reasons


@pytest.mark.parametrize(
    "name",
    [
        "cat",
        "stack",
        "tril",
        "zeros",
        "arange",
        "randn",
        "topk",
        "multinomial",
        "manual_seed",
        "where",
        "masked_fill",
    ],
)
def test_torch_functions(name):
    assert (
        ported(f"import torch\ny = torch.{name}(a, b)\n")
        == f"import jaxmodule\ny = jaxmodule.{name}(a, b)\n"
    )


@pytest.mark.parametrize(
    "src, expected",
    [
        (
            "x = torch.ones(2, dtype=torch.float32)",
            "x = jaxmodule.ones(2, dtype=jaxmodule.float32)",
        ),
        ("x = torch.arange(3, dtype=torch.long)", "x = jaxmodule.arange(3, dtype=jaxmodule.long)"),
        (
            "def f(x: torch.Tensor) -> torch.Tensor: ...",
            "def f(x: jaxmodule.Tensor) -> jaxmodule.Tensor: ...",
        ),
        ("ok = isinstance(h, torch.Tensor)", "ok = isinstance(h, jaxmodule.Tensor)"),
        ("layer = torch.nn.Linear(2, 3)", "layer = jaxmodule.nn.Linear(2, 3)"),
        ("y = torch.nn.functional.relu(x)", "y = jaxmodule.nn.functional.relu(x)"),
        ("torch.nn.init.xavier_uniform_(w)", "jaxmodule.nn.init.xavier_uniform_(w)"),
        ("opt = torch.optim.Adam(ps, lr=1e-3)", "opt = jaxmodule.optim.Adam(ps, lr=1e-3)"),
        (
            "s = torch.optim.lr_scheduler.StepLR(opt, 1)",
            "s = jaxmodule.optim.lr_scheduler.StepLR(opt, 1)",
        ),
        ("torch.nn.utils.clip_grad_norm_(ps, 1.0)", "jaxmodule.nn.utils.clip_grad_norm_(ps, 1.0)"),
        ("with torch.no_grad():\n    pass", "with jaxmodule.no_grad():\n    pass"),
        ("@torch.no_grad()\ndef f(): ...", "@jaxmodule.no_grad()\ndef f(): ..."),
        ("torch.save(sd, 'm.pt')", "jaxmodule.save(sd, 'm.pt')"),
    ],
)
def test_references(src, expected):
    assert ported(f"import torch\n{src}\n") == f"import jaxmodule\n{expected}\n"


def test_submodule_alias_spelling_kept():
    src = "import torch.nn as nn\nimport torch.nn.functional as F\nm = nn.Linear(2, 2)\ny = F.relu(x)\n"
    assert ported(src) == src.replace("torch", "jaxmodule")


def test_cuda_device_idiom_runs():
    src = 'import torch\ndevice = torch.device("cuda" if torch.cuda.is_available() else "cpu")\n'
    out = ported(src)
    assert out == (
        "import jax\nimport jaxmodule\n"
        'device = jaxmodule.device("cuda" if jax.default_backend() == "gpu" else "cpu")\n'
    )
    namespace: dict = {}
    exec(out, namespace)
    assert namespace["device"] == jaxmodule.device(jaxmodule.device("cpu").platform)


def test_cuda_check_parenthesised_inside_an_operator():
    out = ported("import torch\nn = torch.cuda.is_available() + 0\n")
    assert out.endswith('n = (jax.default_backend() == "gpu") + 0\n')


def test_other_cuda_calls_reported():
    src = "import torch\ntorch.cuda.synchronize()\ntorch.backends.cudnn.benchmark = True\n"
    assert ported(src) == src
    assert reasons(src) == [
        "torch.cuda has no jaxmodule equivalent: JAX places arrays and synchronises itself",
        "torch.backends settings have no jaxmodule equivalent: remove them",
    ]


def test_activation_device_keyword_dropped():
    src = "import torch\ndef f(x, device):\n    return torch.arange(4, device=x.device) + torch.zeros(4, device=device)\n"
    assert ported(src) == (
        "import jaxmodule\ndef f(x, device):\n"
        "    return jaxmodule.arange(4) + jaxmodule.zeros(4, device=device)\n"
    )


def test_unknown_torch_name_reported_and_kept():
    src = "import torch\ny = torch.frobnicate(x)\n"
    assert ported(src) == src
    assert reasons(src) == ["no jaxmodule equivalent of `torch.frobnicate`"]


def test_autograd_function_reported():
    src = "import torch\nclass Square(torch.autograd.Function):\n    pass\n"
    assert reasons(src)[0].startswith("torch.autograd is not ported")


def test_table_name_missing_in_jaxmodule_converted_and_reported(monkeypatch):
    monkeypatch.delattr(jaxmodule, "tril")
    _names.exists.cache_clear()
    try:
        src = "import torch\nm = torch.tril(x)\n"
        assert ported(src) == "import jaxmodule\nm = jaxmodule.tril(x)\n"
        assert reasons(src) == ["jaxmodule has no `tril` yet"]
    finally:
        monkeypatch.undo()
        _names.exists.cache_clear()
