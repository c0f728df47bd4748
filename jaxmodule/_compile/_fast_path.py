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

import jax

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
{guard_block}{gather}    new_vals, new_states, _, _, out = jitted(KEY, {mutated}, {const}, [{written}], [{read}], [], ({dyn}), {{}})
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
    attributes written back, a state that comes out with another structure)."""
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
    gather, written, read = _state_lines(entry, env, scatter)
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
        gather=gather,
        written=written,
        read=read,
        dyn=dyn,
        scatter="\n".join(scatter) if scatter else "    pass",
    )
    return _define("fast path", source, env, "fast", label)


PY_GATHER_LEAVES = 64  # states up to this many leaves are read by generated subscripts


def _state_lines(entry: Any, env: dict, scatter: list[str]) -> tuple[str, str, str]:
    """The fast path's code for the states of its optimizers and GradScalers (`_states.py`):
    the lines that read each object's state view (`v{j}`) and check it is still the structure
    the program takes, the written and read arguments, and (appended to `scatter`) the install
    of the written leaves. An object whose step writes nothing is not installed at all.

    A versioned object (`_jm_state_version`) of up to `PY_GATHER_LEAVES` leaves is read by
    generated subscripts (`v0['hp'][0]['lr']`) after one version check, and installed by a
    generated constructor that shares the subtrees the step did not write. Otherwise the view
    is flattened and its structure compared. Flattening a state of arrays right before the
    jitted call costs the tiny-MLP step ~10 us more than the subscripts (measured; the flatten
    alone takes ~2 us), which is why the subscripts exist."""
    plan = entry.program.states
    lines = []
    written_local, read_local = plan.local(plan.written), plan.local(plan.read)
    written: list[str] = []
    read: list[str] = []
    at = 0
    for j, o in enumerate(entry.layout.states):
        env[f"o{j}_get"] = o._jm_state_view
        env[f"o{j}_set"] = o._jm_state_install
        env[f"o{j}_version"] = o._jm_state_version
        tree, how = plan.in_trees[j], plan.installs[j] or []
        lines.append(f"    v{j} = o{j}_get()")
        subs = _subscripts(tree) if tree.num_leaves <= PY_GATHER_LEAVES else None
        if subs is not None and o._jm_state_version() is not None:
            lines.append(f"    if o{j}_version() != entry.state_versions[{j}]:")
            written += [f"v{j}{subs[i]}" for i in written_local[j]]
            read += [f"v{j}{subs[i]}" for i in read_local[j]]
            if how:
                new = {i: f"new_states[{at + n}]" for n, i in enumerate(how)}
                scatter.append(f"    o{j}_set({_rebuild(tree, f'v{j}', 0, new, env)})")
        else:
            env[f"T{j}"] = tree
            lines.append(f"    s{j}, t{j} = FLATTEN(v{j})")
            lines.append(f"    if t{j} != T{j}:")
            written += [f"s{j}[{i}]" for i in written_local[j]]
            read += [f"s{j}[{i}]" for i in read_local[j]]
            if how:
                scatter += [f"    s{j}[{i}] = new_states[{at + n}]" for n, i in enumerate(how)]
                scatter.append(f"    o{j}_set(T{j}.unflatten(s{j}))")
        lines.append("        return MISS")
        at += len(how)
    env["FLATTEN"] = jax.tree_util.tree_flatten
    return "".join(line + "\n" for line in lines), ", ".join(written), ", ".join(read)


def _child_keys(tree: Any) -> list[str] | None:
    """The subscript of each child of `tree`'s root (`['lr']`, `[0]`), or None when the node is
    not a dict with str/int keys, a list, a tuple or a namedtuple."""
    typ, aux = tree.node_data()
    n = len(tree.children())
    if typ is dict:
        return [f"[{k!r}]" for k in aux] if all(type(k) in (str, int) for k in aux) else None
    if typ in (list, tuple) or (issubclass(typ, tuple) and hasattr(typ, "_fields")):
        return [f"[{i}]" for i in range(n)]
    if typ is type(None):
        return []
    return None


def _subscripts(tree: Any) -> list[str] | None:
    """Per leaf of `tree`, in order, the subscripts that reach it from the root (None when some
    node has no `_child_keys`)."""
    if tree.node_data() is None:
        return [""]
    keys = _child_keys(tree)
    if keys is None:
        return None
    out: list[str] = []
    for k, child in zip(keys, tree.children()):
        sub = _subscripts(child)
        if sub is None:
            return None
        out += [k + s for s in sub]
    return out


def _rebuild(tree: Any, at: str, first: int, new: dict[int, str], env: dict) -> str:
    """An expression that builds a pytree of `tree`'s structure: leaf `i` (counting from
    `first`) is `new[i]` where given; a subtree with no such leaf is the one at `at`, shared."""
    if not any(first <= i < first + tree.num_leaves for i in new):
        return at
    nd = tree.node_data()
    if nd is None:
        return new[first]
    typ = nd[0]
    parts, i = [], first
    keys = _child_keys(tree)
    assert keys is not None  # `_subscripts` accepted this tree
    for k, child in zip(keys, tree.children()):
        parts.append((k, _rebuild(child, at + k, i, new, env)))
        i += child.num_leaves
    if typ is dict:
        return "{" + ", ".join(f"{k[1:-1]}: {p}" for k, p in parts) + "}"
    if typ is list:
        return "[" + ", ".join(p for _, p in parts) + "]"
    items = "".join(p + ", " for _, p in parts)
    if typ is tuple:
        return f"({items})"
    name = f"NT{len(env)}"  # a namedtuple class
    env[name] = typ
    return f"{name}({items})"
