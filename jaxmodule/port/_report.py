"""The leftover report: one line per source line the port left unconverted, with the reason."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Issue", "format_report", "line_map", "merge"]


@dataclass(frozen=True)
class Issue:
    """A source line the port left as it was (or converted only in part), and why."""

    path: str
    line: int
    reason: str
    code: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}  [{self.code}]"


def merge(issues: Iterable[Issue]) -> list[Issue]:
    """One Issue per (file, line), reasons joined with '; ', sorted by file and line."""
    by_line: dict[tuple[str, int], Issue] = {}
    for issue in issues:
        key = (issue.path, issue.line)
        old = by_line.get(key)
        if old is None:
            by_line[key] = issue
        elif issue.reason not in old.reason.split("; "):
            by_line[key] = Issue(old.path, old.line, f"{old.reason}; {issue.reason}", old.code)
    return [by_line[k] for k in sorted(by_line)]


def format_report(issues: list[Issue], files: int) -> str:
    """The text printed at the end of a run."""
    head = f"jaxmodule.port: {files} file(s) ported"
    if not issues:
        return f"{head}; nothing left to convert by hand."
    lines = [f"{head}; {len(issues)} line(s) left to convert by hand:"]
    lines.extend(str(i) for i in issues)
    return "\n".join(lines)


def line_map(old: str, new: str) -> list[int]:
    """For each line of `new` (0-based), the line of `old` it comes from (best match)."""
    a, b = old.splitlines(), new.splitlines()
    out = [0] * len(b)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for j in range(j1, j2):
            if tag == "equal":
                out[j] = i1 + (j - j1)
            elif i2 > i1:
                out[j] = i1 + min(j - j1, i2 - i1 - 1)
            else:
                out[j] = min(i1, max(len(a) - 1, 0))
    return out
