"""Read `torch.save` files without torch: a restricted unpickler producing numpy arrays.

Both of torch's formats are read:

* zip (torch >= 1.6): `<archive>/data.pkl` is a pickle whose tensors refer, by persistent id
  `('storage', StorageType, key, location, numel)`, to raw little-endian storage bytes in
  `<archive>/data/<key>`;
* legacy: a stream of pickles (magic number, protocol version, sys info, the object, the list
  of storage keys) followed by each storage as an int64 element count and its bytes.

Tensors are rebuilt as `torch._utils._rebuild_tensor_v2` does: a view of the storage at
`storage_offset` with `size` and `stride` (in elements), copied into a contiguous array.

The pickle is read by the pure-Python unpickler with torch's weights-only rules: only the globals
that `torch.load(weights_only=True)` allows are resolved, and the BUILD opcode (which sets
attributes) applies only to the dicts the reader itself created, never to a function or class
(`setattr(_rebuild_tensor_v2, '__defaults__', ...)` would poison every later load). Anything
else raises `UnsafePickleError`, so no code from the file runs and nothing outside the file's own
objects changes.

Limits: a zip file's records are checked against their CRC-32 as they are read; the tensors of
one file may together take at most `MAX_EXPANSION` (64) times the file's size plus 1 MiB, so a
few bytes of stride-0 or overlapping views cannot expand into gigabytes. Every failure is a
RuntimeError naming the file.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import struct
import zipfile
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

__all__ = ["read_torch_file", "verify_zip", "ExpansionBudget", "UnsafePickleError", "MAX_EXPANSION"]

MAX_EXPANSION = 64
_EXPANSION_ALLOWANCE = 1 << 20

_DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "float": np.float32,
    "float64": np.float64,
    "double": np.float64,
    "float16": np.float16,
    "half": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "int64": np.int64,
    "long": np.int64,
    "int32": np.int32,
    "int": np.int32,
    "int16": np.int16,
    "short": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
    "complex64": np.complex64,
    "cfloat": np.complex64,
    "complex128": np.complex128,
    "cdouble": np.complex128,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "float8_e5m2": ml_dtypes.float8_e5m2,
    "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "float8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
}
_STORAGES: dict[str, Any] = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
    "UntypedStorage": np.uint8,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafePickleError(pickle.UnpicklingError, RuntimeError):
    """The file asks for what a weights-only reader refuses (a global, or state for an object
    the reader did not create). Both a `pickle.UnpicklingError` and a RuntimeError."""


class _Damaged(RuntimeError):
    """A damaged-file error whose message already names the file."""


class ExpansionBudget:
    """How many bytes the arrays read from one torch file may take together: `MAX_EXPANSION`
    times the file's size, plus 1 MiB."""

    def __init__(self, file_bytes: int, where: str) -> None:
        self.left = MAX_EXPANSION * max(int(file_bytes), 0) + _EXPANSION_ALLOWANCE
        self.file_bytes, self.where = file_bytes, where

    def take(self, nbytes: int, key: str) -> None:
        """Account for an array of `nbytes`; RuntimeError when it does not fit."""
        if nbytes > self.left:
            raise _Damaged(
                f"{self.where}: tensor {key!r} would expand to {nbytes} bytes, more than a file of "
                f"{self.file_bytes} bytes may expand to ({MAX_EXPANSION}x its size plus 1 MiB, in all); "
                "it is a stride-0 or overlapping view of a small storage; refusing to expand it"
            )
        self.left -= nbytes


class _StorageType:
    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)


class _Storage:
    """A storage whose bytes are filled in by the reader (at once for zip, later for legacy)."""

    def __init__(self, dtype: np.dtype, key: str) -> None:
        self.dtype, self.key = dtype, key
        self.data: np.ndarray | None = None


class _Tensor:
    """A tensor waiting for its storage bytes."""

    def __init__(
        self,
        storage: _Storage,
        offset: int,
        size: tuple,
        stride: tuple,
        dtype: np.dtype | None = None,
        metadata: Any = None,
    ) -> None:
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        self.dtype = dtype
        self.metadata = metadata or {}

    def materialize(self, where: str, budget: ExpansionBudget, key: str) -> np.ndarray:
        base = self.storage.data
        if base is None:
            raise _Damaged(f"{where}: storage {self.storage.key!r} has no data")
        if self.dtype is not None and self.dtype != base.dtype:
            base = base.view(self.dtype)
        if len(self.size) != len(self.stride) or any(n < 0 for n in self.size):
            raise _Damaged(
                f"{where}: tensor {key!r} has an invalid size {self.size} / stride {self.stride}"
            )
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, base.dtype)
        last = self.offset + sum((n - 1) * st for n, st in zip(self.size, self.stride))
        if self.offset < 0 or any(st < 0 for st in self.stride) or last >= base.size:
            raise _Damaged(
                f"{where}: tensor view (offset {self.offset}, size {self.size}, stride "
                f"{self.stride}) reaches past its storage of {base.size} elements; "
                "the file is truncated or damaged"
            )
        budget.take(math.prod(self.size) * base.dtype.itemsize, key)
        if not self.size:
            out = np.array(base[self.offset], copy=True).reshape(())
            return self._apply_bits(out)
        item = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset :], shape=self.size, strides=[st * item for st in self.stride]
        )
        return self._apply_bits(np.array(view, copy=True))

    def _apply_bits(self, out: np.ndarray) -> np.ndarray:
        # torch's lazy conjugate / negative bits (metadata of _rebuild_tensor_v2)
        if self.metadata.get("conj"):
            out = np.conj(out)
        if self.metadata.get("neg"):
            out = -out
        return out


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: int,
    size: tuple,
    stride: tuple,
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _Tensor:
    return _Tensor(storage, storage_offset, size, stride, metadata=metadata)


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: int,
    size: tuple,
    stride: tuple,
    requires_grad: bool,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> _Tensor:
    return _Tensor(storage, storage_offset, size, stride, np.dtype(dtype), metadata)


