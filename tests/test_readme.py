"""The README contract: two set-up-and-run commands first, CI runs the test one, the layer list is
fresh, and the quick-start code runs."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def test_readme_starts_with_demo_and_test_commands_and_ci_runs_the_test_one():
    readme = read("README.md")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert readme.index("```bash") < 20
    ci = [
        line for line in read(".ci/run").splitlines() if line.strip() and not line.startswith("#")
    ]
    assert [line.strip() for line in ci[-2:]] == ["bash scripts/test.sh", "bash scripts/lint.sh"]


def test_layer_table_is_fresh():
    from tools.layer_table import section, table

    assert section(read("README.md")) == table(), (
        "run: .venv/bin/python tools/layer_table.py --write"
    )


def test_quick_start_code_runs():
    readme = read("README.md")
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README quick start", "exec"), namespace)
    assert namespace["loss"].shape == ()


def test_compiling_section_code_runs_and_trains():
    """The README's torch-style compiled step (globals, zero-argument backward with aux, a
    scheduler stepped inside the step) runs as written and trains."""
    readme = read("README.md")
    section = readme[readme.index("## Compiling") : readme.index("## Mixed precision")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {"__name__": "readme_compiling"}
    exec(compile(code, "README compiling", "exec"), namespace)
    step, opt = namespace["train_step"], namespace["optimizer"]
    assert namespace["logits"].shape == (8, 2) and step.trace_count == 1
    assert opt.state_dict()["state"][0]["step"] == 3
    assert namespace["scheduler"].last_epoch == 3


def python_blocks(text):
    """Every ```python block of `text`, with the line it starts on."""
    return [
        (text.count("\n", 0, m.start()) + 2, m.group(1))
        for m in re.finditer(r"```python\n(.*?)```", text, re.S)
    ]


def test_python_blocks_are_found():
    blocks = python_blocks("a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n")
    assert blocks == [(3, "x = 1\n"), (9, "y = 2\n")]


def test_every_readme_python_block_runs_on_its_own(capsys):
    """Each ```python block runs in a fresh namespace, in order: no block leans on an earlier one,
    and the quick start prints its loss."""
    blocks = python_blocks(read("README.md"))
    assert len(blocks) >= 5
    for line, code in blocks:
        namespace: dict = {"__name__": f"readme_block_{line}"}
        try:
            exec(compile(code, f"README.md block at line {line}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(
                f"README.md python block at line {line} fails on its own: {e!r}"
            ) from e
        if line == blocks[0][0]:
            assert re.fullmatch(r"loss \d+\.\d{4}\n", capsys.readouterr().out)
