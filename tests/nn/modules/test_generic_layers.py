"""Generic checks over every layer of `jaxmodule.nn`, driven by the registry in `module_cases.py`.

For each case the torch layer is built with the same arguments, its parameters and running
statistics are perturbed (so that 1/0 initializations cannot hide a swapped weight and bias), and
its state_dict is loaded into the jaxmodule layer. Then, all against torch 2.13:

1. state_dict keys (in order), shapes and dtypes; repr text; train()/eval() flags.
2. eager forward (train mode, and eval mode after it) and the state after a train-mode forward
   (BatchNorm's running statistics, Embedding's max_norm renormalization).
3. gradients w.r.t. the floating inputs and every parameter of `sum(out * ct)` (a fixed random
   cotangent `ct`), with `jaxmodule.grad` under `jax.jit`. The same program checks `jax.jit`:
   its outputs, and the state of the module it returns.
4. `jaxmodule.compile` where it matters beyond `Module.compile` (same machinery): stateful layers
   (outputs and the state written back) and random ones (the generator threaded through).
5. `jax.vmap` (see `Case.vmap`), run under `jax.jit`: one compilation instead of one per batched
   primitive keeps the file fast, and vmap's semantics are the same.
6. `Module.compile`: outputs, state written back, and a retrace after `eval()` (stateful layers).

Layers that are random in train mode (dropout with p > 0) are compared exactly in eval mode and by
shape and dtype in train mode. The checks of one case run in one test and all run even when one
fails: the failure message lists every failed check by name. `JM_TIMING=1 pytest -s` prints each
check's duration and the traceback of each failure.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import to_numpy
from tests.nn.modules.module_cases import CASES, EXCLUDED, Arr, Case, cases_for, make_inputs


def _layer_names(ns: Any) -> set[str]:
    return {
        n
        for n in dir(ns)
        if isinstance(getattr(ns, n), type) and issubclass(getattr(ns, n), ns.Module)
    }


TIMING = os.environ.get("JM_TIMING")
SHARED = _layer_names(nn) & _layer_names(torch.nn)
ACTIVE = cases_for(SHARED)


def test_registry_covers_every_layer_shared_with_torch():
    covered = {c.cls for c in CASES}
    missing = sorted(n for n in SHARED if n not in covered and n not in EXCLUDED)
    assert not missing, f"layers of jaxmodule.nn without a case in module_cases.py: {missing}"


# ---- conversions ---------------------------------------------------------------------------------
def _is_arr(x: Any) -> bool:
    return isinstance(x, Arr)


def _tmap(fn: Any, tree: Any) -> Any:
    return jax.tree_util.tree_map(fn, tree, is_leaf=_is_arr)


def _differentiable(x: Any) -> bool:
    leaves = jax.tree_util.tree_leaves(x, is_leaf=_is_arr)
    return bool(leaves) and all(
        a.grad and np.issubdtype(a.value.dtype, np.floating) for a in leaves
    )


def _to_torch(xs: Any, grad: bool) -> Any:
    def conv(a: Arr) -> torch.Tensor:
        t = torch.from_numpy(np.array(a.value))
        return t.requires_grad_(True) if grad and a.grad and t.is_floating_point() else t

    return _tmap(conv, xs)


def _to_jax(xs: Any) -> Any:
    return _tmap(lambda a: jnp.asarray(a.value), xs)


def _kw(kwargs: dict, arr: Any) -> dict:
    return {k: arr(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


def _torch_leaves(out: Any) -> list:
    if out is None:
        return []
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _torch_leaves(o)]
    raise TypeError(f"unexpected torch output {type(out).__name__}")


def _build(case: Case, lib: Any, arr: Any) -> Any:
    if case.build is not None:
        return case.build(lib, arr)
    args = [arr(a) if isinstance(a, np.ndarray) else a for a in case.args]
    return getattr(lib, case.cls)(*args, **_kw(case.kwargs, arr))


def _perturb(t: torch.nn.Module, seed: int) -> None:
    """Move every parameter off its initial value and give the running statistics values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for name, b in t.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


