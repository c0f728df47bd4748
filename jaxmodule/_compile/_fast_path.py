"""Generated per-call code: the guard check of a layout and the fast path of a compiled call.

A dispatch-bound step spends most of its Python time deciding that nothing changed and moving
arrays in and out, so for each call layout that needs nothing special jaxmodule generates one
flat function from `FAST_PATH_TEMPLATE`: every check (the structure counters of `_structure.py`,
autocast, argument identities and types, the capture guards of `_reach.py`), the gather, the
jitted call and the scatter, unrolled. It is the compiled function's `__call__` itself
(`CompiledFunction._use_fast`), so a call costs one Python frame, as a raw `jax.jit` step's
wrapper does. Any failed check hands the call to the general path in `_function.py` (`GENERAL`),
and a retrace that reached new state to its restart (`RESTART`). The source is registered with
`linecache` under a readable file name, so tracebacks show it, and kept on the function as
`__jm_source__`.

`JAXMODULE_FAST_PATH=0` in the environment turns generation off (every call takes the general
path, with identical results).
"""

from __future__ import annotations

import functools
import linecache
import os
from collections.abc import Callable
from typing import Any

import jax

from .. import _structure
from .._stateful import is_versioned
from ..amp.autocast_mode import _local as amp_local
from ._layout import ARRAY_TYPE, DYN, HOLDER, LIVE, Layout
from ._program import Restart
from ._states import pack

__all__ = [
    "MissedGuard",
    "FAST_PATH_TEMPLATE",
    "GUARD_TEMPLATE",
    "build_fast_path",
    "guard_function",
    "guards_pass",
    "enabled",
]


class MissedGuard(Exception):
    """A capture guard failed (raised and caught inside a generated fast path)."""


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
def fast(*args, **kwargs):
{declare}    if {checks}:
        return GENERAL(args, kwargs)
{guard_block}{gather}    try:
        new_vals, new_states, _, _, out = jitted(KEY, {mutated}, {const}, {written}, {read}, [], ({dyn}), {{}})
    except Restart as r:
        return RESTART(r, args, kwargs)
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