def _rebuild_tensor(storage: Any, storage_offset: int, size: tuple, stride: tuple) -> _Tensor:
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(
    data: Any, requires_grad: bool, backward_hooks: Any, state: Any = None
) -> Any:
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    return func(*args)


class _Marker:
    """Stands for torch.Tensor / torch.nn.Parameter classes named in a pickle."""


def _bytearray(*args: Any) -> bytearray:
    """bytearray from bytes or text only (`bytearray(10**12)` in a pickle would exhaust memory)."""
    if any(isinstance(a, int) for a in args):
        raise ValueError("refusing bytearray(<int>) from a pickle (it allocates that many bytes)")
    return bytearray(*args)


def _encode(obj: Any, encoding: str = "utf-8") -> bytes:
    """codecs.encode as pickles use it (text -> bytes); other codecs are refused."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "ascii"):
        raise ValueError(f"refusing codecs.encode with codec {encoding!r:.40} from a pickle")
    return codecs.encode(obj, encoding)


def _device(spec: str, index: Any = None) -> str:
    return spec if index is None else f"{spec}:{index}"


def _allowed(module: str, name: str) -> Any:
    table: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("collections", "Counter"): Counter,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch.nn.parameter", "Parameter"): _Marker,
        ("torch", "Tensor"): _Marker,
        ("torch", "Size"): tuple,
        ("torch", "device"): _device,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): _bytearray,
        ("_codecs", "encode"): _encode,
    }
    if (module, name) in table:
        return table[(module, name)]
    if module in ("torch", "torch.storage") and name in _STORAGES:
        return _StorageType(_STORAGES[name])
    if module == "torch" and name in _DTYPES:
        return np.dtype(_DTYPES[name])
    return None


def _describe(x: Any) -> str:
    if isinstance(x, type) or callable(x):
        return f"{getattr(x, '__module__', '?')}.{getattr(x, '__qualname__', type(x).__name__)}"
    return f"an object of type {type(x).__name__}"


class _Unpickler(pickle._Unpickler):
    """The pure-Python unpickler with torch's weights-only rules for globals and BUILD."""

    dispatch = dict(pickle._Unpickler.dispatch)
    stack: list[Any]  # pickle._Unpickler's working stack (typeshed does not list it)

    def __init__(self, fh: Any, storage_for: Any, where: str) -> None:
        super().__init__(fh)
        self._storage_for = storage_for
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed(module, name)
        if found is None:
            raise UnsafePickleError(
                f"{self._where}: refusing to load global {module}.{name} (only tensors, containers and "
                "plain Python values are read, as torch.load(weights_only=True) does)"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) < 3 or pid[0] != "storage":
            raise _Damaged(f"{self._where}: unknown persistent id {pid!r:.80}")
        storage_type, key = pid[1], str(pid[2])
        if isinstance(storage_type, _StorageType):
            dtype = storage_type.dtype
        elif isinstance(storage_type, np.dtype):
            dtype = storage_type
        else:
            raise _Damaged(f"{self._where}: storage {key!r} has no storage type")
        return self._storage_for(key, dtype)

    def _build(self) -> None:
        """BUILD: attributes only for the OrderedDicts and Counters this reader created."""
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) not in (OrderedDict, Counter):
            raise UnsafePickleError(
                f"{self._where}: refusing BUILD on {_describe(inst)}: state may only be set on the "
                "dicts the file itself creates, as torch.load(weights_only=True) does"
            )
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and not k.startswith("__") for k in state
        ):
            raise UnsafePickleError(
                f"{self._where}: refusing BUILD on {type(inst).__name__} with state "
                f"of type {type(state).__name__} (attribute names only)"
            )
        inst.__dict__.update(state)

    dispatch[pickle.BUILD[0]] = _build  # type: ignore[assignment]  # typeshed types handlers for the base class only


