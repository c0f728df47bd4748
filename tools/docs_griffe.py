"""Griffe extension (mkdocs.yml, mkdocstrings `extensions:`): fence doctest examples.

jaxmodule's docstrings show examples as bare doctest blocks (`>>> ...` and their output, ended
by a blank line), which `pytest --doctest-modules` runs. Markdown would render them as prose
(and read `[0.1, 0.2]` in an output as a link), so this wraps each block in a ```pycon fence
when mkdocstrings loads the package. The source files are not changed.
"""

from __future__ import annotations

from typing import Any

import griffe

__all__ = ["DoctestFences", "fence_doctests"]


def fence_doctests(text: str) -> str:
    """Wrap every doctest block of `text` in a ```pycon fence, at the block's indentation.

    >>> fence_doctests("Add.\\n>>> 1 + 1\\n2\\n\\nDone.").split("\\n")
    ['Add.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'Done.']
    """
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not (stripped.startswith(">>> ") or stripped == ">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        if out and out[-1].strip():
            out.append("")  # a fence starts a new block
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fences the doctest blocks of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
