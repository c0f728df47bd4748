"""Split a Python object into a JSON manifest tree and a flat list of arrays, and back.

The manifest keeps everything orbax does not: container types (dict, OrderedDict with its
attributes, list, tuple, set), key order and key types (int keys stay ints), and the Python
leaves (None, bool, int, float, str, bytes, complex). Arrays are replaced by `{"A": index}` and
stored by orbax under the key `a<index>`; their kind (jax / numpy / numpy scalar / Parameter /
Buffer), dtype, shape and a CRC32 of their bytes are recorded so a load can check what it read.

Node encoding (JSON): a JSON scalar is the Python leaf itself (json keeps int vs float vs bool);
every other node is an object with one tag key: `A` array, `D` dict, `O` OrderedDict, `L` list,
`T` tuple, `S` set, `FS` frozenset, `B` bytes (base64), `C` complex, `F` non-finite float,
`G` jaxmodule Generator.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections import OrderedDict
from typing import Any

import jax
import numpy as np

from .._random import Generator
from .._tensor import _torch_to_numpy, is_torch_tensor
from ..nn.modules.module import Module
from ..nn.parameter import Buffer, Parameter

__all__ = ["encode", "decode", "ArrayRecord", "crc32_of", "storable"]


class ArrayRecord:
    """One array leaf: the value to store and what to record about it."""

    __slots__ = ("value", "kind", "key", "extra")

    def __init__(self, value: Any, kind: str, key: str, extra: Any = None) -> None:
        self.value = value
        self.kind = kind
        self.key = key  # the '/'-joined key path, e.g. 'model/fc.weight'
        self.extra = extra


def crc32_of(arr: np.ndarray) -> int:
    """CRC32 of the array's bytes in C order (dtype-agnostic, bfloat16 included)."""
    flat = np.ascontiguousarray(arr).reshape(-1)
    return zlib.crc32(flat.view(np.uint8).data) & 0xFFFFFFFF


def storable(dtype: np.dtype) -> bool:
    """Numeric and bool dtypes, including ml_dtypes' (bfloat16, float8_*)."""
    return dtype.kind in "biufc" or (
        dtype.kind == "V" and dtype.type.__module__.startswith("ml_dtypes")
    )


def _is_cell(x: Any) -> bool:
    return isinstance(x, (Parameter, Buffer))


def encode(obj: Any, arrays: list[ArrayRecord], parts: tuple = ()) -> Any:
    """Return the JSON node for `obj`, appending every array leaf to `arrays`."""
    key = "/".join(str(p) for p in parts)
    path = "obj" + "".join(f"[{p!r}]" for p in parts)

    if isinstance(obj, np.generic):  # before the Python scalars: np.float64 subclasses float
        if not storable(obj.dtype):
            raise TypeError(
                f"jaxmodule.save: {path} is a numpy scalar of dtype {obj.dtype}, which cannot be stored"
            )
        arrays.append(ArrayRecord(np.asarray(obj), "npscalar", key))
        return {"A": len(arrays) - 1}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else {"F": repr(float(obj))}
    if isinstance(obj, complex):
        return {"C": [encode(obj.real, arrays), encode(obj.imag, arrays)]}
    if isinstance(obj, (bytes, bytearray)):
        return {"B": base64.b64encode(bytes(obj)).decode("ascii"), "ba": isinstance(obj, bytearray)}
    if isinstance(obj, jax.Array):
        if isinstance(obj, jax.core.Tracer):
            raise TypeError(
                f"jaxmodule.save: {path} is a traced value (inside jit/grad); save concrete arrays"
            )
        arrays.append(ArrayRecord(obj, "jax", key))
        return {"A": len(arrays) - 1}
    if isinstance(obj, np.ndarray):
        if not storable(obj.dtype):
            raise TypeError(
                f"jaxmodule.save: {path} is a numpy array of dtype {obj.dtype}, which cannot be "
                "stored; only numeric and bool arrays are supported"
            )
        arrays.append(ArrayRecord(np.array(obj, copy=True), "numpy", key))
        return {"A": len(arrays) - 1}
    if _is_cell(obj):
        kind = "Parameter" if isinstance(obj, Parameter) else "Buffer"
        arrays.append(ArrayRecord(obj._value, kind, key, bool(obj._aux())))
        return {"A": len(arrays) - 1}
    if is_torch_tensor(obj):
        arrays.append(ArrayRecord(_torch_to_numpy(obj), "torch", key))
        return {"A": len(arrays) - 1}
    if isinstance(obj, Generator):
        return {
            "G": {
                "seed": obj.initial_seed(),
                "key": encode(np.asarray(obj.get_state()), arrays, parts),
            }
        }
    if isinstance(obj, dict) and type(obj) in (dict, OrderedDict):
        items = [
            [encode(k, arrays, (*parts, "<key>")), encode(v, arrays, (*parts, k))]
            for k, v in obj.items()
        ]
        if type(obj) is dict:
            return {"D": items}
        node: dict[str, Any] = {"O": items}
        attrs = getattr(obj, "__dict__", None)
        if attrs:
            node["attrs"] = encode(dict(attrs), arrays, (*parts, "__dict__"))
        return node
    if type(obj) in (list, tuple, set, frozenset):
        tags: dict[type, str] = {list: "L", tuple: "T", set: "S", frozenset: "FS"}
        tag = tags[type(obj)]
        return {tag: [encode(v, arrays, (*parts, i)) for i, v in enumerate(obj)]}
    if callable(getattr(obj, "state_dict", None)):
        raise TypeError(_WHOLE_OBJECT.format(path=path, cls=type(obj).__name__, name=_role(obj)))
    raise TypeError(
        f"jaxmodule.save: cannot store {path} of type {type(obj).__module__}.{type(obj).__qualname__}; "
        "supported: arrays (jax, numpy, Parameter, Buffer, torch), dict, OrderedDict, list, tuple, "
        "set, None, bool, int, float, complex, str, bytes and jaxmodule.Generator"
    )