def build_fast_path(
    entry: Any, label: str, general: Callable, restart: Callable
) -> Callable | None:
    """The generated fast path of `entry` (a layout with its program): `fast(*args, **kwargs)`,
    which hands a call it cannot serve to `general(args, kwargs)` and a `Restart` raised by a
    retrace to `restart(r, args, kwargs)`. None when the call needs the general path (static or
    keyword arguments, gradients carried in or out, module attributes written back, a state
    that comes out with another structure)."""
    layout, program = entry.layout, entry.program
    if (
        not enabled()
        or layout.static_kwargs
        or layout.dyn_kwargs
        or layout.grad_params
        or program.grads_out
        or program.attr_outputs
        or any(k not in (DYN, LIVE, HOLDER) for k in layout.kinds)
        or any(not isinstance(h, (list, type(None))) for h in program.states.installs)
    ):
        return None
    env: dict[str, Any] = dict(layout.reach.env)
    env.update(
        COUNTERS=_structure.counters,
        GENERAL=general,
        RESTART=restart,
        Restart=Restart,
        MissedGuard=MissedGuard,
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
    declare, gather, written, read = _state_lines(entry, env, scatter)
    for j, (obj, method, a, kw) in enumerate(program.deferred):  # host calls (scheduler steps)
        env[f"d{j}"] = functools.partial(method, obj, *a, **kw)
        scatter.append(f"    d{j}()")
    guards = "\n".join(layout.reach.guard_lines("        ", fail="raise MissedGuard"))
    guard_block = (  # outside the try: an error of the general path itself propagates
        f"    try:\n{guards}\n    except Exception:\n        return GENERAL(args, kwargs)\n"
        if layout.reach.guards
        else ""
    )
    source = FAST_PATH_TEMPLATE.format(
        declare=declare,
        checks=" or ".join(checks),
        guard_block=guard_block,
        mutated=mutated,
        const=const,
        gather=gather,
        written=written,
        read=read,
        dyn=dyn,
        scatter="\n".join(scatter) if scatter else "    pass",
    )
    return _define("fast path", source, env, "fast", label)


def _state_lines(entry: Any, env: dict, scatter: list[str]) -> tuple[str, str, str, str]:
    """The fast path's code for the states of its optimizers and GradScalers (`_states.py`):
    the `global` line of the leaves it keeps between calls, the lines that read each object's
    state leaves, the written and read arguments of the call, and (appended to `scatter`) the
    install of the written leaves. An object whose step writes nothing is not installed at all.

    An object with both versions (`is_versioned`) keeps its call arguments from the last call
    (`W{j}` written, `R{j}` read, the packed vector first) and its read leaves as it holds them
    (`Q{j}`, for the install): while its value version stands still the call passes them on as
    they are, so a call reads no state at all. When it moves (a new
    learning rate, a load), the state is flattened again after checking the structure version
    and the tree. Other objects are flattened and their structure compared on every call.
    Flattening an optimizer's state right before the jitted call costs the tiny-MLP step
    ~10 us (measured; the flatten alone takes ~2 us), which is why the leaves are kept."""
    plan = entry.program.states
    lines: list[str] = []
    written: list[str] = []
    read: list[str] = []
    kept: list[str] = []
    at = 0
    for j, o in enumerate(entry.layout.states):
        env[f"o{j}_get"] = o._jm_state_view
        env[f"o{j}_set"] = o._jm_state_install
        env[f"T{j}"] = plan.in_trees[j]
        how, w, r, packed = (
            plan.installs[j] or [],
            plan.written_local[j],
            plan.read_local[j],
            plan.packs[j],
        )
        ws = ", ".join(f"s{j}[{i}]" for i in w)
        rs = ", ".join(f"s{j}[{i}]" for i in r)
        # the read arguments: the packed vector first (`StatePlan.read_args`), then the others
        head = [f"PACK([{', '.join(f's{j}[{i}]' for i in packed)}])"] if packed else []
        ra = ", ".join(head + [f"s{j}[{i}]" for i in r if i not in packed])
        flatten = [
            f"s{j}, t{j} = FLATTEN(o{j}_get())",
            f"if t{j} != T{j}:",
            "    return GENERAL(args, kwargs)",
        ]
        if is_versioned(o):
            env[f"o{j}_version"] = o._jm_state_version
            env[f"o{j}_values"] = o._jm_value_version
            env[f"AT{j}"] = None  # the value version the kept leaves are from (None: none yet)
            kept += [f"W{j}", f"R{j}", f"Q{j}", f"AT{j}"]
            lines += [
                f"    if o{j}_values() != AT{j}:",
                f"        if o{j}_version() != entry.state_versions[{j}]:",
                "            return GENERAL(args, kwargs)",
                *("        " + line for line in flatten),
                f"        W{j}, R{j}, Q{j} = [{ws}], [{ra}], [{rs}]",
                f"        AT{j} = o{j}_values()",
            ]
            written.append(f"W{j}")
            read.append(f"R{j}")
            if how:
                leaf = {i: f"Q{j}[{n}]" for n, i in enumerate(r)}
                leaf.update((i, f"new_states[{at + n}]") for n, i in enumerate(how))
                n_leaves = plan.in_trees[j].num_leaves
                items = ", ".join(leaf[i] for i in range(n_leaves))
                # the install moves the value version and returns it
                scatter.append(f"    AT{j} = o{j}_set(T{j}.unflatten([{items}]))")
                whole = at == 0 and len(how) == plan.n_out
                scatter.append(
                    f"    W{j} = new_states"
                    if whole
                    else f"    W{j} = new_states[{at}:{at + len(how)}]"
                )
        else:
            lines += ["    " + line for line in flatten]
            written.append(f"[{ws}]")
            read.append(f"[{ra}]")
            if how:
                scatter += [f"    s{j}[{i}] = new_states[{at + n}]" for n, i in enumerate(how)]
                scatter.append(f"    o{j}_set(T{j}.unflatten(s{j}))")
        at += len(how)
    env["FLATTEN"] = jax.tree_util.tree_flatten
    env["PACK"] = pack
    declare = f"    global {', '.join(kept)}\n" if kept else ""
    return (
        declare,
        "".join(line + "\n" for line in lines),
        " + ".join(written) or "[]",
        " + ".join(read) or "[]",
    )
