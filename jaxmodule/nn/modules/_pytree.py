"""Modules as JAX pytrees, with the flattening plan cached.

The whole module tree is ONE pytree node: its children are the unique parameter and buffer arrays
in state_dict order (non-persistent buffers included, shared cells once). Flattening is a list
comprehension over a cached list of cells; the plan (cells + `ModuleTreeDef`) is rebuilt only when
the global structure version (`jaxmodule/_structure.py`) moved since it was built.

The treedef's aux data (`ModuleTreeDef`) compares by a structural signature: classes, names,
requires_grad/persistence flags, training mode, hooks and every other plain attribute (by value
when hashable, else by identity). Equal signatures mean `jax.jit` reuses its trace; any change
that could change the computation changes the signature.

Unflattening gives a new module of the same class: plain attributes are shallow-copied from the
template module, so a copy shares hook registries (and other mutable attributes) with the module
it came from. Cells are new `Parameter`/`Buffer` objects wrapping the leaves; tied parameters come
back tied.

Unflattening is lazy: it makes only the root object (its plain attributes copied, plus a
`_jm_lazy` entry holding the treedef and leaves). Flattening a lazy module returns those leaves
without building anything, so chains of `jax.tree.map`, jit outputs passed straight back in, or
gradient modules that are only flattened again never build submodules or cells. The first access
of anything else (a parameter, a child, `_modules`, any registration or attribute assignment, a
copy or pickle) builds the whole tree once (`materialize`), exactly as an eager unflatten would.
"""

from __future__ import annotations

from typing import Any

import jax

from ... import _structure

__all__ = ["register", "ModuleTreeDef", "module_cells", "materialize"]

_CONTAINERS = ("_parameters", "_buffers", "_modules")
_SKIP = frozenset(_CONTAINERS + ("_jm_tree", "_jm_lazy", "_compiled_call_impl"))


def _sig(v: Any, depth: int = 0) -> Any:
    """A hashable stand-in for an attribute value: itself if hashable, else its structure or id."""
    if isinstance(v, jax.Array):
        return ("array", id(v))
    try:
        hash(v)
        return v
    except TypeError:
        pass
    if depth < 3:
        if isinstance(v, dict):
            return ("dict", tuple((k, _sig(x, depth + 1)) for k, x in v.items()))
        if isinstance(v, (list, tuple)):
            return ("seq", tuple(_sig(x, depth + 1) for x in v))
        if isinstance(v, (set, frozenset)):
            try:
                return ("set", frozenset(v))
            except TypeError:
                pass
    return ("id", id(v))


class _ModuleRecipe:
    __slots__ = ("cls", "static", "params", "buffers", "children")

    def __init__(
        self, cls: type, static: dict, params: tuple, buffers: tuple, children: tuple
    ) -> None:
        self.cls, self.static, self.params, self.buffers, self.children = (
            cls,
            static,
            params,
            buffers,
            children,
        )


class ModuleTreeDef:
    """Aux data of a flattened module: how to rebuild it, and a structural signature."""

    __slots__ = ("recipes", "leaf_kinds", "names", "signature", "_hash")

    def __init__(self, recipes: list, leaf_kinds: list, names: list, signature: tuple) -> None:
        self.recipes = recipes
        self.leaf_kinds = leaf_kinds
        self.names = names
        self.signature = signature
        self._hash = hash(signature)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is ModuleTreeDef
            and self._hash == other._hash
            and self.signature == other.signature
        )

    def __repr__(self) -> str:
        return f"ModuleTreeDef({self.recipes[0].cls.__name__}, {len(self.leaf_kinds)} leaves)"


