"""Errors raised while tracing a step, in the user's words: which step, line, argument, fix.

When `jaxmodule.compile` traces a step and the step turns a traced value into a Python value
(`if loss > 0:`, `float(x)`, `int(x.sum())`, `np.asarray(x)`), JAX's error names jaxmodule's
internal tracing function and its flat inputs (`values[0]`, `dyn[1]`, `kw['n']` on the first
trace, `const_vals[0]`, `kwargs['n']` when `jax.jit` traces the step again for new input
types). `explain` rewrites those names into the step's own (its name and definition line, its
parameters' names, the cells' state_dict names) and adds a note with the line of the user's
code that did it and the fixes.

A torch habit on a jax array (`loss.backward()`, `p.grad.zero_()`, `x.detach()`) raises
`AttributeError`; `explain_attribute` keeps it and adds a note with the line and the jaxmodule
equivalent, for the attributes in `TORCH_HABITS` only. Outside a compiled step jaxmodule cannot
see that error (it is raised by the jax array itself), so `jaxmodule.backward`'s docstring and
docs/coming_from_pytorch.md explain it instead.

`teach` is the one entry point the compile paths call (`_program.discover` and the retrace
inside the jitted program).

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
import jax.numpy as jnp
import numpy as np

from .._tensor_type import INPLACE_METHODS, Tensor

__all__ = ["TRACER_ERRORS", "TEACHABLE", "TORCH_HABITS", "explain", "explain_attribute", "teach"]

TRACER_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
)

_INTERNAL_DIRS = tuple(
    os.path.dirname(os.path.dirname(m.__file__ or "")) + os.sep for m in (jax, np)
) + (os.path.dirname(os.path.dirname(__file__)) + os.sep,)
_TRACING = re.compile(r"the function \S+ at \S+ for \w+")
# the flat inputs of `_program.discover`'s probe and of the jitted program (`_program._jit`)
_INPUT = re.compile(
    r"\b(values|mutated_vals|const_vals|states|grads|dyn|kw|kwargs)\[([^\]]+)\]"
    r"((?:\[[^\]]*\]|\.\w+)*)"
)
_FIX = (
    "the step is traced once for all calls, so a traced value cannot decide Python control "
    "flow or become a Python number. Fix: pass an int or bool for values that choose a branch "
    "or a shape (ints and bools are not traced), compute both branches with "
    "`jnp.where(cond, a, b)`, or branch with `jax.lax.cond`; to read a value out, return it "
    "from the step."
)
_DOCS = 'docs/coming_from_pytorch.md, "`loss.backward()` becomes `jaxmodule.backward(fn)`"'
_AUTOGRAD = (
    "jax arrays carry no autograd graph: JAX differentiates functions, not arrays that "
    "remember how they were computed. `jaxmodule.backward(lambda: criterion(model(x), y))` "
    "fills each trainable Parameter's `.grad` (read `p.grad` on the Parameter); "
    "`jax.grad(f)(x)` gives the gradient with respect to an input array; "
    "`p.requires_grad_(False)` on a Parameter freezes it"
)
# Torch Tensor attributes a jax array lacks whose use is a torch habit with a known jaxmodule
# form (decision, issue 14): `.backward()`; the autograd attributes; `.data` (a jax array is
# already a plain value); torch's in-place methods (arrays are immutable); and every other method
# of `jaxmodule.Tensor` (`detach`, `numpy`, `cpu`, `to`, ...), which is called as a function.
# Any other missing attribute (a typo, a jax-only name) keeps jax's error as it is.
TORCH_HABITS: dict[str, str] = {
    "backward": (
        "jax arrays have no `.backward()`: JAX differentiates functions, not arrays "
        "that remember how they were computed. Write "
        "`loss = jaxmodule.backward(lambda: criterion(model(x), y))` (or "
        "`jaxmodule.backward(loss_fn, model, x, y)`): it computes the loss and adds its "
        "gradient to each trainable parameter's `.grad`, as torch's `loss.backward()` "
        "does; `optimizer.step()` follows as before"
    ),
    **dict.fromkeys(
        (
            "grad",
            "grad_fn",
            "requires_grad",
            "requires_grad_",
            "retain_grad",
            "retains_grad",
            "register_hook",
            "is_leaf",
        ),
        _AUTOGRAD,
    ),
    "data": (
        "a jax array is already a plain value: drop `.data` (use `jax.lax.stop_gradient(x)` "
        "to stop gradients, `p.data` on a Parameter)"
    ),
}


def _habit(name: str) -> str | None:
    """The hint for torch attribute `name` missing on a jax array, or None (not a torch habit)."""
    if name in TORCH_HABITS:
        return TORCH_HABITS[name]
    if name in INPLACE_METHODS:
        return (
            f"jax arrays are immutable, so `.{name}()` exists on Parameters and Buffers only: "
            f"compute the new array and rebind the name (`x = jaxmodule.Tensor.{name[:-1]}(x, "
            "...)`, `x = x.at[idx].set(v)`); clear gradients with `optimizer.zero_grad()`"
        )
    if hasattr(Tensor, name) and not name.startswith("_"):
        return (
            f"jax arrays do not carry torch's Tensor methods: call it as "
            f"`jaxmodule.Tensor.{name}(x, ...)` (torch's arguments, a jax array back)"
        )
    return None


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


def _namer(fn: Callable, layout: Any, program: Any = None) -> Callable[[re.Match], str]:
    """Names for the flat inputs of the first trace (`values[k]`: the layout's cells) and of a
    retrace (`mutated_vals[j]`, `const_vals[j]`: the program's written and read cells)."""
    positional = _param_names(fn)
    cells: list[str] = []
    by_group = {
        "values": None,
        "mutated_vals": getattr(program, "mutated", []),
        "const_vals": getattr(program, "const", []),
    }

    def name(m: re.Match) -> str:
        group, index = m.group(1), m.group(2).strip("'\"")
        if group in ("kw", "kwargs"):
            return f"argument `{index}`"
        if not index.isdigit():
            return "a value of the step"
        i = int(index)
        if group == "dyn":
            return f"argument `{positional[i]}`" if i < len(positional) else f"argument {i}"
        if not cells:
            cells.extend(layout.cell_names())
        if group in by_group:
            order = by_group[group]
            k = i if order is None else (order[i] if i < len(order) else len(cells))
            return f"`{cells[k]}`" if k < len(cells) else "a value of the step"
        if group == "states" and i < len(layout.states):
            return f"the state of {type(layout.states[i]).__name__}"
        if group == "grads" and i < len(layout.grad_params):
            return f"the gradient of `{cells[layout.index[id(layout.grad_params[i])]]}`"
        return "a gradient" if group == "grads" else "a value of the step"

    return name


def _where(fn: Callable) -> str:
    code = getattr(inspect.unwrap(fn), "__code__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"`{name}` ({code.co_filename}:{code.co_firstlineno})" if code else f"`{name}`"


def _at(e: BaseException) -> str:
    """' at FILE:LINE (`the line`)' for the user's innermost frame of `e`, or ''."""
    frame = _user_frame(e.__traceback__)
    return f" at {frame.filename}:{frame.lineno} (`{(frame.line or '').strip()}`)" if frame else ""


def explain(e: Exception, fn: Callable, layout: Any, program: Any = None) -> None:
    """Rewrite the tracer error `e` (raised while tracing `fn`, or retracing it for `program`) in
    the user's names, in place, and add a note naming the line and the fix."""
    name = _namer(fn, layout, program)
    if e.args and isinstance(e.args[0], str):
        text = _TRACING.sub(f"the step function {_where(fn)} for jaxmodule.compile", e.args[0])
        text = _INPUT.sub(name, text)
        e.args = (_dedupe_lists(text),) + e.args[1:]
    if hasattr(e, "add_note"):  # Python 3.11+
        e.add_note(
            f"jaxmodule.compile: the step {_where(fn)} used a traced value as a Python value{_at(e)}; "
            + _FIX
        )


def explain_attribute(e: AttributeError, fn: Callable) -> bool:
    """Add a note to `e` when it is a torch habit on a jax array (`loss.backward()`, see
    `TORCH_HABITS`): the line and the jaxmodule form. Returns whether it did."""
    name = getattr(e, "name", None)
    hint = (
        _habit(name)
        if isinstance(name, str) and isinstance(getattr(e, "obj", None), jax.Array)
        else None
    )
    if hint is None or not hasattr(e, "add_note"):
        return False
    e.add_note(
        f"jaxmodule.compile: the step {_where(fn)} used torch's `.{name}` on a jax array"
        f"{_at(e)}; {hint}. See {_DOCS}."
    )
    return True


def _float_arguments(dyn: tuple, kwargs: dict) -> list[str]:
    """The traced arguments that are Python floats. On the first trace they are still floats;
    when `jax.jit` traces again they are weakly typed float scalars (as is `jnp.array(0.5)`,
    which is traced the same way, so the note holds for it too)."""

    def is_float(a: Any) -> bool:
        if type(a) is float:
            return True
        if not isinstance(a, jax.core.Tracer):
            return False
        t = jax.typeof(a)
        return (
            bool(getattr(t, "weak_type", False))
            and t.shape == ()
            and jnp.issubdtype(t.dtype, jnp.floating)
        )

    return [f"argument {i}" for i, a in enumerate(dyn) if is_float(a)] + [
        f"argument `{k}`" for k, v in kwargs.items() if is_float(v)
    ]


TEACHABLE = TRACER_ERRORS + (AttributeError,)


def teach(
    e: BaseException, fn: Callable, layout: Any, dyn: tuple, kwargs: dict, program: Any = None
) -> None:
    """Put the user's names, line and fix on `e`, one of `TEACHABLE` raised while tracing `fn`
    (`program` is None on the first trace, the program being retraced otherwise); `dyn` and
    `kwargs` are the traced arguments. An error already taught (a compiled step called inside
    another) is left as it is."""
    if getattr(e, "_jm_taught", False):
        return
    if isinstance(e, TRACER_ERRORS):
        explain(e, fn, layout, program)
        floats = _float_arguments(dyn, kwargs)
        if floats and hasattr(e, "add_note"):
            e.add_note(
                f"jaxmodule.compile traces Python floats ({', '.join(floats)}), so they "
                "cannot decide Python control flow; pass an int or bool for values that "
                "choose a branch or a shape, or use jnp.where."
            )
    elif isinstance(e, AttributeError):
        explain_attribute(e, fn)
    try:
        e._jm_taught = True  # type: ignore[attr-defined]  # a marker on the exception object
    except AttributeError:  # an exception type with __slots__
        pass


def _dedupe_lists(text: str) -> str:
    """'depends on the values of the arguments `w`, argument `x`, argument `x`' -> 'depends on `w`
    and argument `x`'."""

    def once(m: re.Match) -> str:
        items = [s.strip() for s in re.split(r",\s*(?:and\s+)?|\s+and\s+", m.group(1)) if s.strip()]
        unique = list(dict.fromkeys(items))
        joined = unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]
        return f"depends on {joined}."

    return re.sub(r"depends on the values? of the arguments? (.*?)\.$", once, text, flags=re.M)
