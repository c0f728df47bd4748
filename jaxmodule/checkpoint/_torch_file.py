"""Write torch's file format (`torch.save`'s zip serialization) without importing torch.

`jaxmodule.save(obj, 'x.pth')` (also `.pt`, `.bin`) writes what `torch.save` writes, so
`torch.load(path, weights_only=True)` reads it:

    archive/data.pkl              pickle protocol 2 of the object; each tensor is
                                  torch._utils._rebuild_tensor_v2(storage, 0, size, stride,
                                  False, OrderedDict()), its storage the persistent id
                                  ('storage', torch.<Type>Storage, '<key>', 'cpu', numel)
    archive/.format_version       b'1'
    archive/.storage_alignment    b'64'
    archive/byteorder             b'little'
    archive/data/<key>            the tensor's bytes, little-endian, C order, 64-byte aligned
    archive/version               b'3\\n'

The object is first split by `_tree.encode` (the same walk and the same errors as the directory
checkpoint: a Module or optimizer is refused with the state_dict fix, traced values are refused),
then the pickle is emitted opcode by opcode, naming torch's globals by text: only the globals that
`torch.load(weights_only=True)` allows appear. dtypes without one of torch's legacy storage classes
(uint16/32/64, float8) use `_rebuild_tensor_v3` with `torch.storage.UntypedStorage`, as torch
does. Parameters and Buffers are stored as plain tensors (a torch state_dict holds tensors).
A `jaxmodule.Generator` has no torch-file form and a frozenset is refused by torch's weights-only
reader, so both are refused here, naming where they are.

>>> import io, zipfile, numpy as np
>>> buf = io.BytesIO()
>>> write_torch_file(prepare({'w': np.ones(3, np.float32)}), buf)
>>> sorted(zipfile.ZipFile(buf).namelist())[:3]
['archive/.format_version', 'archive/.storage_alignment', 'archive/byteorder']
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import struct
import zipfile
from pathlib import Path
from typing import IO, Any

import ml_dtypes
import numpy as np

from ._tree import ArrayRecord, encode

__all__ = [
    "TORCH_SUFFIXES",
    "wants_torch_file",
    "TorchPlan",
    "prepare",
    "write_torch_file",
    "write_torch_file_at",
    "remove_stale_temp_files",
]

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
_ALIGN = 64
_PREFIX = "archive/"

# numpy dtype -> torch's legacy storage class (used by torch.save for these dtypes)
_STORAGE = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(ml_dtypes.bfloat16): "BFloat16Storage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
    np.dtype(np.complex64): "ComplexFloatStorage",
    np.dtype(np.complex128): "ComplexDoubleStorage",
}
# dtypes torch saves with _rebuild_tensor_v3 and an untyped storage: numpy dtype -> torch dtype name
_UNTYPED = {
    np.dtype(np.uint16): "uint16",
    np.dtype(np.uint32): "uint32",
    np.dtype(np.uint64): "uint64",
    np.dtype(ml_dtypes.float8_e4m3fn): "float8_e4m3fn",
    np.dtype(ml_dtypes.float8_e5m2): "float8_e5m2",
    np.dtype(ml_dtypes.float8_e4m3fnuz): "float8_e4m3fnuz",
    np.dtype(ml_dtypes.float8_e5m2fnuz): "float8_e5m2fnuz",
}


def wants_torch_file(path: str | os.PathLike) -> bool:
    """Whether `save` writes torch's file format at `path` (its name ends in .pth, .pt or .bin)."""
    return os.fspath(path).lower().endswith(TORCH_SUFFIXES)


class TorchPlan:
    """An object checked and split for torch's format: its `_tree` node and its arrays (numpy,
    contiguous, little-endian)."""

    def __init__(self, tree: Any, arrays: list[np.ndarray]) -> None:
        self.tree, self.arrays = tree, arrays


def _host_array(record: ArrayRecord) -> np.ndarray:
    value = record.value
    if not isinstance(value, np.ndarray):
        if getattr(value, "is_deleted", lambda: False)():
            raise RuntimeError(
                f"jaxmodule.save: array {record.key!r} has been deleted (donated to a "
                "jitted call); save the value returned by that call instead"
            )
        value = np.asarray(value)
    dtype = value.dtype.newbyteorder("<")  # torch files are little-endian
    if dtype not in _STORAGE and dtype not in _UNTYPED:
        raise TypeError(
            f"jaxmodule.save: array {record.key!r} has dtype {value.dtype}, which torch's file "
            "format cannot hold; save to a path without a .pth/.pt/.bin suffix"
        )
    return np.asarray(value, dtype, order="C")  # contiguous; 0-d stays 0-d


