"""Generate the README's table of torch.nn layers supported by jaxmodule.

    .venv/bin/python tools/layer_table.py          # print the table
    .venv/bin/python tools/layer_table.py --write  # rewrite the README section in place

The list of layers is torch.nn.modules.__all__ (torch 2.13); a layer counts as supported when
`jaxmodule.nn` has a class of that name. tests/test_readme.py fails when the README is stale.
"""

from __future__ import annotations

import os
import sys

START, END = "<!-- layers:start -->", "<!-- layers:end -->"
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def table() -> str:
    import jaxmodule.nn
    import torch.nn

    names = sorted(
        n for n in torch.nn.modules.__all__ if isinstance(getattr(torch.nn, n, None), type)
    )
    have = [n for n in names if isinstance(getattr(jaxmodule.nn, n, None), type)]
    missing = [n for n in names if n not in have]
    lines = [
        f"{len(have)} of the {len(names)} layer classes in `torch.nn` (torch 2.13) exist in `jaxmodule.nn`.",
        "",
        "Supported: " + ", ".join(f"`{n}`" for n in have) + ".",
        "",
        "Not (yet) available: "
        + (", ".join(f"`{n}`" for n in missing) if missing else "none")
        + ".",
    ]
    return "\n".join(lines)


def section(text: str) -> str:
    return text[text.index(START) + len(START) : text.index(END)].strip()


def main() -> None:
    t = table()
    if "--write" in sys.argv:
        with open(README) as f:
            text = f.read()
        text = text[: text.index(START) + len(START)] + "\n" + t + "\n" + text[text.index(END) :]
        with open(README, "w") as f:
            f.write(text)
    else:
        print(t)


if __name__ == "__main__":
    main()