# ---- comparisons ---------------------------------------------------------------------------------
def _kind(dtype: Any) -> str:
    """Integer widths are not compared: jaxmodule runs with 32-bit integers (jax_enable_x64 off)
    where torch uses int64 (indices, num_batches_tracked)."""
    dtype = np.dtype(dtype)
    return "int" if np.issubdtype(dtype, np.integer) else dtype.name


def _np(x: Any) -> np.ndarray:
    return to_numpy(x)


def _compare(got: list, want: list, case: Case, what: str, values: bool = True) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} arrays, torch gives {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = _np(g), _np(w)
        assert g.shape == w.shape, f"{what}[{k}]: shape {g.shape}, torch {w.shape}"
        assert _kind(g.dtype) == _kind(w.dtype), f"{what}[{k}]: dtype {g.dtype}, torch {w.dtype}"
        if not values:
            continue
        if np.issubdtype(g.dtype, np.floating):
            np.testing.assert_allclose(g, w, rtol=case.rtol, atol=case.atol, err_msg=f"{what}[{k}]")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{what}[{k}]")


def _compare_state(got: dict, want: dict, case: Case, what: str) -> None:
    assert list(got) == list(want), f"{what}: keys {list(got)}, torch {list(want)}"
    for k in want:
        _compare([got[k]], [want[k]], case, f"{what} {k!r}")


def _sd_signature(sd: dict) -> list:
    return [(k, tuple(v.shape), _kind(_np(v).dtype)) for k, v in sd.items()]


class _Checks:
    """Soft checks: each runs even when an earlier one failed; `finish` reports them all."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.failures: list[str] = []

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        except Exception as e:  # noqa: BLE001 - every failure is reported by check name
            lines = [ln for ln in f"{type(e).__name__}: {e}".splitlines() if ln.strip()]
            self.failures.append(f"[{name}] " + "\n    ".join(lines[:14]))
            if TIMING:
                traceback.print_exc()
        finally:
            if TIMING:
                print(f"TIMING {time.perf_counter() - t0:7.3f} {name}")

    def finish(self) -> None:
        if self.failures:
            head = f"{self.case.id}: {len(self.failures)} check(s) failed\n"
            pytest.fail(head + "\n".join(self.failures), pytrace=False)


# ---- the checks ---------------------------------------------------------------------------------
def _leaves(out: Any) -> list:
    return jax.tree_util.tree_leaves(out)


def _vjp_loss(out: Any, cts: list) -> Any:
    """sum(out * ct) over the floating outputs. A fixed random cotangent rather than sum(out**2):
    normalization layers make sum(out**2) nearly constant, leaving only rounding noise to compare."""
    total = jnp.zeros((), jnp.float32)
    for o, ct in zip([o for o in _leaves(out) if jnp.issubdtype(o.dtype, jnp.floating)], cts):
        total = total + (o.astype(jnp.float32) * ct).sum()
    return total


@pytest.mark.parametrize("case", ACTIVE, ids=[c.id for c in ACTIVE])
def test_layer(case: Case) -> None:
    check = _Checks(case)
    seed = zlib.crc32(case.id.encode())
    xs = make_inputs(case.inputs, np.random.default_rng(seed))
    t_kw, j_kw = _kw(case.fwd_kwargs, torch.from_numpy), _kw(case.fwd_kwargs, jnp.asarray)
    t = _build(case, torch.nn, torch.from_numpy)
    m = _build(case, nn, jnp.asarray)
    jxs = _to_jax(xs)
    pre_t = (lambda a: case.pre(torch.nn.functional, a)) if case.pre else (lambda a: a)
    pre_j = (lambda a: case.pre(nn.functional, a)) if case.pre else (lambda a: a)

    def t_call(*a: Any) -> list:
        # clones: an inplace layer may not write into a leaf tensor that requires grad
        a = jax.tree_util.tree_map(lambda v: v.clone(), a)
        return _torch_leaves(t(*pre_t(a), **t_kw))

    def j_call(mod: Any, *a: Any) -> Any:
        return mod(*pre_j(a), **j_kw)

    if case.lazy:  # materialize both with one forward
        with torch.no_grad():
            t_call(*_to_torch(xs, grad=False))
        j_call(m, *jxs)
    _perturb(t, seed)

    # 1. state_dict, repr, modes
    with check("state_dict keys, shapes, dtypes"):
        assert _sd_signature(m.state_dict()) == _sd_signature(t.state_dict())
    try:
        m.load_state_dict(t.state_dict())
    except Exception as e:  # nothing below can be compared
        check.failures.append(f"[load_state_dict] {type(e).__name__}: {e}")
        check.finish()
    with check("repr"):
        want = repr(t)
        for a, b in case.repr_subs:
            want = want.replace(a, b)
        assert repr(m) == want, f"\n{m!r}\n  torch:\n{want}"
    with check("train()/eval()"):
        assert m.eval() is m and [x.training for x in m.modules()] == [
            x.training for x in t.eval().modules()
        ]
        assert m.train() is m and [x.training for x in m.modules()] == [
            x.training for x in t.train().modules()
        ]
    if not case.forward:
        check.finish()
        return

    # torch reference: a train-mode forward (eval when train mode is random) with autograd, then
    # an eval-mode forward from the state the first one left
    ref_train = not case.random_train
    diff = [k for k, x in enumerate(xs) if _differentiable(x)]
    t_sd0 = {k: v.detach().clone() for k, v in t.state_dict().items()}
    t.train(ref_train)
    txs = _to_torch(xs, grad=True)
    t_res = t_call(*txs)
    t_out = [o.detach().clone() for o in t_res]
    t_sd1 = {k: v.detach().clone() for k, v in t.state_dict().items()}
    t_float = [o for o in t_res if o.is_floating_point()]
    ct_rng = np.random.default_rng(seed + 2)
    cts = [ct_rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in t_float]
    has_grad = any(o.requires_grad for o in t_float)
    if has_grad:
        sum((o.float() * torch.from_numpy(ct)).sum() for o, ct in zip(t_float, cts)).backward()
    t_pgrads = {n: p.grad for n, p in t.named_parameters()}
    t_xgrads = [leaf.grad for k in diff for leaf in _torch_leaves(txs[k])]
    stateful = any(not torch.equal(t_sd0[k], t_sd1[k]) for k in t_sd0)
    t.eval()
    with torch.no_grad():
        t_eval = t_call(*_to_torch(xs, grad=False))
        if case.random_train:
            t_random = t.train()(*_to_torch(xs, grad=False), **t_kw)
            t_random = _torch_leaves(t_random)
    j_cts = [jnp.asarray(ct) for ct in cts]
    # jaxmodule.compile donates the arrays it replaces: restore from torch's copies
    sd0 = t_sd0

    # 2. eager
    with check("eager forward"):
        m.train(ref_train)
        _compare(_leaves(j_call(m, *jxs)), t_out, case, "output")
    with check("eager: state after forward"):
        _compare_state(m.state_dict(), t_sd1, case, "state")
    with check("eager forward, eval mode"):
        m.load_state_dict(t_sd1)
        m.eval()
        _compare(_leaves(j_call(m, *jxs)), t_eval, case, "eval output")
    if case.lazy:  # the materialized class has its own cases for the transforms
        check.finish()
        return
    if case.random_train:
        # plain jax.jit refuses to draw from the global generator by design; jaxmodule.compile
        # threads it through the program
        with check("eager forward, train mode (random: shape and dtype)"):
            m.train()
            _compare(_leaves(j_call(m, *jxs)), t_random, case, "train output", values=False)
        with check("jaxmodule.compile, train mode (random: shape and dtype)"):
            out = jaxmodule.compile(j_call)(m, *jxs)
            _compare(_leaves(out), t_random, case, "train output", values=False)

    # 3. jax.jit + jaxmodule.grad: one program, which also returns the module (its state)
    argnums = (0, *(k + 1 for k in diff))

    def loss_fn(mod: Any, *a: Any) -> Any:
        out = j_call(mod, *a)
        return _vjp_loss(out, j_cts), out

    m.load_state_dict(sd0)
    m.train(ref_train)
    result = None
    with check("jax.jit(jaxmodule.grad)" if has_grad else "jax.jit"):
        try:
            if has_grad:
                step = jax.jit(
                    lambda mod, *a: (jaxmodule.grad(loss_fn, argnums, has_aux=True)(mod, *a), mod)
                )
                result = step(m, *jxs)
            else:
                out, m2 = jax.jit(lambda mod, *a: (j_call(mod, *a), mod))(m, *jxs)
                result = ((None,), out), m2
        except Exception:
            # isolate: does the plain jitted forward fail too? (then that error is reported)
            jax.jit(j_call)(m, *jxs)
            raise
    if result is not None:
        (grads, out), m2 = result
        with check("jax.jit output"):
            _compare(_leaves(out), t_out, case, "jit output")
        with check("jax.jit: state of the returned module"):
            _compare_state(m2.state_dict(), t_sd1, case, "jit state")
        if has_grad:
            with check("grad w.r.t. parameters"):
                got = dict(grads[0].named_parameters())
                assert list(got) == list(t_pgrads), (
                    f"grad names {list(got)}, torch {list(t_pgrads)}"
                )
                for n, tg in t_pgrads.items():
                    want = np.zeros(tuple(got[n].shape), np.float32) if tg is None else tg
                    _compare([got[n]], [want], case, f"grad {n!r}")
            with check("grad w.r.t. inputs"):
                got = [leaf for g in grads[1:] for leaf in _leaves(g)]
                assert len(got) == len(t_xgrads), (
                    f"{len(got)} input gradients, torch {len(t_xgrads)}"
                )
                want = [
                    np.zeros(tuple(g.shape), np.float32) if w is None else w
                    for g, w in zip(got, t_xgrads)
                ]
                _compare(got, want, case, "input grad")

    # 4. jaxmodule.compile: where it writes state back (Module.compile below runs the same
    # machinery for every case)
    if stateful:
        with check("jaxmodule.compile"):
            m.load_state_dict(sd0)
            m.train(ref_train)
            out = jaxmodule.compile(j_call)(m, *jxs)
            _compare(_leaves(out), t_out, case, "compiled output")
            _compare_state(m.state_dict(), t_sd1, case, "state written back")

    # 5. jax.vmap; stateful layers in eval mode (a train-mode buffer update inside vmap would
    # store a batched value)
    if case.vmap:
        with check(f"jax.vmap ({case.vmap})"):
            m.load_state_dict(sd0)
            m.train(ref_train and not stateful)
            vf = jax.jit(jax.vmap(lambda *a: j_call(m, *a)))
            if case.vmap == "example":
                want = _leaves(j_call(m, *jxs))
                got = _leaves(vf(*jxs))
            else:
                jxs2 = _to_jax(make_inputs(case.inputs, np.random.default_rng(seed + 1)))
                r1, r2 = _leaves(j_call(m, *jxs)), _leaves(j_call(m, *jxs2))
                want = [jnp.stack([a, b]) for a, b in zip(r1, r2)]
                got = _leaves(
                    vf(*jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), jxs, jxs2))
                )
            _compare(got, want, case, "vmap output")

    # 6. Module.compile (last: the layer stays compiled), then eval() retraces
    with check("Module.compile"):
        m.load_state_dict(sd0)
        m.train(ref_train)
        m.compile()
        _compare(_leaves(j_call(m, *jxs)), t_out, case, "compiled output")
        _compare_state(m.state_dict(), t_sd1, case, "state written back")
    if stateful:
        with check("Module.compile, then eval()"):
            m.load_state_dict(t_sd1)
            m.eval()
            _compare(_leaves(j_call(m, *jxs)), t_eval, case, "compiled eval output")
    check.finish()
