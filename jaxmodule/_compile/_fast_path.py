"""Generated per-call code: the guard check of a layout and the fast path of a compiled call.

A dispatch-bound step spends most of its Python time deciding that nothing changed and moving
arrays in and out, so for each call layout that needs nothing special jaxmodule generates one
flat function from `FAST_PATH_TEMPLATE`: every check (the structure counters of `_structure.py`,
autocast, argument identities and types, the capture guards of `_reach.py`), the gather, the
jitted call and the scatter, unrolled. Any failed check returns `MISS` and the general path in
`_function.py` decides. The source is registered with `linecache` under a readable file name,
so tracebacks show it, and kept on the function as `__jm_source__`.

`JAXMODULE_FAST_PATH=0` in the environment turns generation off (every call takes the general
path, with identical results).
"""

from __future__ import annotations

import functools
import linecache
import os
from collections.abc import Callable
from typing import Any

from .. import _structure
from ..amp.autocast_mode import _local as amp_local
from ._layout import ARRAY_TYPE, DYN, HOLDER, LIVE, Layout

__all__ = [
    "MISS",
    "FAST_PATH_TEMPLATE",
    "GUARD_TEMPLATE",
    "build_fast_path",
    "guard_function",
    "guards_pass",
    "enabled",
]

MISS = object()
UNROLL_CELLS = 256  # above this many cells the fast path loops (keeps the generated code small)

GUARD_TEMPLATE = """\
def guards(args):
    try:
{guards}
    except Exception:
        return MISS
    return True
"""

FAST_PATH_TEMPLATE = """\
def fast(args, kwargs):
    if {checks}:
        return MISS
{guard_block}    new_vals, new_states, _, _, out = jitted(KEY, {mutated}, {const}, [{states}], [], ({dyn}), {{}})
{scatter}
    return out
"""


def enabled() -> bool:
    return os.environ.get("JAXMODULE_FAST_PATH", "1") not in ("0", "false", "False", "off")


def _define(template_name: str, source: str, env: dict, name: str, label: str) -> Callable:
    filename = f"<jaxmodule.compile {template_name} for {label}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)  # noqa: S102 - generated from a template, no user text
    fn = env[name]
    fn.__jm_source__ = source
    return fn


def _guards(layout: Layout) -> str:
    return "\n".join(layout.reach.guard_lines("        ") or ["        pass"])


def guard_function(layout: Layout) -> Callable[[tuple], bool]:
    """`guards(args) -> bool`: whether every capture guard of `layout` still holds."""
    env = dict(layout.reach.env, MISS=False)
    return _define(
        "guards",
        GUARD_TEMPLATE.format(guards=_guards(layout)),
        env,
        "guards",
        getattr(layout, "label", "a step"),
    )


def guards_pass(layout: Layout, args: tuple) -> bool:
    """Whether every capture guard of `layout` holds (its guard function is built once)."""
    check = layout.__dict__.get("_guard_fn")
    if check is None:
        check = layout._guard_fn = guard_function(layout)
    return check(args)


def build_fast_path(entry: Any, label: str) -> Callable | None:
    """The generated fast path of `entry` (a layout with its program), or None when the call
    needs the general path (static or keyword arguments, gradients carried in or out, module
    attributes written back)."""
    layout, program = entry.layout, entry.program
    if (
        not enabled()
        or layout.static_kwargs
        or layout.dyn_kwargs
        or layout.grad_params
        or program.grads_out
        or program.attr_outputs
        or any(k not in (DYN, LIVE, HOLDER) for k in layout.kinds)
    ):
        return None
    env: dict[str, Any] = dict(layout.reach.env)
    env.update(
        COUNTERS=_structure.counters,
        MISS=MISS,
        amp_local=amp_local,
        ARRAY=ARRAY_TYPE,
        entry=entry,
        jitted=program.jitted,
        amp=layout.amp,
        KEY=entry.key,
        M=entry.mutated_cells,
        C=entry.const_cells,
    )
    checks = [
        f"COUNTERS.structure != {layout.structure_at}",
        f"COUNTERS.grad_presence != {layout.grad_presence_at}",
        "COUNTERS.handed_out != entry.handed_out_at",
        "amp_local.state != amp",
        "kwargs",
        f"len(args) != {len(layout.kinds)}",
    ]
    for i, kind in enumerate(layout.kinds):
        if kind == DYN:
            checks.append(f"(type(args[{i}]) is not ARRAY and type(args[{i}]) is not float)")
        else:
            env[f"a{i}"] = layout.values[i]
            checks.append(f"args[{i}] is not a{i}")
    dyn = "".join(f"args[{i}], " if k == DYN else "None, " for i, k in enumerate(layout.kinds))
    mutated_cells, const_cells = entry.mutated_cells, entry.const_cells
    unroll = len(mutated_cells) + len(const_cells) <= UNROLL_CELLS
    if unroll:
        env.update({f"m{j}": c for j, c in enumerate(mutated_cells)})
        env.update({f"c{j}": c for j, c in enumerate(const_cells)})
        mut = [f"m{j}._value" for j in range(len(mutated_cells))]
        mutated = "[" + ", ".join(mut) + "]"
        const = "[" + ", ".join(f"c{j}._value" for j in range(len(const_cells))) + "]"
        scatter = ["    " + ", ".join(mut) + ", = new_vals"] if mut else []
    else:
        mutated, const = "[c._value for c in M]", "[c._value for c in C]"
        scatter = ["    for c, v in zip(M, new_vals):", "        c._value = v"]
    for j, o in enumerate(layout.states):  # Stateful's copy-free get/set pair, for this path
        env[f"o{j}_get"] = o._jm_state_view
        env[f"o{j}_set"] = o._jm_state_install
        scatter.append(f"    o{j}_set(new_states[{j}])")
    for j, (obj, method, a, kw) in enumerate(program.deferred):  # host calls (scheduler steps)
        env[f"d{j}"] = functools.partial(method, obj, *a, **kw)
        scatter.append(f"    d{j}()")
    guard_block = (
        f"    try:\n{_guards(layout)}\n    except Exception:\n        return MISS\n"
        if layout.reach.guards
        else ""
    )
    source = FAST_PATH_TEMPLATE.format(
        checks=" or ".join(checks),
        guard_block=guard_block,
        mutated=mutated,
        const=const,
        states=", ".join(f"o{j}_get()" for j in range(len(layout.states))),
        dyn=dyn,
        scatter="\n".join(scatter) if scatter else "    pass",
    )
    return _define("fast path", source, env, "fast", label)