def _check_tree(node: Any, where: str = "obj") -> None:
    """TypeError for what `_tree.encode` stores but `torch.load(weights_only=True)` cannot read
    (a Generator, a frozenset), naming where in `obj` it is."""
    if not isinstance(node, dict):
        return
    tag = next(iter(node), None)
    if tag == "G":
        raise TypeError(
            f"jaxmodule.save: {where} is a jaxmodule.Generator, which torch's file format "
            "cannot hold; save `gen.get_state()` instead, or save to a path without a "
            ".pth/.pt/.bin suffix (a jaxmodule checkpoint directory)"
        )
    if tag == "FS":
        raise TypeError(
            f"jaxmodule.save: {where} is a frozenset, which torch.load(weights_only=True) "
            "refuses; use a set or a tuple, or save to a path without a .pth/.pt/.bin suffix"
        )
    if tag in ("D", "O"):
        for k, v in node[tag]:
            _check_tree(k, f"{where}[<key>]")
            _check_tree(v, f"{where}[{k!r}]" if not isinstance(k, dict) else f"{where}[...]")
        _check_tree(node.get("attrs"), f"{where}.__dict__")
    elif tag in ("L", "T", "S"):
        for i, v in enumerate(node[tag]):
            _check_tree(v, f"{where}[{i}]")


def prepare(obj: Any) -> TorchPlan:
    """Check `obj` and copy its arrays to host memory; raises before anything is written.

    Raises:
        TypeError: `obj` holds something torch's format cannot hold without torch's classes
            (a Module or optimizer: the message shows how to save its `state_dict()`; a
            Generator; an arbitrary Python object; an array of an unsupported dtype).
    """
    records: list[ArrayRecord] = []
    tree = encode(obj, records)
    _check_tree(tree)
    return TorchPlan(tree, [_host_array(r) for r in records])


class _Pickle:
    """Emits pickle protocol 2 opcodes for a `_tree` node (globals named by text, memoised)."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.out = io.BytesIO()
        self.arrays = arrays
        self.memo: dict[str, int] = {}

    def op(self, data: bytes) -> None:
        self.out.write(data)

    def global_(self, module: str, name: str) -> None:
        ref = f"{module}\n{name}\n"
        if ref in self.memo:
            i = self.memo[ref]
            self.op(b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i))
            return
        self.op(b"c" + ref.encode("ascii"))
        i = self.memo[ref] = len(self.memo)
        self.op(b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i))

    def call(self, module: str, name: str, *args: Any) -> None:
        """`module.name(*args)`; each arg is a callable emitting it."""
        self.global_(module, name)
        self.tuple_(args)
        self.op(b"R")  # REDUCE

    def tuple_(self, emitters: Any) -> None:
        emitters = list(emitters)
        if not emitters:
            self.op(b")")
            return
        if len(emitters) <= 3:
            for e in emitters:
                e()
            self.op({1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(emitters)])
            return
        self.op(b"(")
        for e in emitters:
            e()
        self.op(b"t")

    def str_(self, s: str) -> None:
        raw = s.encode("utf-8", "surrogatepass")
        self.op(b"X" + struct.pack("<I", len(raw)) + raw)

    def int_(self, x: int) -> None:
        if 0 <= x < 256:
            self.op(b"K" + bytes([x]))
        elif 0 <= x < 65536:
            self.op(b"M" + struct.pack("<H", x))
        elif -(2**31) <= x < 2**31:
            self.op(b"J" + struct.pack("<i", x))
        else:
            raw = x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True)
            self.op(
                (b"\x8a" + bytes([len(raw)]))
                if len(raw) < 256
                else (b"\x8b" + struct.pack("<i", len(raw)))
            )
            self.op(raw)

    def leaf(self, x: Any) -> None:
        if x is None:
            self.op(b"N")
        elif x is True or x is False:
            self.op(b"\x88" if x else b"\x89")
        elif isinstance(x, int):
            self.int_(x)
        elif isinstance(x, float):
            self.op(b"G" + struct.pack(">d", x))
        else:
            self.str_(x)

    def node(self, n: Any) -> None:
        if not isinstance(n, dict):
            self.leaf(n)
            return
        tag = next(iter(n))
        body = n[tag]
        if tag == "A":
            self.tensor(int(body))
        elif tag == "F":
            self.op(b"G" + struct.pack(">d", float(body)))
        elif tag in ("D", "O"):
            if tag == "D":
                self.op(b"}")
            else:
                self.call("collections", "OrderedDict")
            if body:
                self.op(b"(")
                for k, v in body:
                    self.node(k)
                    self.node(v)
                self.op(b"u")  # SETITEMS
            if n.get("attrs"):  # an OrderedDict's attributes (a state_dict's _metadata): BUILD
                self.node(n["attrs"])
                self.op(b"b")
        elif tag == "L":
            self.op(b"]")
            if body:
                self.op(b"(")
                for v in body:
                    self.node(v)
                self.op(b"e")  # APPENDS
        elif tag == "T":
            self.tuple_(lambda v=v: self.node(v) for v in body)
        elif tag in ("S", "FS"):
            self.call(
                "builtins", "set" if tag == "S" else "frozenset", lambda: self.node({"L": body})
            )
        elif tag == "C":
            self.call("builtins", "complex", lambda: self.node(body[0]), lambda: self.node(body[1]))
        elif tag == "B":
            text = base64.b64decode(body).decode("latin1")

            def encoded() -> (
                None
            ):  # protocol 2 writes bytes as _codecs.encode(latin-1 text, 'latin1')
                self.call("_codecs", "encode", lambda: self.str_(text), lambda: self.str_("latin1"))

            if n.get("ba"):
                self.call("builtins", "bytearray", encoded)
            else:
                encoded()
        else:  # pragma: no cover - prepare() refuses every other tag
            raise TypeError(f"jaxmodule.save: torch's format cannot hold a {tag!r} node")

    def tensor(self, i: int) -> None:
        arr = self.arrays[i]
        size = tuple(int(d) for d in arr.shape)
        stride = tuple(math.prod(size[j + 1 :]) for j in range(len(size)))
        v3 = arr.dtype in _UNTYPED

        def storage() -> None:
            self.tuple_(
                [
                    lambda: self.str_("storage"),
                    lambda: (
                        self.global_("torch.storage", "UntypedStorage")
                        if v3
                        else self.global_("torch", _STORAGE[arr.dtype])
                    ),
                    lambda: self.str_(str(i)),
                    lambda: self.str_("cpu"),
                    lambda: self.int_(arr.nbytes if v3 else arr.size),
                ]
            )
            self.op(b"Q")  # BINPERSID

        args = [
            storage,
            lambda: self.int_(0),
            lambda: self.tuple_(lambda d=d: self.int_(d) for d in size),
            lambda: self.tuple_(lambda s=s: self.int_(s) for s in stride),
            lambda: self.op(b"\x89"),
            lambda: self.call("collections", "OrderedDict"),
        ]
        if v3:
            args.append(lambda: self.global_("torch", _UNTYPED[arr.dtype]))
        self.call("torch._utils", "_rebuild_tensor_v3" if v3 else "_rebuild_tensor_v2", *args)

    def dumps(self, tree: Any) -> bytes:
        self.op(b"\x80\x02")
        self.node(tree)
        self.op(b".")
        return self.out.getvalue()


def _aligned_entry(zf: zipfile.ZipFile, name: str, size: int) -> zipfile.ZipInfo:
    """A stored (uncompressed) entry whose data starts on a 64-byte boundary, as torch aligns
    them (needed by `torch.load(mmap=True)`): padding in an extra field, as torch writes it."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    start = zf.fp.tell() + 30 + len(name.encode("utf-8")) + 4  # type: ignore[union-attr]
    if size * 1.05 > zipfile.ZIP64_LIMIT:
        start += 20  # zipfile appends a zip64 extra field to the local header
    pad = -start % _ALIGN
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    return info