def _build(root: Any) -> tuple[int, list, ModuleTreeDef]:
    materialize(root)
    version = _structure.counters.structure
    mod_index: dict[int, int] = {}
    order: list[tuple[str, Any]] = []

    def visit(m: Any, prefix: str) -> None:
        mod_index[id(m)] = len(order)
        order.append((prefix, m))
        for name, child in m.__dict__["_modules"].items():
            if child is not None and id(child) not in mod_index:
                visit(child, prefix + name + ".")

    visit(root, "")
    cells: list = []
    cell_index: dict[int, int] = {}
    leaf_kinds: list = []
    names: list[str] = []
    recipes: list[_ModuleRecipe] = []
    sig: list = []

    def leaf(cell: Any, name: str) -> int:
        if cell is None:
            return -1
        idx = cell_index.get(id(cell))
        if idx is None:
            idx = cell_index[id(cell)] = len(cells)
            cells.append(cell)
            leaf_kinds.append((type(cell), cell._aux()))
            names.append(name)
        return idx

    for prefix, m in order:
        d = m.__dict__
        params = tuple((k, leaf(c, prefix + k)) for k, c in d["_parameters"].items())
        buffers = tuple((k, leaf(c, prefix + k)) for k, c in d["_buffers"].items())
        children = tuple(
            (k, -1 if c is None else mod_index[id(c)]) for k, c in d["_modules"].items()
        )
        static = {k: v for k, v in d.items() if k not in _SKIP}
        recipes.append(_ModuleRecipe(type(m), static, params, buffers, children))
        sig.append(
            (type(m), params, buffers, children, tuple((k, _sig(v)) for k, v in static.items()))
        )
    treedef = ModuleTreeDef(recipes, leaf_kinds, names, (tuple(sig), tuple(leaf_kinds)))
    return version, cells, treedef


def module_cells(m: Any) -> tuple[list, ModuleTreeDef]:
    """The cached (cells, treedef) of `m`, rebuilt if the structure version moved."""
    cache = m.__dict__.get("_jm_tree")
    if cache is None or cache[0] != _structure.counters.structure:
        cache = _build(m)
        m.__dict__["_jm_tree"] = cache
    return cache[1], cache[2]


def _flatten(m: Any) -> tuple[Any, ModuleTreeDef]:
    cache = m.__dict__.get("_jm_tree")
    if cache is None or cache[0] != _structure.counters.structure:
        lazy = m.__dict__.get("_jm_lazy")
        if lazy is not None:  # not built yet: nothing can have changed it
            return lazy[1], lazy[0]
        cache = _build(m)
        m.__dict__["_jm_tree"] = cache
    return [c._value for c in cache[1]], cache[2]


def _flatten_with_keys(m: Any) -> tuple[list, ModuleTreeDef]:
    leaves, treedef = _flatten(m)
    return [(jax.tree_util.GetAttrKey(n), v) for n, v in zip(treedef.names, leaves)], treedef


def _set_dict(obj: Any, d: dict) -> None:
    object.__setattr__(obj, "__dict__", d)


def _unflatten(treedef: ModuleTreeDef, leaves: Any) -> Any:
    recipe = treedef.recipes[0]
    root = object.__new__(recipe.cls)
    d = recipe.static.copy()
    d["_jm_lazy"] = (treedef, leaves)
    _set_dict(root, d)
    return root


def materialize(root: Any) -> None:
    """Build the submodules and cells of a lazily unflattened module (no-op otherwise)."""
    d = root.__dict__
    lazy = d.pop("_jm_lazy", None)
    if lazy is None:
        return
    treedef, leaves = lazy
    cells = [kind._wrap(v, aux) for (kind, aux), v in zip(treedef.leaf_kinds, leaves)]
    recipes = treedef.recipes
    mods = [root] + [object.__new__(r.cls) for r in recipes[1:]]
    cells.append(None)  # index -1: a None entry
    mods.append(None)
    for k, (r, m) in enumerate(zip(recipes, mods)):
        md = d if k == 0 else r.static.copy()
        # registration state is per module (hook registries stay shared, see the docstring)
        md["_non_persistent_buffers_set"] = set(md["_non_persistent_buffers_set"])
        md["_parameters"] = {n: cells[i] for n, i in r.params}
        md["_buffers"] = {n: cells[i] for n, i in r.buffers}
        md["_modules"] = {n: mods[i] for n, i in r.children}
        if k:
            _set_dict(m, md)
    cells.pop()
    d["_jm_tree"] = (_structure.counters.structure, cells, treedef)


def register(cls: type) -> None:
    """Register a Module class as a pytree node (called for every subclass)."""
    jax.tree_util.register_pytree_with_keys(
        cls, _flatten_with_keys, _unflatten, flatten_func=_flatten
    )
