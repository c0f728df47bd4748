"""`python -m jaxmodule.port SRC [-o OUT]`: rewrite torch source as jaxmodule source.

The port keeps comments and formatting (it edits a concrete syntax tree with libcst) and ends
with a report of every line it left for a person, with the reason. See docs/porting.md.
Needs libcst: `pip install 'jaxmodule[port]'`.

>>> from jaxmodule.port import port_source
>>> print(port_source("import torch.nn as nn\\nlayer = nn.Linear(4, 2)\\n").source, end="")
import jaxmodule.nn as nn
layer = nn.Linear(4, 2)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Issue",
    "PortResult",
    "port_source",
    "port_file",
    "port_path",
    "format_report",
    "MISSING_LIBCST",
]

MISSING_LIBCST = "jaxmodule.port needs libcst: pip install 'jaxmodule[port]'"

if TYPE_CHECKING:
    from ._api import PortResult, port_file, port_path, port_source
    from ._report import Issue, format_report


def __getattr__(name: str) -> Any:
    # Loaded on first use, so `python -m jaxmodule.port` can say how to install libcst.
    if name in ("PortResult", "port_source", "port_file", "port_path"):
        from . import _api  # deferred: optional dependency (libcst)

        return getattr(_api, name)
    if name in ("Issue", "format_report"):
        from . import _report  # deferred: optional dependency (libcst)

        return getattr(_report, name)
    raise AttributeError(f"module 'jaxmodule.port' has no attribute '{name}'")
