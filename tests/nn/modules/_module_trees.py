"""Build the same module tree in torch and jaxmodule from one description (differential tests).

A description is plain data (so hypothesis can generate it):

    node   = {"kind": "block", "params": [(name, shape | None)],
              "buffers": [(name, shape | None, persistent)], "children": [(name, node)],
              "extra": str | None}
           | {"kind": "linear", "in": int, "out": int, "bias": bool}
    tree   = {"root": node, "share": [(parent_path, name, source_path)],
              "tie": [(module_path, name, source_param_path)]}

`share` registers the module at `source_path` a second time under `parent_path.name`; `tie` makes
`module_path.name` the very Parameter found at `source_param_path`. Every array gets values from
one numpy generator walked in the same order, so both trees hold equal numbers.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import jaxmodule
import numpy as np
import torch

from tests.helpers import to_numpy


class Lib:
    """What differs between the two libraries when building a tree."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_torch = name == "torch"
        self.nn = torch.nn if self.is_torch else jaxmodule.nn

    def arr(self, a: np.ndarray) -> Any:
        return torch.from_numpy(np.array(a)) if self.is_torch else jnp.asarray(a)

    def no_grad(self) -> Any:
        return torch.no_grad() if self.is_torch else jaxmodule.no_grad()


TORCH = Lib("torch")
JM = Lib("jaxmodule")
LIBS = (TORCH, JM)

_classes: dict[str, dict[str, type]] = {}


def classes(lib: Lib) -> dict[str, type]:
    """`Block` (generic custom module) and `Leaf` (one weight, one buffer) for `lib`, same names."""
    if lib.name in _classes:
        return _classes[lib.name]
    nn = lib.nn

    class Block(nn.Module):
        def __init__(self, node: dict, rng: np.random.Generator) -> None:
            super().__init__()
            self._extra = node.get("extra")
            for name, shape in node.get("params", ()):
                if shape is None:
                    self.register_parameter(name, None)
                else:
                    setattr(self, name, nn.Parameter(lib.arr(_values(rng, shape))))
            for name, shape, persistent in node.get("buffers", ()):
                self.register_buffer(
                    name,
                    None if shape is None else lib.arr(_values(rng, shape)),
                    persistent=persistent,
                )
            for name, child in node.get("children", ()):
                setattr(self, name, build_node(lib, child, rng))

        def forward(self, x: Any) -> Any:
            return x

        def extra_repr(self) -> str:
            return self._extra or ""

    class Leaf(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(lib.arr(np.arange(6, dtype=np.float32).reshape(2, 3)))
            self.register_buffer("count", lib.arr(np.array(0, dtype=np.int32)))

        def forward(self, x: Any) -> Any:
            return x @ self.weight.T

    _classes[lib.name] = {"Block": Block, "Leaf": Leaf}
    for cls in (Block, Leaf):  # picklable: reachable as a module-level name
        cls.__qualname__ = f"{lib.name}_{cls.__name__}"
        globals()[cls.__qualname__] = cls
    return _classes[lib.name]


def _values(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def build_node(lib: Lib, node: dict, rng: np.random.Generator) -> Any:
    if node["kind"] == "linear":
        m = lib.nn.Linear(node["in"], node["out"], bias=node["bias"])
        m.weight.data = lib.arr(_values(rng, (node["out"], node["in"])))
        if node["bias"]:
            m.bias.data = lib.arr(_values(rng, (node["out"],)))
        return m
    if node["kind"] == "leaf":
        return classes(lib)["Leaf"]()
    return classes(lib)["Block"](node, rng)


def build(lib: Lib, tree: dict, seed: int = 0) -> Any:
    """The module described by `tree` (see the module docstring) in `lib`."""
    rng = np.random.default_rng(seed)
    root = build_node(lib, tree["root"], rng)
    for parent, name, source in tree.get("share", ()):
        setattr(root.get_submodule(parent), name, root.get_submodule(source))
    for path, name, source in tree.get("tie", ()):
        setattr(root.get_submodule(path), name, root.get_parameter(source))
    return root


def build_both(tree: dict, seed: int = 0) -> tuple[Any, Any]:
    """(torch module, jaxmodule module) built from one description."""
    return build(TORCH, tree, seed), build(JM, tree, seed)


# A tree with everything: params, None params, buffers persistent or not, None buffer, nested
# children, a None child, a shared submodule and a tied weight.
RICH = {
    "root": {
        "kind": "block",
        "params": [("alpha", (3,)), ("gone", None), ("beta", (2, 2))],
        "buffers": [("stat", (3,), True), ("scratch", (2,), False), ("empty", None, True)],
        "children": [
            (
                "enc",
                {
                    "kind": "block",
                    "params": [("w", (4, 3))],
                    "buffers": [("mask", (4,), False), ("mean", (4,), True)],
                    "children": [
                        ("lin", {"kind": "linear", "in": 3, "out": 4, "bias": True}),
                        ("nob", {"kind": "linear", "in": 4, "out": 2, "bias": False}),
                    ],
                    "extra": "depth=2, act=relu",
                },
            ),
            (
                "dec",
                {
                    "kind": "block",
                    "params": [("v", (2,))],
                    "children": [
                        (
                            "inner",
                            {
                                "kind": "block",
                                "buffers": [("b", (1,), True)],
                                "extra": "line one\nline two",
                            },
                        )
                    ],
                },
            ),
            ("leaf", {"kind": "leaf"}),
        ],
    },
    "share": [("dec", "again", "enc.lin"), ("", "enc_alias", "enc")],
    "tie": [("dec", "tied", "enc.w")],
}


def names(it: Any) -> list[str]:
    return [n for n, _ in it]


def snapshot(m: Any) -> dict:
    """Everything observable about a module tree (for "nothing changed" checks)."""
    return {
        "sd": [(k, to_numpy(v).tolist()) for k, v in m.state_dict().items()],
        "params": [(n, tuple(p.shape)) for n, p in m.named_parameters(remove_duplicate=False)],
        "buffers": [(n, tuple(b.shape)) for n, b in m.named_buffers(remove_duplicate=False)],
        "modules": [(n, type(x).__name__) for n, x in m.named_modules(remove_duplicate=False)],
        "repr": repr(m),
        "dict": sorted(k for k in vars(m) if not k.startswith("_")),
    }


def errors(fn: Any) -> BaseException | None:
    """The exception `fn()` raises, or None."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return e
    return None


def same_error(torch_fn: Any, jm_fn: Any, *parts: str) -> BaseException:
    """Both calls raise the same exception type; the jaxmodule message contains `parts`."""
    te, je = errors(torch_fn), errors(jm_fn)
    assert te is not None, "torch did not raise"
    assert je is not None, f"jaxmodule did not raise (torch raised {type(te).__name__}: {te})"
    assert type(je) is type(te), f"{type(je).__name__}: {je}  vs torch  {type(te).__name__}: {te}"
    jmsg, tmsg = (str(e.args[0]) if e.args else "" for e in (je, te))
    for p in parts:
        assert p in jmsg, f"{p!r} not in {jmsg!r}"
        assert p in tmsg, f"{p!r} not in torch's {tmsg!r}"
    return je


for _lib in LIBS:
    classes(_lib)
