"""`python -m jaxmodule.port`: files, directories, the report, --strict, missing libcst."""

import importlib.util
import subprocess
import sys
import textwrap

import pytest
from jaxmodule.port import MISSING_LIBCST, format_report, port_source
from jaxmodule.port.__main__ import main

TORCH_SRC = textwrap.dedent("""\
    import torch


    def f(x):
        torch.cuda.synchronize()  # not portable
        return x.view(-1)
    """)


def test_file_to_stdout_report_to_stderr(tmp_path, capsys):
    src = tmp_path / "model.py"
    src.write_text(TORCH_SRC)
    assert main([str(src)]) == 0
    out, err = capsys.readouterr()
    assert out == port_source(TORCH_SRC).source
    assert err.splitlines() == [
        "jaxmodule.port: 1 file(s) ported; 1 line(s) left to convert by hand:",
        f"{src}:5: torch.cuda has no jaxmodule equivalent: JAX places arrays and synchronises "
        "itself  [torch.cuda.synchronize()  # not portable]",
    ]


def test_strict_exit_status(tmp_path, capsys):
    bad, good = tmp_path / "bad.py", tmp_path / "good.py"
    bad.write_text(TORCH_SRC)
    good.write_text("import torch\ny = torch.zeros(2)\n")
    assert main([str(bad), "-o", str(tmp_path / "out.py"), "--strict"]) == 1
    assert main([str(good), "-o", str(tmp_path / "out.py"), "--strict"]) == 0
    assert (tmp_path / "out.py").read_text() == "import jaxmodule\ny = jaxmodule.zeros(2)\n"
    assert capsys.readouterr().err.endswith("1 file(s) ported; nothing left to convert by hand.\n")


def test_directory(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("import torch\nx = torch.ones(1)\n")
    (src / "pkg" / "layers.py").write_text("import torch.nn as nn\n")
    (src / "notes.txt").write_text("not python")
    assert main([str(src), "-o", str(tmp_path / "out")]) == 0
    assert (
        tmp_path / "out" / "train.py"
    ).read_text() == "import jaxmodule\nx = jaxmodule.ones(1)\n"
    assert (tmp_path / "out" / "pkg" / "layers.py").read_text() == "import jaxmodule.nn as nn\n"
    assert not (tmp_path / "out" / "notes.txt").exists()
    assert "2 file(s) ported" in capsys.readouterr().err


def test_directory_needs_output(tmp_path):
    with pytest.raises(SystemExit):
        main([str(tmp_path)])


def test_missing_libcst_message(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "libcst" else real(name, *a)
    )
    assert main([str(tmp_path / "x.py")]) == 2
    assert capsys.readouterr().err.strip() == MISSING_LIBCST
    assert "pip install 'jaxmodule[port]'" in MISSING_LIBCST


def test_runs_as_a_module(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import torch\n")
    done = subprocess.run(
        [sys.executable, "-m", "jaxmodule.port", str(src)], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == "import jaxmodule\n"


def test_report_lines_refer_to_the_original_file():
    """Lines added (imports, a loss function) or removed before a leftover do not shift it."""
    src = textwrap.dedent("""\
        import torch.nn as nn


        def train(model, data, target, device):
            data, target = data.to(device), target.to(device)
            output = model(data)
            loss = nn.functional.nll_loss(output, target)
            loss.backward()
            pred = output.argmax(1)
            pred.register_hook(print)
        """)
    result = port_source(src, "t.py")
    assert "def loss_fn" in result.source and "import jaxmodule\n" in result.source
    assert [(i.line, i.code) for i in result.issues] == [(10, "pred.register_hook(print)")]


def test_report_merges_reasons_of_one_line():
    result = port_source("import torch\ntorch.cuda.synchronize(torch.frobnicate())\n", "m.py")
    assert len(result.issues) == 1
    assert format_report(result.issues, 1).splitlines()[1].count(";") == 1