def _finish(obj: Any, where: str, budget: ExpansionBudget, parts: tuple = ()) -> Any:
    """Replace every pending `_Tensor` in `obj` by its numpy array."""
    if isinstance(obj, _Tensor):
        return obj.materialize(where, budget, "/".join(str(p) for p in parts))
    if isinstance(obj, OrderedDict):
        out = OrderedDict((k, _finish(v, where, budget, (*parts, k))) for k, v in obj.items())
        for name, value in getattr(obj, "__dict__", {}).items():
            setattr(out, name, _finish(value, where, budget, (*parts, name)))
        return out
    if isinstance(obj, dict):
        return {k: _finish(v, where, budget, (*parts, k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finish(v, where, budget, (*parts, i)) for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(_finish(v, where, budget, (*parts, i)) for i, v in enumerate(obj))
    return obj


def _read_zip(path: Path, where: str, budget: ExpansionBudget) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise _Damaged(f"{where}: zip archive without a data.pkl record; not a torch.save file")
        prefix = pkl[0][: -len("data.pkl")]
        big = prefix + "byteorder" in names and zf.read(prefix + "byteorder").strip() == b"big"
        storages: dict[str, _Storage] = {}

        def storage_for(key: str, dtype: np.dtype) -> _Storage:
            if key not in storages:
                s = _Storage(dtype, key)
                try:
                    raw = zf.read(f"{prefix}data/{key}")
                except KeyError:
                    raise _Damaged(
                        f"{where}: storage record data/{key} is missing; the file is "
                        "truncated or damaged"
                    ) from None
                if len(raw) % dtype.itemsize:
                    raise _Damaged(
                        f"{where}: storage data/{key} has {len(raw)} bytes, not a whole "
                        f"number of {dtype} elements"
                    )
                arr = np.frombuffer(
                    raw, dtype.newbyteorder(">") if big and dtype.itemsize > 1 else dtype
                )
                s.data = arr.astype(dtype) if big else arr
                storages[key] = s
            return storages[key]

        obj = _Unpickler(io.BytesIO(zf.read(pkl[0])), storage_for, where).load()
    return _finish(obj, where, budget)


def _read_legacy(path: Path, where: str, budget: ExpansionBudget) -> Any:
    with open(path, "rb") as fh:

        def nothing(key: str, dtype: np.dtype) -> Any:
            raise _Damaged(f"{where}: storage reference in the header")

        magic = _Unpickler(fh, nothing, where).load()
        if magic != _LEGACY_MAGIC:
            raise _Damaged(
                f"{where}: a pickle file that is not a torch.save file (wrong magic number)"
            )
        _Unpickler(fh, nothing, where).load()  # protocol version
        _Unpickler(fh, nothing, where).load()  # sys info
        storages: dict[str, _Storage] = {}

        def storage_for(key: str, dtype: np.dtype) -> _Storage:
            return storages.setdefault(key, _Storage(dtype, key))

        obj = _Unpickler(fh, storage_for, where).load()
        keys = _Unpickler(fh, nothing, where).load()
        if not isinstance(keys, list):
            raise _Damaged(f"{where}: the storage key list is missing")
        for key in keys:
            if str(key) not in storages:
                raise _Damaged(f"{where}: storage {key!r} is listed but never used")
            s = storages[str(key)]
            head = fh.read(8)
            if len(head) != 8:
                raise _Damaged(f"{where}: the file ends before storage {key!r}; it is truncated")
            (numel,) = struct.unpack("<q", head)
            if numel < 0:
                raise _Damaged(f"{where}: storage {key!r} has a negative size")
            raw = fh.read(numel * s.dtype.itemsize)
            if len(raw) != numel * s.dtype.itemsize:
                raise _Damaged(f"{where}: the file ends inside storage {key!r}; it is truncated")
            s.data = np.frombuffer(raw, s.dtype)
    return _finish(obj, where, budget)


def verify_zip(path: Path, where: str) -> None:
    """RuntimeError unless every record of the zip archive at `path` passes its CRC-32 check
    (torch's own reader does not check them)."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except Exception as e:  # noqa: BLE001 - zipfile, zlib and OSError all mean the same here
        raise RuntimeError(
            f"{where} is truncated or damaged: {type(e).__name__}: {str(e)[:300]}"
        ) from None
    if bad is not None:
        raise RuntimeError(f"{where} is damaged: its record {bad} fails its CRC-32 check")


def read_torch_file(path: str | Path) -> Any:
    """The object in a `torch.save` file, with tensors as numpy arrays (no torch needed).

    Raises:
        UnsafePickleError: the file holds what a weights-only reader refuses.
        RuntimeError: the file is truncated, damaged, or expands too far (the message names it).
    """
    path = Path(path)
    where = f"torch file {path}"
    budget = ExpansionBudget(os.path.getsize(path), where)
    with open(path, "rb") as fh:
        head = fh.read(4)
    try:
        if head == b"PK\x03\x04":
            return _read_zip(path, where, budget)
        if head[:1] == b"\x80":
            return _read_legacy(path, where, budget)
    except (UnsafePickleError, _Damaged):
        raise
    except RecursionError:
        raise RuntimeError(f"{where} is damaged: its objects are nested too deeply") from None
    except Exception as e:  # noqa: BLE001 - a malformed pickle fails in many ways; all mean damage
        raise RuntimeError(
            f"{where} is truncated or damaged: {type(e).__name__}: {str(e)[:300]}"
        ) from None
    raise RuntimeError(f"{where} is neither torch's zip format nor its legacy pickle format")
