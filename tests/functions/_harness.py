"""Differential-test harness for torch's tensor functions and methods.

A test file lists cases, one row per call: `C("sum", x, dim=(0, -1), keepdim=True)` calls
`jaxmodule.sum` and `torch.sum` on the same data and compares values and dtypes; `M(...)` does the
same for `jaxmodule.Tensor.<name>` / `torch.Tensor.<name>` and for the method on a Parameter.
Adding a function means adding a row.

Inputs are numpy arrays (each side gets its own copy), Python numbers, numpy dtype classes
(`np.float32` becomes `torch.float32` on the torch side) and lists/tuples of those.

Dtype policy: JAX's 64-bit mode is off, so torch's int64 results are expected as int32 and
int64 inputs reach jaxmodule as int32 (documented in jaxmodule/_functions/__init__.py).
Tolerances: float32 values to rtol=1e-5, atol=1e-6 (atol only matters near zero); integers and
bools exactly; NaN must be NaN on both sides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

RTOL, ATOL = 1e-5, 1e-6
_X64_OFF = {"int64": "int32", "float64": "float32", "complex128": "complex64", "uint64": "uint32"}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return rng(seed).standard_normal(shape).astype(np.float32)


def randint(low: int, high: int, *shape: int, seed: int = 0, dtype: Any = np.int64) -> np.ndarray:
    return rng(seed).integers(low, high, shape).astype(dtype)


@dataclasses.dataclass
class Case:
    name: str
    args: tuple
    kwargs: dict
    method: bool = False
    jit: bool = True
    fn: Callable | None = None  # jaxmodule side, when not jaxmodule.<name> / Tensor.<name>
    tfn: Callable | None = None  # torch side, when not torch.<name> / torch.Tensor.<name>

    def jax_fn(self) -> Callable:
        if self.fn is not None:
            return self.fn
        return (
            getattr(jaxmodule.Tensor, self.name) if self.method else getattr(jaxmodule, self.name)
        )

    def torch_fn(self) -> Callable:
        if self.tfn is not None:
            return self.tfn
        return getattr(torch.Tensor, self.name) if self.method else getattr(torch, self.name)


def _id(name: str, args: tuple, kwargs: dict) -> str:
    def short(v: Any) -> str:
        if isinstance(v, np.ndarray):
            return f"{v.dtype.name}{list(v.shape)}".replace(" ", "")
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(short(e) for e in v) + "]"
        if isinstance(v, type):
            return v.__name__
        return repr(v)

    parts = [short(a) for a in args] + [f"{k}={short(v)}" for k, v in kwargs.items()]
    return f"{name}(" + ",".join(parts) + ")"


def C(
    name: str,
    *args: Any,
    jit: bool = True,
    fn: Callable | None = None,
    tfn: Callable | None = None,
    id: str | None = None,
    **kwargs: Any,
) -> Any:
    """A function case: jaxmodule.<name>(*args, **kwargs) against torch.<name>(...)."""
    return pytest.param(
        Case(name, args, kwargs, False, jit, fn, tfn), id=id or _id(name, args, kwargs)
    )


def M(name: str, *args: Any, jit: bool = True, id: str | None = None, **kwargs: Any) -> Any:
    """A method case: jaxmodule.Tensor.<name>(x, ...) against torch.Tensor.<name>(t, ...)."""
    return pytest.param(
        Case(name, args, kwargs, True, jit), id=id or "Tensor." + _id(name, args, kwargs)
    )


# ---- conversion ----------------------------------------------------------------------------
def _is_dtype_class(v: Any) -> bool:
    return isinstance(v, type) and issubclass(v, np.generic)


def to_jax(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return jnp.asarray(v.astype(_X64_OFF.get(v.dtype.name, v.dtype.name)))
    if isinstance(v, list):
        return [to_jax(e) for e in v]
    if isinstance(v, tuple):
        return tuple(to_jax(e) for e in v)
    if isinstance(v, dict):
        return {k: to_jax(e) for k, e in v.items()}
    return v


def to_torch(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return torch.from_numpy(v.copy())
    if _is_dtype_class(v):
        return getattr(torch, np.dtype(v).name)
    if isinstance(v, list):
        return [to_torch(e) for e in v]
    if isinstance(v, tuple):
        return tuple(to_torch(e) for e in v)
    if isinstance(v, dict):
        return {k: to_torch(e) for k, e in v.items()}
    return v


# ---- comparison ----------------------------------------------------------------------------
def expected_dtype(t: torch.Tensor) -> str:
    name = str(t.dtype).replace("torch.", "")
    return _X64_OFF.get(name, name)


def assert_same(got: Any, want: Any, where: str = "result") -> None:
    """Values and dtypes of `got` (jaxmodule) equal `want` (torch), recursively."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, jax.Array), (
            f"{where}: expected a jax array, got {type(got).__name__}"
        )
        assert got.shape == tuple(want.shape), f"{where}: shape {got.shape} != {tuple(want.shape)}"
        assert str(got.dtype) == expected_dtype(want), (
            f"{where}: dtype {got.dtype} != torch {want.dtype}"
        )
        w = want.detach().float().numpy() if want.dtype == torch.bfloat16 else want.detach().numpy()
        g = np.asarray(got.astype(jnp.float32) if got.dtype == jnp.bfloat16 else got)
        if w.dtype.kind in "fc":
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=where)
        else:
            np.testing.assert_array_equal(g, w, err_msg=where)
        return
    if isinstance(want, np.ndarray):  # Tensor.numpy()
        assert isinstance(got, np.ndarray), (
            f"{where}: expected a numpy array, got {type(got).__name__}"
        )
        assert got.dtype.name == _X64_OFF.get(want.dtype.name, want.dtype.name), (
            f"{where}: dtype {got.dtype}"
        )
        np.testing.assert_array_equal(got, want, err_msg=where)
        return
    if isinstance(want, torch.Size):
        assert isinstance(got, tuple) and tuple(got) == tuple(want), f"{where}: {got} != {want}"
        return
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)), (
            f"{where}: expected a sequence, got {type(got).__name__}"
        )
        if type(want).__module__ == "torch.return_types":
            assert type(got).__name__ == type(want).__name__, (
                f"{where}: {type(got).__name__} result type"
            )
            assert got._fields == ("values", "indices") or type(want).__name__ == "aminmax", where
        assert len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
        return
    if isinstance(want, (bool, int, float)):
        assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
        assert got == want or (want != want and got != got), f"{where}: {got} != {want}"
        return
    raise AssertionError(f"{where}: unsupported torch result {type(want).__name__}")


