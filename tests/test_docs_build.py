"""The documentation site (mkdocs.yml): `mkdocs build --strict` passes, the generated pages are
complete, and the Python examples of the hand-written pages run."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tools.docs_griffe import fence_doctests
from tools.docs_hooks import FAMILIES, layer_table_page, tensor_methods_page

ROOT = Path(__file__).resolve().parent.parent
MKDOCS = Path(sys.executable).parent / "mkdocs"
# Hand-written pages whose ```python blocks are run (each page's blocks in order, one namespace).
EXAMPLE_PAGES = [
    "index.md",
    "coming_from_pytorch.md",
    *(f"guides/{p.name}" for p in sorted((ROOT / "docs/guides").glob("*.md"))),
]


def _python_blocks(page: str) -> list[str]:
    """The page's ```python blocks, each padded with newlines so tracebacks show the page's lines."""
    text = (ROOT / "docs" / page).read_text()
    return [
        "\n" * text.count("\n", 0, m.start(1)) + m.group(1)
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)
    ]


@pytest.mark.skipif(
    not MKDOCS.exists(), reason="the `docs` extra is not installed (bash scripts/setup.sh docs)"
)
def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [str(MKDOCS), "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for page in [
        "index.html",
        "coming_from_pytorch/index.html",
        "guides/compile/index.html",
        "scaling/index.html",
        "porting/index.html",
        "checkpoint_guarantees/index.html",
        "benchmarks/index.html",
        "api/tensor_methods/index.html",
        "api/layer_table/index.html",
    ]:
        assert (site / page).is_file(), f"{page} missing from the built site"
    # mkdocstrings rendered the docstrings (not just the headings)
    module_page = (site / "api/nn_module/index.html").read_text()
    assert "state_dict" in module_page and "load_state_dict" in module_page
    assert "Training step" in (site / "benchmarks/index.html").read_text()  # RESULTS.md included
    assert "<code>view</code>" in (site / "api/tensor_methods/index.html").read_text()


def test_tensor_methods_page_lists_every_installed_method():
    import jaxmodule
    from jaxmodule.nn.parameter import _TensorCell

    page = tensor_methods_page()
    methods = [
        k for k, v in vars(jaxmodule.Tensor).items() if not k.startswith("_") and callable(v)
    ]
    assert len(methods) > 200
    for name in methods:
        assert f"| `{name}` |" in page, name
        assert callable(getattr(_TensorCell, name)), name  # the cells carry them all
    assert (
        "| `fill_` | TypeError naming the out-of-place form | in place: replaces the held array |"
        in page
    )
    assert "| `grad` |" in page  # cell-only attributes


def test_layer_table_page_lists_every_layer_once():
    from jaxmodule import nn

    page = layer_table_page()
    layers = [n for n, v in vars(nn).items() if isinstance(v, type) and issubclass(v, nn.Module)]
    assert len(layers) > 150
    for name in layers:
        assert page.count(f"| `jaxmodule.nn.{name}` | `torch.nn.{name}` |") == 1, name
    # every family file has a section of the mkdocstrings page too
    layers_md = (ROOT / "docs/api/nn_layers.md").read_text()
    for file in set(FAMILIES) - {"module", "container"}:
        assert f"::: jaxmodule.nn.modules.{file}\n" in layers_md, file


def test_fence_doctests():
    text = "Does x.\n\nArgs:\n    a: one.\n\n    >>> f(1)\n    [0.1, 0.2]\n\nEnd.\n>>> g()\n"
    assert fence_doctests(text) == (
        "Does x.\n\nArgs:\n    a: one.\n\n    ```pycon\n    >>> f(1)\n"
        "    [0.1, 0.2]\n    ```\n\nEnd.\n\n```pycon\n>>> g()\n```\n"
    )


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_page_examples_run(page, capsys):
    blocks = _python_blocks(page)
    assert blocks, f"docs/{page} has no python example"
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, f"docs/{page}", "exec"), namespace)