_WHOLE_OBJECT = (
    "jaxmodule.save: {path} is a {cls}; a checkpoint stores state, not objects (torch.save pickles "
    "the whole object, jaxmodule stores no classes or code). Save its state_dict:\n"
    "    jaxmodule.save({name}.state_dict(), path)\n"
    "and restore it into a freshly built one:\n"
    "    {name}.load_state_dict(jaxmodule.load(path))"
)


def _role(obj: Any) -> str:
    """The variable name a torch user would write for `obj` in the suggested fix."""
    if isinstance(obj, Module):
        return "model"
    return "optimizer" if hasattr(obj, "param_groups") else "obj"


def _index(i: Any, arrays: list[Any]) -> int:
    if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(arrays):
        raise ValueError(f"array reference {i!r:.40} out of range")
    return i


def _pairs(items: Any) -> list:
    if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 for p in items):
        raise ValueError("a mapping node is not a list of [key, value] pairs")
    return items


def _items(node: Any) -> list:
    if not isinstance(node, list):
        raise ValueError(f"a container node is not a list: {node!r:.60}")
    return node


def _attrs(node: Any, arrays: list[Any]) -> dict:
    attrs = decode(node, arrays)
    if not isinstance(attrs, dict) or not all(
        isinstance(k, str) and k.isidentifier() and not k.startswith("__") for k in attrs
    ):
        raise ValueError("OrderedDict attributes must map plain attribute names to values")
    return attrs


def decode(node: Any, arrays: list[Any]) -> Any:
    """Inverse of `encode`; `arrays` holds the restored array for each index.

    Raises ValueError (or TypeError, RecursionError) for a node that `encode` cannot have written.
    """
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or len(node) == 0:
        raise ValueError(f"malformed manifest node {node!r:.80}")
    if "A" in node:
        return arrays[_index(node["A"], arrays)]
    if "D" in node:
        return {_key(decode(k, arrays)): decode(v, arrays) for k, v in _pairs(node["D"])}
    if "O" in node:
        od = OrderedDict((_key(decode(k, arrays)), decode(v, arrays)) for k, v in _pairs(node["O"]))
        if "attrs" in node:
            for name, value in _attrs(node["attrs"], arrays).items():
                setattr(od, name, value)
        return od
    if "L" in node:
        return [decode(v, arrays) for v in _items(node["L"])]
    if "T" in node:
        return tuple(decode(v, arrays) for v in _items(node["T"]))
    if "S" in node:
        return {_key(decode(v, arrays)) for v in _items(node["S"])}
    if "FS" in node:
        return frozenset(_key(decode(v, arrays)) for v in _items(node["FS"]))
    if "F" in node:
        if not isinstance(node["F"], str):
            raise ValueError("a non-finite float node does not hold a string")
        return float(node["F"])
    if "C" in node:
        real, imag = (decode(x, arrays) for x in _items(node["C"]))
        if not all(isinstance(x, (int, float)) for x in (real, imag)):
            raise ValueError("a complex node does not hold two numbers")
        return complex(real, imag)
    if "B" in node:
        if not isinstance(node["B"], str):
            raise ValueError("a bytes node does not hold base64 text")
        raw = base64.b64decode(node["B"], validate=True)
        return bytearray(raw) if node.get("ba") else raw
    if "G" in node:
        spec = node["G"]
        if not isinstance(spec, dict) or not isinstance(spec.get("seed"), int):
            raise ValueError("a Generator node has no integer seed")
        g = Generator()
        g._seed = spec["seed"]
        g.set_state(decode(spec.get("key"), arrays))
        return g
    raise ValueError(f"malformed manifest node with unknown tag {sorted(node)!r:.80}")


def _key(k: Any) -> Any:
    # JSON lists become Python lists; a dict key that was a tuple must come back hashable.
    return tuple(_key(x) for x in k) if isinstance(k, list) else k