def _write_entry(zf: zipfile.ZipFile, name: str, data: Any, size: int) -> None:
    with zf.open(_aligned_entry(zf, _PREFIX + name, size), "w") as w:
        w.write(data)


def write_torch_file(plan: TorchPlan, fh: IO[bytes]) -> None:
    """Write `plan` in torch's zip format to the binary, seekable file `fh`."""
    pkl = _Pickle(plan.arrays).dumps(plan.tree)
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        _write_entry(zf, "data.pkl", pkl, len(pkl))
        for name, text in (
            (".format_version", b"1"),
            (".storage_alignment", b"64"),
            ("byteorder", b"little"),
        ):
            _write_entry(zf, name, text, len(text))
        for i, arr in enumerate(plan.arrays):
            _write_entry(zf, f"data/{i}", arr.reshape(-1).view(np.uint8).data, arr.nbytes)
        _write_entry(zf, "version", b"3\n", 2)


def write_torch_file_at(plan: TorchPlan, path: Path) -> None:
    """Write `plan` into a new file at `path` and flush it to disk (fsync)."""
    with open(path, "xb") as fh:
        write_torch_file(plan, fh)
        fh.flush()
        os.fsync(fh.fileno())


def remove_stale_temp_files(final: Path) -> None:
    """Delete the temporary files `.{name}.jmtmp-<12 hex>` that killed torch-format saves of
    `final` left (call with the writer lock held: no live writer of `final` uses one). Only
    regular files named exactly so are removed; directories are `_atomic`'s business."""
    pattern = re.compile(re.escape(f".{final.name}") + r"\.jmtmp-[0-9a-f]{12}")
    for child in final.parent.iterdir():
        if pattern.fullmatch(child.name) and child.is_file() and not child.is_symlink():
            try:
                child.unlink()
            except OSError:
                pass