def jit_call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    """fn(*args, **kwargs) under one jax.jit, traced over the array leaves only."""
    return _jit_over_arrays(lambda a, k: fn(*a, **k), (args, kwargs))


def _jit_over_arrays(fn: Callable, data: Any) -> Any:
    leaves, tree = jax.tree.flatten(data)
    is_arr = [isinstance(v, jax.Array) for v in leaves]

    def call(*arrays: jax.Array) -> Any:
        it = iter(arrays)
        return fn(*jax.tree.unflatten(tree, [next(it) if m else v for v, m in zip(leaves, is_arr)]))

    return jax.jit(call)(*[v for v, m in zip(leaves, is_arr) if m])


def as_cell(x: jax.Array) -> Any:
    """A Parameter (floating) or Buffer (others) holding x."""
    return nn.Parameter(x) if jnp.issubdtype(x.dtype, jnp.floating) else nn.Buffer(x)


def _calls(case: Case, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The jaxmodule results of one case: the function or method, and the method on a cell."""
    out = {"call": case.jax_fn()(*args, **kwargs)}
    if case.method:
        cell = as_cell(args[0])
        out[type(cell).__name__] = getattr(cell, case.name)(*args[1:], **kwargs)
    elif args and isinstance(args[0], jax.Array):  # the function given a Parameter/Buffer
        out["cell argument"] = case.jax_fn()(as_cell(args[0]), *args[1:], **kwargs)
    return out


_BATCHES: dict[int, dict[int, Any]] = {}


def _batched(table: list) -> dict[int, Any]:
    """Every jittable case of a table traced in ONE jax.jit (one compile per test file, not per
    case); a case that raises while tracing records its exception instead."""
    if id(table) not in _BATCHES:
        cases = [p.values[0] for p in table if p.values[0].jit]

        def run(*datas: Any) -> list:
            out = []
            for case, (a, k) in zip(cases, datas):
                try:
                    out.append(_calls(case, a, k))
                except Exception as e:  # reported by the case's own test
                    _BATCHES.setdefault(-id(table), {})[id(case)] = e
                    out.append(None)
            return out

        results = _jit_over_arrays(run, [(to_jax(c.args), to_jax(c.kwargs)) for c in cases])
        errors = _BATCHES.pop(-id(table), {})
        _BATCHES[id(table)] = {id(c): errors.get(id(c), r) for c, r in zip(cases, results)}
    return _BATCHES[id(table)]


_EAGER_SEEN: set = set()


def check(case: Case, table: list) -> None:
    """Compare one case with torch: under jax.jit (batched with its table) when marked, and
    eagerly when not jittable or the first case of its name (eager and traced runs share all
    code, and a method is its function; running every case eagerly would compile each small op
    separately, several times slower)."""
    want = case.torch_fn()(*to_torch(case.args), **to_torch(case.kwargs))
    if not case.jit or case.name not in _EAGER_SEEN:  # a method shares the function's code
        _EAGER_SEEN.add(case.name)
        for how, got in _calls(case, to_jax(case.args), to_jax(case.kwargs)).items():
            assert_same(got, want, f"eager {how}")
    if case.jit:
        got = _batched(table)[id(case)]
        if isinstance(got, Exception):
            raise got
        for how, value in got.items():
            assert_same(value, want, f"jit {how}")


@dataclasses.dataclass
class ErrorCase:
    name: str
    args: tuple
    kwargs: dict
    exc: type
    match: str
    method: bool = False


def E(name: str, *args: Any, exc: type, match: str, method: bool = False, **kwargs: Any) -> Any:
    """An error case: torch and jaxmodule both raise `exc`; jaxmodule's message matches `match`."""
    return pytest.param(
        ErrorCase(name, args, kwargs, exc, match, method),
        id=("Tensor." if method else "") + _id(name, args, kwargs),
    )


def check_error(case: ErrorCase) -> None:
    owner_t, owner_j = (torch.Tensor, jaxmodule.Tensor) if case.method else (torch, jaxmodule)
    with pytest.raises(case.exc):
        getattr(owner_t, case.name)(*to_torch(case.args), **to_torch(case.kwargs))
    with pytest.raises(case.exc, match=case.match):
        getattr(owner_j, case.name)(*to_jax(case.args), **to_jax(case.kwargs))
