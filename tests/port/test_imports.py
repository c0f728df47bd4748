"""Import rewriting: torch's imports become jaxmodule's, aliases kept."""

import pytest

from tests.port._porting import ported, reasons


@pytest.mark.parametrize(
    "src, expected",
    [
        ("import torch\n", "import jaxmodule\n"),
        ("import torch.nn as nn\n", "import jaxmodule.nn as nn\n"),
        ("from torch import nn, optim\n", "from jaxmodule import nn, optim\n"),
        ("import torch.nn.functional as F\n", "import jaxmodule.nn.functional as F\n"),
        ("from torch.nn import functional as F\n", "from jaxmodule.nn import functional as F\n"),
        ("import torch.nn.init as init\n", "import jaxmodule.nn.init as init\n"),
        ("import torch.optim as optim\n", "import jaxmodule.optim as optim\n"),
        ("from torch.optim import lr_scheduler\n", "from jaxmodule.optim import lr_scheduler\n"),
        (
            "from torch.optim.lr_scheduler import StepLR\n",
            "from jaxmodule.optim.lr_scheduler import StepLR\n",
        ),
        (
            "from torch.nn import Linear, ReLU as Act\n",
            "from jaxmodule.nn import Linear, ReLU as Act\n",
        ),
        ("from torch.cuda.amp import GradScaler\n", "from jaxmodule.amp import GradScaler\n"),
        ("import torch.nn\n", "import jaxmodule.nn\n"),
        ("import torch  # the framework\n", "import jaxmodule  # the framework\n"),
        ("import os, torch\n", "import os\nimport jaxmodule\n"),
        (
            "import numpy as np\nfrom . import models\n",
            "import numpy as np\nfrom . import models\n",
        ),
    ],
)
def test_import_forms(src, expected):
    assert ported(src) == expected


def test_torch_alias_references_become_jaxmodule():
    assert (
        ported("import torch as th\ny = th.cat([a, b])\n")
        == "import jaxmodule\ny = jaxmodule.cat([a, b])\n"
    )


def test_jaxmodule_import_added_where_code_needs_it():
    src = '"""Doc."""\nimport math\n\nimport torch.nn as nn\n\n\ndef f(x):\n    return x.view(-1)\n'
    assert ported(src) == (
        '"""Doc."""\nimport math\n\nimport jaxmodule\nimport jaxmodule.nn as nn\n\n\n'
        "def f(x):\n    return jaxmodule.Tensor.view(x, -1)\n"
    )


def test_torch_kept_beside_jaxmodule_for_unconverted_code():
    out = ported("import torch\nx = torch.zeros(3)\ntorch.cuda.synchronize()\n")
    assert (
        out == "import torch\nimport jaxmodule\nx = jaxmodule.zeros(3)\ntorch.cuda.synchronize()\n"
    )


def test_data_loading_import_kept_and_reported():
    src = "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
    assert (
        ported(src) == "import jaxmodule\nfrom torch.utils.data import DataLoader, TensorDataset\n"
    )
    assert any("torch.utils.data has no jaxmodule equivalent" in r for r in reasons(src))


def test_missing_names_stay_on_a_torch_import(monkeypatch):
    import jaxmodule.nn
    from jaxmodule.port import _names

    monkeypatch.delattr(jaxmodule.nn, "Bilinear")
    _names.exists.cache_clear()
    try:
        src = "from torch.nn import Linear, Bilinear\n"
        assert ported(src) == "from jaxmodule.nn import Linear\nfrom torch.nn import Bilinear\n"
        assert reasons(src) == ["no jaxmodule equivalent of `torch.nn.Bilinear`"]
    finally:
        monkeypatch.undo()
        _names.exists.cache_clear()


def test_star_import_reported():
    assert reasons("from torch import *\n") == [
        "`import *` from torch is not ported: import the names you use"
    ]
