"""Run the porting passes over a source string, a file or a directory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper

from ._calls import CallsPass
from ._context import PortState
from ._imports import ImportsPass
from ._inplace import InplacePass
from ._methods import MethodsPass
from ._report import Issue, line_map, merge
from ._training import TrainingPass

__all__ = ["PortResult", "port_source", "port_file", "port_path", "PASSES", "TensorPass"]


class TensorPass(InplacePass, MethodsPass):
    """The in-place and tensor-method rules in one traversal (they share one scope analysis)."""


# Order matters: the training pass moves statements before expressions are rewritten; imports
# come last, once it is known which torch references remain.
PASSES = (TrainingPass, TensorPass, CallsPass, ImportsPass)


@dataclass
class PortResult:
    """The ported source of one file and the lines left for a person."""

    path: str
    source: str
    issues: list[Issue] = field(default_factory=list)


def port_source(source: str, path: str = "<string>") -> PortResult:
    """Port torch source code to jaxmodule source code.

    Args:
        source: the text of a Python file written for torch.
        path: the name used in the report.

    >>> print(port_source("import torch\\ny = torch.cat([a, b], dim=1)\\n").source, end="")
    import jaxmodule
    y = jaxmodule.cat([a, b], dim=1)
    """
    module = cst.parse_module(source)
    original = source.splitlines()
    to_original = list(range(len(original)))
    state = PortState()
    issues: list[Issue] = []
    current = source
    for cls in PASSES:
        wrapper = MetadataWrapper(module)
        step = cls(wrapper, state)
        module = wrapper.visit(step)
        for line, reason in step.issues:
            at = to_original[min(line, len(to_original)) - 1] if to_original else 0
            code = original[at].strip() if original else ""
            issues.append(Issue(path, at + 1, reason, code))
        code = module.code
        if code != current:
            to_original = [
                to_original[i] if i < len(to_original) else len(original) - 1
                for i in line_map(current, code)
            ]
            current = code
    return PortResult(path, current, merge(issues))


def port_file(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None) -> PortResult:
    """Port one file; write the result to `dst` when given."""
    with open(src, encoding="utf-8") as f:
        result = port_source(f.read(), os.fspath(src))
    if dst is not None:
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        with open(dst, "w", encoding="utf-8") as f:
            f.write(result.source)
    return result


def port_path(
    src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None
) -> list[PortResult]:
    """Port a file, or every `.py` file under a directory into the same layout under `dst`."""
    if not os.path.isdir(src):
        return [port_file(src, dst)]
    if dst is None:
        raise ValueError(f"porting the directory `{os.fspath(src)}` needs an output directory")
    results = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                results.append(port_file(path, os.path.join(dst, os.path.relpath(path, src))))
    return results
