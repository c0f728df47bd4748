"""The eager jit cache (`jaxmodule/nn/modules/_eager.py`) gives what the plain eager forward gives.

Every layer case of the registry (`module_cases.py`) whose class is registered runs with the cache
on and off (train and eval mode, outputs and gradients); then the rules: hooks, state-writing
modes, subclasses with their own forward, traces, structural changes, autocast, no leak.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
import zlib
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
from jaxmodule import nn
from jaxmodule.nn.modules import _eager

from tests.helpers import assert_close
from tests.nn.modules.module_cases import CASES, Case, make_inputs
from tests.nn.modules.test_generic_layers import _build, _differentiable, _kw, _to_jax


class _Spy:
    """Counts calls of the cached program (wraps `_eager._JITTED`)."""

    def __init__(self, jitted: Any) -> None:
        self.jitted, self.calls = jitted, 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.jitted(*args)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Spy]:
    s = _Spy(_eager._JITTED)
    monkeypatch.setattr(_eager, "_JITTED", s)
    previous = _eager.set_eager_jit(True)
    yield s
    _eager.set_eager_jit(previous)


def isolated_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Spy]:
    """A `_Spy` on the cached program, with the eager cache on and every registry and verdict
    `_eager` keeps copied for the test: what a test declares, classifies or refuses stays in it."""
    s = _Spy(_eager._JITTED)
    monkeypatch.setattr(_eager, "_JITTED", s)
    for name in ("RULES", "GUARDS", "REJECTED", "DRAWS", "_FAILURES"):
        monkeypatch.setattr(_eager, name, dict(getattr(_eager, name)))
    for name in ("AUTO", "PLAIN", "TREE_ONLY", "_PLAIN_TREES"):
        monkeypatch.setattr(_eager, name, set(getattr(_eager, name)))
    previous = _eager.set_eager_jit(True), _eager.AUTO_ENABLED[0]
    _eager.AUTO_ENABLED[0] = True
    yield s
    _eager.set_eager_jit(previous[0])
    _eager.AUTO_ENABLED[0] = previous[1]


def _plain(fn: Any, *args: Any) -> Any:
    previous = _eager.set_eager_jit(False)
    try:
        return fn(*args)
    finally:
        _eager.set_eager_jit(previous)


def _registered(case: Case) -> bool:
    cls = getattr(nn, case.cls, None)
    return cls in _eager.RULES and case.forward and not case.lazy


REGISTERED = [c for c in CASES if _registered(c)]


def _uses(layer: Any, inputs: Any) -> bool:
    """Whether the cached path applies: the class's test passes and every input leaf is an array
    (ConvTranspose's `output_size=(10, 10)` keeps it plain)."""
    if type(layer) in _eager.TREE_ONLY:
        return False
    when = _eager.RULES[type(layer)]
    ok = _eager._tree_check(layer) is not None if layer._modules else (when is None or when(layer))
    return ok and all(isinstance(v, jax.Array) for v in jax.tree.leaves(inputs))


def test_the_registry_has_registered_layers():
    assert {c.cls for c in REGISTERED} >= {
        "Linear",
        "LayerNorm",
        "GELU",
        "LSTM",
        "Conv2d",
        "BatchNorm1d",
    }


@pytest.mark.parametrize("case", REGISTERED, ids=lambda c: c.id)
def test_registered_layer_matches_the_plain_path(case: Case, spy: _Spy) -> None:
    seed = zlib.crc32(case.id.encode())
    xs = _to_jax(make_inputs(case.inputs, np.random.default_rng(seed)))
    kw = _kw(case.fwd_kwargs, jnp.asarray)
    layer = _build(case, nn, jnp.asarray)
    pre = (lambda a: case.pre(nn.functional, a)) if case.pre else (lambda a: a)

    def run(m: Any, *a: Any) -> Any:
        return m(*pre(tuple(a)), **kw)

    for mode in ("eval", "train"):
        getattr(layer, mode)()
        before = spy.calls
        jaxmodule.manual_seed(seed)  # the same draws both ways (Dropout in training)
        want = _plain(run, layer, *xs)
        assert spy.calls == before  # the off switch holds
        jaxmodule.manual_seed(seed)
        got = run(layer, *xs)
        uses = _uses(layer, (xs, kw))
        if uses or not layer._modules:  # else a container's children may each use it
            assert spy.calls == before + int(uses), (
                f"{case.id} ({mode}): cached path used {spy.calls - before} times"
            )
        jax.tree.map(lambda g, w: assert_close(g, w), got, want)
    if _differentiable(make_inputs(case.inputs, np.random.default_rng(seed))):

        def loss(m: Any, *a: Any) -> Any:
            return sum(
                jnp.sum(o)
                for o in jax.tree.leaves(run(m, *a))
                if jnp.issubdtype(o.dtype, jnp.floating)
            )

        argnums = tuple(range(1 + len(xs)))
        jaxmodule.manual_seed(seed)
        want_g = _plain(jaxmodule.grad(loss, argnums=argnums), layer, *xs)
        before = spy.calls
        jaxmodule.manual_seed(seed)
        got_g = jaxmodule.grad(loss, argnums=argnums)(layer, *xs)
        assert spy.calls > before or not _uses(layer, (xs, kw))
        jax.tree.map(lambda g, w: assert_close(g, w), got_g, want_g)


def test_a_forward_hook_added_later_is_called(spy: _Spy) -> None:
    layer, x = nn.Linear(3, 2), jnp.ones((4, 3))
    layer(x)
    assert spy.calls == 1
    seen = []
    handle = layer.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    layer(x)
    assert seen == [(4, 2)] and spy.calls == 1
    handle.remove()
    layer(x)
    assert spy.calls == 2


def test_batchnorm_training_updates_running_stats(spy: _Spy) -> None:
    bn, x = nn.BatchNorm1d(3), jax.random.normal(jax.random.key(0), (8, 3))
    bn(x)
    assert spy.calls == 0
    assert not np.allclose(np.asarray(bn.running_mean), 0) and int(bn.num_batches_tracked) == 1
    bn.eval()
    out = bn(x)
    assert spy.calls == 1
    assert_close(out, _plain(bn, x))


def test_structural_changes_are_honoured(spy: _Spy) -> None:
    layer = nn.Linear(3, 2)
    layer(jnp.ones((1, 3)))
    layer.weight = nn.Parameter(jnp.ones((5, 3)))
    layer.bias = nn.Parameter(jnp.zeros(5))
    assert layer(jnp.ones((1, 3))).tolist() == [[3.0] * 5]
    layer.bias = None
    assert layer(jnp.full((1, 3), 2.0)).tolist() == [[6.0] * 5]
    with jaxmodule.no_grad():
        layer.weight.fill_(0.5)  # a value change, not structural
    assert layer(jnp.ones((1, 3))).tolist() == [[1.5] * 5]
    ln = nn.LayerNorm(4)
    ln(jnp.arange(4.0))
    ln.eps = 10.0  # a plain attribute is part of the key
    assert_close(ln(jnp.arange(4.0)), _plain(ln, jnp.arange(4.0)))
    assert spy.calls == 6


def test_subclass_with_its_own_forward_runs_plainly(spy: _Spy) -> None:
    calls = []

    class Logged(nn.Linear):
        def forward(self, x: Any) -> Any:
            calls.append(1)
            return super().forward(x)

    m = Logged(3, 2)
    m(jnp.ones(3))
    m(jnp.ones(3))
    m.forward = lambda x: x  # replaced on the instance: plain too
    layer = nn.Linear(3, 3)
    layer.forward = lambda x: x
    assert len(calls) == 2 and layer(jnp.ones(3)).tolist() == [1.0, 1.0, 1.0]
    # tried once (the append into a list it does not own is refused before it runs), then plain
    assert spy.calls == 1 and "list.append" in _eager.REJECTED[Logged]


def test_traces_and_non_array_inputs_take_the_plain_path(spy: _Spy) -> None:
    layer = nn.Linear(3, 2)
    x = jnp.ones((2, 3))
    assert_close(jax.jit(lambda v: layer(v))(x), _plain(layer, x))
    assert_close(jax.vmap(layer)(x), _plain(layer, x))
    jax.eval_shape(layer, x)
    layer(np.ones((2, 3), np.float32))  # numpy input: plain, as before
    assert spy.calls == 0
    compiled = jaxmodule.compile(lambda v: layer(v))
    assert_close(compiled(x), _plain(layer, x))
    assert spy.calls == 0


def test_training_step_gradients_match(spy: _Spy) -> None:
    """jaxmodule.backward over an LSTM LM (the benchmark's model): cached and plain agree."""

    def step(model: Any) -> tuple:
        x = jnp.asarray(np.random.default_rng(0).integers(0, 10, (5, 2)))
        model.zero_grad()
        loss = jaxmodule.backward(lambda: model[2](model[1](model[0](x))[0]).sum())
        return loss, [p.grad for p in model.parameters()]

    model = nn.Sequential(nn.Embedding(10, 4), nn.LSTM(4, 6, 2), nn.Linear(6, 3))
    want_loss, want = _plain(step, model)
    loss, got = step(model)
    assert spy.calls == 3  # Embedding (its index check runs eagerly first), LSTM, Linear
    assert_close(loss, want_loss)
    for g, w in zip(got, want):
        assert_close(g, w)


def test_autocast_state_is_part_of_the_key(spy: _Spy) -> None:
    layer, x = nn.Linear(3, 2), jnp.ones((2, 3))
    assert layer(x).dtype == jnp.float32
    with jaxmodule.autocast("cpu", dtype=jnp.bfloat16):
        out = layer(x)
        want = _plain(layer, x)
    assert out.dtype == want.dtype == jnp.bfloat16 and spy.calls == 2
    assert_close(out.astype(jnp.float32), want.astype(jnp.float32))


def test_the_cache_keeps_no_module_alive(spy: _Spy) -> None:
    layer = nn.LSTM(3, 4)
    layer(jnp.ones((2, 1, 3)))
    assert spy.calls == 1
    ref = weakref.ref(layer)
    del layer
    gc.collect()
    assert ref() is None


def test_a_concrete_value_read_falls_back_and_unregisters(
    spy: _Spy, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Concrete(nn.Module):
        def forward(self, x: Any) -> Any:
            return x * float(x.sum())  # needs the value: only the plain path can

    monkeypatch.setitem(_eager.RULES, Concrete, None)
    m = Concrete()
    assert m(jnp.ones(2)).tolist() == [2.0, 2.0]
    assert Concrete not in _eager.RULES
    bad = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match="in_features"):  # a user error raises the eager error
        bad(jnp.ones((2, 4)))
    assert nn.Linear in _eager.RULES


def test_environment_switch() -> None:
    code = "from jaxmodule.nn.modules import _eager; print(_eager.is_eager_jit_enabled())"
    env = dict(os.environ, JAXMODULE_EAGER_JIT="0")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_register_rejects_non_classes() -> None:
    with pytest.raises(TypeError, match="register_pure_forward: expected Module classes"):
        _eager.register_pure_forward(lambda x: x)  # type: ignore[arg-type]
