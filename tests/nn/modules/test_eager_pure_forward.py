"""Declared-pure user modules (`nn.utils.pure_forward`): a whole block runs as one cached program.

Outputs and gradients match the plain eager path; the declaration is checked when a program is
traced (writes, random draws and foreign cells drop the class with a warning); hooks and
state-writing children keep the plain path; Embedding's index check survives the cached call.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
from jaxmodule import nn
from jaxmodule.nn import functional as F
from jaxmodule.nn.modules import _eager

from tests.helpers import assert_close
from tests.nn.modules.test_eager_cache import _plain, _Spy, isolated_spy


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Spy]:
    yield from isolated_spy(monkeypatch)  # declarations made here stay here


class Attention(nn.Module):
    def __init__(self, d: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.drop = nn.Dropout(0.1)

    def forward(self, x: jax.Array) -> jax.Array:
        b, t, c = x.shape
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        q, k, v = (a.reshape(b, t, self.heads, c // self.heads).swapaxes(1, 2) for a in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.drop(self.proj(y.swapaxes(1, 2).reshape(b, t, c)))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(8)
        self.attn = Attention()
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))

    def forward(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln(x))
        return x + self.mlp(x)


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(8, 11)

    def forward(self, idx: jax.Array) -> jax.Array:
        x = self.emb(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _declare() -> None:
    for cls in (Attention, Block, Model):
        nn.utils.pure_forward(cls)


IDX = jnp.asarray(np.random.default_rng(0).integers(0, 11, (2, 5)))


def test_a_declared_model_is_one_program_with_the_plain_results(spy: _Spy) -> None:
    jaxmodule.manual_seed(0)
    model = Model().eval()
    want = _plain(model, IDX)
    _declare()
    got = model(IDX)
    assert spy.calls == 1
    assert_close(got, want)


def test_gradients_through_a_declared_model_match(spy: _Spy) -> None:
    jaxmodule.manual_seed(0)
    model = Model().eval()
    y = jnp.asarray(np.random.default_rng(1).integers(0, 11, (10,)))

    def step() -> tuple:
        model.zero_grad()
        loss = jaxmodule.backward(lambda: F.cross_entropy(model(IDX).reshape(-1, 11), y))
        return loss, [p.grad for p in model.parameters()]

    want_loss, want = _plain(step)
    _declare()
    for _ in range(2):  # the second call: the remembered parameters, one pass
        loss, got = step()
        assert_close(loss, want_loss)
        for g, w in zip(got, want):
            assert_close(g, w)
    assert spy.calls == 2


def test_training_dropout_inside_draws_the_plain_paths_stream(spy: _Spy) -> None:
    model = Model().train()  # Dropout(0.1) draws: the program takes and returns the key
    _declare()
    jaxmodule.manual_seed(3)
    want = [_plain(model, IDX) for _ in range(3)]
    want_key = np.asarray(jaxmodule.default_generator.get_state())
    jaxmodule.manual_seed(3)
    before = spy.calls
    got = [model(IDX) for _ in range(3)]
    assert spy.calls == before + 3 and _eager._tree_check(model) == (False, True)
    for g, w in zip(got, want):
        assert_close(g, w)  # the same masks (one fused program rounds a few ulps differently)
    assert not np.array_equal(np.asarray(got[0]), np.asarray(got[1]))  # fresh draws each call
    np.testing.assert_array_equal(np.asarray(jaxmodule.default_generator.get_state()), want_key)


def test_training_dropout_under_other_autodiff_runs_plainly(spy: _Spy) -> None:
    model = Model().train()
    _declare()
    jaxmodule.manual_seed(5)
    want = _plain(lambda: jax.grad(lambda w: (model(IDX) * w).sum())(jnp.float32(1.0)))
    jaxmodule.manual_seed(5)
    got = jax.grad(lambda w: (model(IDX) * w).sum())(jnp.float32(1.0))  # a JVP trace: no key
    assert_close(got, want)
    assert not isinstance(jaxmodule.default_generator._value, jax.core.Tracer)


def test_a_hook_on_a_child_runs_every_call(spy: _Spy) -> None:
    model = Model().eval()
    _declare()
    seen: list = []
    model.blocks[1].mlp[0].register_forward_hook(lambda m, a, out: seen.append(out.shape))
    model(IDX)
    model(IDX)
    assert seen == [(2, 5, 16)] * 2


class DrawsNoise(nn.Module):
    def forward(self, x: jax.Array) -> jax.Array:
        return F.dropout(x, 0.5, training=True)


class ReadsAGlobal(nn.Module):
    def forward(self, x: jax.Array) -> jax.Array:
        return x * SCALE


class CountsCalls(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("count", jnp.zeros((), jnp.int32))

    def forward(self, x: jax.Array) -> jax.Array:
        self.count = self.count + 1
        return x


class SetsAnAttribute(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: jax.Array) -> jax.Array:
        self.calls += 1
        return x


SCALE = nn.Parameter(jnp.asarray(2.0))


@pytest.mark.parametrize(
    "cls, what",
    [
        (DrawsNoise, "draws random numbers"),
        (ReadsAGlobal, "reads a Parameter"),
        (CountsCalls, "writes state"),
        (SetsAnAttribute, "sets module attributes"),
    ],
)
def test_a_wrong_declaration_is_found_and_dropped(spy: _Spy, cls: type, what: str) -> None:
    nn.utils.pure_forward(cls)
    m, x = cls(), jnp.ones((4, 4))
    with pytest.warns(UserWarning, match=f"{cls.__qualname__}.forward {what}.*not a pure forward"):
        m(x)
    assert cls not in _eager.RULES
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs = [np.asarray(m(x)) for _ in range(2)]
    if cls is DrawsNoise:
        assert not np.array_equal(outs[0], outs[1])  # fresh draws each call, as eagerly
    if cls is ReadsAGlobal:
        with jaxmodule.no_grad():
            SCALE.fill_(3.0)
        assert float(m(x)[0, 0]) == 3.0  # the global's current value, not a frozen one
    if cls is CountsCalls:
        assert int(m.count) == 3
    if cls is SetsAnAttribute:
        assert m.calls == 3


def test_embedding_checks_its_indices_on_the_cached_path(spy: _Spy) -> None:
    emb = nn.Embedding(5, 3)
    emb(jnp.asarray([0, 4]))
    assert spy.calls == 1
    with pytest.raises(IndexError, match="index out of range in self"):
        emb(jnp.asarray([0, 5]))


def test_not_used_inside_a_compiled_step(spy: _Spy) -> None:
    model = Model().eval()
    _declare()
    out = jaxmodule.compile(lambda m, i: m(i))(model, IDX)
    assert spy.calls == 0
    assert_close(out, _plain(model, IDX))


def test_pure_forward_returns_the_class_and_refuses_non_classes() -> None:
    class Local(nn.Module):
        def forward(self, x: jax.Array) -> jax.Array:
            return x

    try:
        assert nn.utils.pure_forward(Local) is Local
    finally:
        _eager.RULES.pop(Local, None)
    with pytest.raises(TypeError, match="register_pure_forward: expected Module classes"):
        nn.utils.pure_forward(lambda x: x)  # type: ignore[type-var]


@pytest.mark.parametrize(
    "build",
    [
        lambda nn_: nn_.Sequential(),
        lambda nn_: nn_.Sequential(nn_.Identity()),
        lambda nn_: nn_.Sequential(nn_.Dropout()).eval(),
        lambda nn_: nn_.Sequential(nn_.Linear(3, 3)),
        lambda nn_: nn_.Flatten(),
        lambda nn_: nn_.Dropout().eval(),
        lambda nn_: nn_.Dropout(0.0),
        lambda nn_: nn_.Identity(),
    ],
)
def test_returning_the_input_object_itself_follows_torch(build: Any) -> None:
    import torch

    x, tx = jnp.ones((2, 3)), torch.ones(2, 3)
    assert (build(nn)(x) is x) == (build(torch.nn)(tx) is tx)
