"""Tracer errors in the user's words: which step, which line, which argument, and the fix.

When `jaxmodule.compile` traces a step and the step turns a traced value into a Python value
(`if loss > 0:`, `float(x)`, `int(x.sum())`, `np.asarray(x)`), JAX's error names jaxmodule's
internal tracing function and its flat inputs (`values[0]`, `dyn[1]`, `kw['n']`). `explain`
rewrites those names into the step's own (its name and definition line, its parameters' names,
the cells' state_dict names) and adds a note with the line of the user's code that did it and
the fixes.

>>> import jax.numpy as jnp, jaxmodule
>>> @jaxmodule.compile
... def step(x):
...     return x if x.sum() > 0 else -x
>>> try:
...     step(jnp.ones(2))
... except TypeError as e:
...     print("argument `x`" in str(e))
True
"""

from __future__ import annotations

import inspect
import os
import re
import traceback
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["TRACER_ERRORS", "explain"]

TRACER_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                 jax.errors.TracerIntegerConversionError)

_INTERNAL_DIRS = tuple(os.path.dirname(os.path.dirname(m.__file__ or "")) + os.sep
                       for m in (jax, np)) + (os.path.dirname(os.path.dirname(__file__)) + os.sep,)
_TRACING = re.compile(r"the function \S+ at \S+ for \w+")
_INPUT = re.compile(r"\b(values|states|grads|dyn|kw)\[([^\]]+)\]((?:\[[^\]]*\]|\.\w+)*)")
_FIX = ("the step is traced once for all calls, so a traced value cannot decide Python control "
        "flow or become a Python number. Fix: pass an int or bool for values that choose a branch "
        "or a shape (ints and bools are not traced), compute both branches with "
        "`jnp.where(cond, a, b)`, or branch with `jax.lax.cond`; to read a value out, return it "
        "from the step.")


def _user_frame(tb: Any) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback outside jax, numpy and jaxmodule."""
    for frame in reversed(traceback.extract_tb(tb)):
        if not os.path.abspath(frame.filename).startswith(_INTERNAL_DIRS):
            return frame
    return None


def _param_names(fn: Callable) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _namer(fn: Callable, layout: Any) -> Callable[[re.Match], str]:
    positional = _param_names(fn)
    cells: list[str] = []

    def name(m: re.Match) -> str:
        group, index = m.group(1), m.group(2).strip("'\"")
        if group == "dyn":
            i = int(index)
            return f"argument `{positional[i]}`" if i < len(positional) else f"argument {i}"
        if group == "kw":
            return f"argument `{index}`"
        if not cells:
            cells.extend(layout.cell_names())
        if group == "values" and int(index) < len(cells):
            return f"`{cells[int(index)]}`"
        if group == "states" and int(index) < len(layout.states):
            return f"the state of {type(layout.states[int(index)]).__name__}"
        return "a gradient" if group == "grads" else "a value of the step"

    return name


def _where(fn: Callable) -> str:
    code = getattr(inspect.unwrap(fn), "__code__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"`{name}` ({code.co_filename}:{code.co_firstlineno})" if code else f"`{name}`"


def explain(e: Exception, fn: Callable, layout: Any) -> None:
    """Rewrite the tracer error `e` (raised while tracing `fn`) in the user's names, in place,
    and add a note naming the line and the fix."""
    name = _namer(fn, layout)
    if e.args and isinstance(e.args[0], str):
        text = _TRACING.sub(f"the step function {_where(fn)} for jaxmodule.compile", e.args[0])
        text = _INPUT.sub(name, text)
        e.args = (_dedupe_lists(text),) + e.args[1:]
    frame = _user_frame(e.__traceback__)
    at = f" at {frame.filename}:{frame.lineno} (`{(frame.line or '').strip()}`)" if frame else ""
    if hasattr(e, "add_note"):  # Python 3.11+
        e.add_note(f"jaxmodule.compile: the step {_where(fn)} used a traced value as a Python value{at}; "
                   + _FIX)


def _dedupe_lists(text: str) -> str:
    """'depends on the values of the arguments `w`, argument `x`, argument `x`' -> 'depends on `w`
    and argument `x`'."""
    def once(m: re.Match) -> str:
        items = [s.strip() for s in re.split(r",\s*(?:and\s+)?|\s+and\s+", m.group(1)) if s.strip()]
        unique = list(dict.fromkeys(items))
        joined = unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]
        return f"depends on {joined}."
    return re.sub(r"depends on the values? of the arguments? (.*?)\.$", once, text, flags=re.M)
