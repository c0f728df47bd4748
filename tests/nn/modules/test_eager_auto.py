"""Undeclared user modules in the eager cache: pure forwards become one program, others stay plain.

A user's class (as written, no declaration) is traced with `_purity.Checker` watching its Python;
any side effect refuses it before the effect happens, so every effect happens exactly once per
call, as in torch eager. Outputs are compared with torch and with the plain path.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn import functional as F
from jaxmodule.nn.modules import _eager, _purity

from tests.helpers import assert_close
from tests.nn.modules.test_eager_cache import _plain, _Spy, isolated_spy

SCALE = 2.0
OFFSET = jnp.zeros(4)
HISTORY: list = []


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Spy]:
    yield from isolated_spy(monkeypatch)


class Attention(nn.Module):
    """nanoGPT-style attention, written as examples/gpt_generate.py writes it."""

    def __init__(self, d: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.n_head = heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.register_buffer("bias", jnp.tril(jnp.ones((6, 6))).reshape(1, 1, 6, 6))

    def forward(self, x: Any) -> Any:
        B, T, C = x.shape
        q, k, v = jaxmodule.Tensor.split(self.c_attn(x), C, dim=2)
        q, k, v = (t.reshape(B, T, self.n_head, C // self.n_head).swapaxes(1, 2) for t in (q, k, v))
        att = (q @ k.swapaxes(-2, -1)) * (1.0 / np.sqrt(k.shape[-1]))
        att = jnp.where(self.bias[:, :, :T, :T] == 0, float("-inf"), att)
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.swapaxes(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(8)
        self.attn = Attention()
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))

    def forward(self, x: Any) -> Any:
        x = x + self.attn(self.ln(x))
        return x + self.mlp(x)


class TorchAttention(torch.nn.Module):
    def __init__(self, d: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.n_head = heads
        self.c_attn = torch.nn.Linear(d, 3 * d)
        self.c_proj = torch.nn.Linear(d, d)
        self.register_buffer("bias", torch.tril(torch.ones(6, 6)).view(1, 1, 6, 6))

    def forward(self, x: Any) -> Any:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        y = torch.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class TorchBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln = torch.nn.LayerNorm(8)
        self.attn = TorchAttention()
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 8)
        )

    forward = Block.forward


def _pair() -> tuple[Block, TorchBlock]:
    torch.manual_seed(0)
    ref = TorchBlock()
    model = Block()
    model.load_state_dict(ref.state_dict())
    return model, ref


def test_an_undeclared_block_is_one_program_with_torchs_results(spy: _Spy) -> None:
    model, ref = _pair()
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    for _ in range(3):
        out = model(jnp.asarray(x))
    assert spy.calls == 3 and Block in _eager.AUTO and Attention in _eager.AUTO
    assert_close(out, ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert_close(out, _plain(model, jnp.asarray(x)))


def test_gradients_through_an_undeclared_block_match_torch(spy: _Spy) -> None:
    model, ref = _pair()
    x = np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32)
    for _ in range(2):
        model.zero_grad()
        jaxmodule.backward(lambda: (model(jnp.asarray(x)) ** 2).sum())
    (ref(torch.from_numpy(x)) ** 2).sum().backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert_close(p.grad, q.grad.numpy(), rtol=1e-4, atol=1e-5)  # sums of squares: float32 sums


def _calls_each_time(cls: type, n: int = 3) -> Any:
    m = cls()
    outs = [m(jnp.ones(4)) for _ in range(n)]
    return m, outs


class Prints(nn.Module):
    def forward(self, x: Any) -> Any:
        print("forward", x.shape)
        return x * 2


class Counts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: Any) -> Any:
        self.calls += 1
        return x * 2


class KeepsHistory(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.history: list = []

    def forward(self, x: Any) -> Any:
        self.history.append(1)
        return x * 2


class GlobalHistory(nn.Module):
    def forward(self, x: Any) -> Any:
        HISTORY.append(1)
        return x * 2


class Logs(nn.Module):
    def forward(self, x: Any) -> Any:
        logging.getLogger("jaxmodule.test").warning("forward")
        return x * 2


class Clock(nn.Module):
    def forward(self, x: Any) -> Any:
        return x * time.time()


class Coin(nn.Module):
    def forward(self, x: Any) -> Any:
        return x * (2.0 if random.random() < 2 else 0.0)


class Seeds(nn.Module):
    def forward(self, x: Any) -> Any:
        jaxmodule.manual_seed(0)
        return x * 2


class Concrete(nn.Module):
    def forward(self, x: Any) -> Any:
        return x * 2 if float(x.sum()) > 0 else x


def test_a_print_happens_on_every_call_and_refuses_the_class(
    spy: _Spy, capsys: pytest.CaptureFixture
) -> None:
    _calls_each_time(Prints)
    assert capsys.readouterr().out.count("forward") == 3  # never once more, never once less
    assert "print" in _eager.REJECTED[Prints] and Prints in _eager.PLAIN


@pytest.mark.parametrize(
    "cls,what",
    [
        (Counts, "sets an attribute"),
        (KeepsHistory, "list.append"),
        (GlobalHistory, "global 'HISTORY'"),
        (Logs, "Logger"),
        (Clock, "time"),
        (Coin, "random"),
        (Seeds, "manual_seed"),
        (Concrete, "concrete"),
    ],
)
def test_side_effects_refuse_the_class_before_they_happen(spy: _Spy, cls: type, what: str) -> None:
    HISTORY.clear()
    m, outs = _calls_each_time(cls)
    assert what in _eager.REJECTED[cls] and cls not in _eager.RULES
    if cls is not Clock:
        assert all(o.tolist() == [2.0] * 4 for o in outs)
    if cls is Counts:
        assert m.calls == 3
    if cls is KeepsHistory:
        assert m.history == [1, 1, 1]
    if cls is GlobalHistory:
        assert HISTORY == [1, 1, 1]


class Scaled(nn.Module):
    def forward(self, x: Any) -> Any:
        return x * SCALE


class Shifted(nn.Module):
    def forward(self, x: Any) -> Any:
        return x + OFFSET


def test_a_rebound_global_number_is_seen_on_the_next_call(spy: _Spy) -> None:
    global SCALE
    m = Scaled()
    assert m(jnp.ones(4)).tolist() == [2.0] * 4
    SCALE = 3.0
    try:
        assert m(jnp.ones(4)).tolist() == [3.0] * 4 and Scaled in _eager.AUTO
    finally:
        SCALE = 2.0


def test_a_global_array_is_not_frozen_into_a_program(spy: _Spy) -> None:
    global OFFSET
    m = Shifted()
    assert m(jnp.ones(4)).tolist() == [1.0] * 4
    OFFSET = jnp.ones(4)
    try:
        assert m(jnp.ones(4)).tolist() == [2.0] * 4 and Shifted in _eager.REJECTED
    finally:
        OFFSET = jnp.zeros(4)


class Recurrent(nn.Module):
    """Python lists the forward creates itself are free to grow: cached."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(4, 4)

    def forward(self, xs: Any) -> Any:
        h = jnp.zeros((xs.shape[1], 4))
        outs = []
        for x in xs:
            h = self.cell(x, h)
            outs.append(h)
        return jnp.stack(outs), {"last": h}


def test_lists_the_forward_builds_itself_are_allowed(spy: _Spy) -> None:
    m = Recurrent()
    xs = jax.random.normal(jax.random.PRNGKey(0), (5, 3, 4))
    out, extra = m(xs)
    assert Recurrent in _eager.AUTO and spy.calls == 1
    ref, ref_extra = _plain(m, xs)
    assert_close(out, ref)
    assert_close(extra["last"], ref_extra["last"])


class Describes(nn.Module):
    def forward(self, x: Any) -> Any:
        return x * 2, x.shape[0], "done"


def test_python_values_in_the_output_keep_their_types(spy: _Spy) -> None:
    out, n, text = Describes()(jnp.ones(4))
    assert n == 4 and type(n) is int and text == "done" and Describes in _eager.REJECTED


class Wide(nn.Linear):
    def __init__(self) -> None:
        super().__init__(4, 3)


def test_a_subclass_with_only_its_own_init_uses_the_built_in_rule(spy: _Spy) -> None:
    m = Wide()
    x = jnp.ones((2, 4))
    assert_close(m(x), _plain(m, x))
    assert spy.calls == 1 and _eager.RULES[Wide] is _eager.RULES[nn.Linear]


def test_plain_forward_and_the_switch_keep_classes_plain(spy: _Spy) -> None:
    @nn.utils.plain_forward
    class Declared(nn.Module):
        def forward(self, x: Any) -> Any:
            return x * 2

    Declared()(jnp.ones(4))
    assert spy.calls == 0
    previous = _eager.set_auto_pure(False)
    try:
        Scaled()(jnp.ones(4))
        assert spy.calls == 0 and Scaled in _eager.PLAIN
    finally:
        _eager.set_auto_pure(previous)
    Scaled()(jnp.ones(4))
    assert spy.calls == 1


def test_a_hook_on_a_child_keeps_the_parent_plain(spy: _Spy) -> None:
    model, _ = _pair()
    seen = []
    model.attn.c_proj.register_forward_hook(lambda m, i, o: seen.append(1))
    model(jnp.ones((1, 3, 8)))
    model(jnp.ones((1, 3, 8)))
    assert seen == [1, 1]


class Swallows(nn.Module):
    def forward(self, x: Any) -> Any:
        try:
            print("swallowed")
        except Exception:  # noqa: S110 - the refusal raised at the print is caught here
            pass
        return x * 2


def test_a_refusal_the_forward_catches_still_refuses(
    spy: _Spy, capsys: pytest.CaptureFixture
) -> None:
    _calls_each_time(Swallows)
    assert capsys.readouterr().out.count("swallowed") == 3
    assert "print" in _eager.REJECTED[Swallows]


class FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Any) -> Any:
        return F.dropout(self.fc(x), 0.5, self.training)


def test_state_use_that_depends_on_the_mode_keeps_only_that_mode_plain(spy: _Spy) -> None:
    m = FunctionalDropout()
    x = jnp.ones((64, 4))
    jaxmodule.manual_seed(0)
    a, b = m(x), m(x)
    assert not jnp.array_equal(a, b)  # training: a new mask each call, drawn eagerly
    assert "random" in _eager.REJECTED[FunctionalDropout] and FunctionalDropout in _eager.AUTO
    m.eval()
    calls = spy.calls
    assert_close(m(x), _plain(m, x))
    assert spy.calls == calls + 1  # eval: one cached program
    m.train()
    assert not jnp.array_equal(m(x), m(x))


class Casts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Any) -> Any:
        return jaxmodule.Tensor.to(self.fc(x), jnp.float16)  # torch's x.to(dtype): no effect


def test_a_users_wrong_call_does_not_refuse_the_class_for_good(spy: _Spy) -> None:
    m = Casts()
    for _ in range(2):
        with pytest.raises(RuntimeError, match="mat1 and mat2 shapes"):
            m(jnp.ones((2, 5)))  # torch's shape error, raised by the plain forward
    before = spy.calls
    out = m(jnp.ones((2, 4)))
    assert out.dtype == jnp.float16 and Casts in _eager.AUTO and spy.calls == before + 1
    assert_close(out, _plain(m, jnp.ones((2, 4))))


class GradBranch(nn.Module):
    def forward(self, x: Any) -> Any:
        return x * 2 if jaxmodule.is_grad_enabled() else x * 3


def test_the_grad_mode_keys_the_program(spy: _Spy) -> None:
    m = GradBranch()
    assert m(jnp.ones(2)).tolist() == [2.0, 2.0]
    with jaxmodule.no_grad():
        assert m(jnp.ones(2)).tolist() == [3.0, 3.0]
    assert m(jnp.ones(2)).tolist() == [2.0, 2.0] and GradBranch in _eager.AUTO


class ClassScaled(nn.Module):
    scale = 2.0  # a class attribute: not in the module's own attributes

    def forward(self, x: Any) -> Any:
        return x * self.scale


class ClassTable(nn.Module):
    table = [1.0, 2.0]  # noqa: RUF012 - a mutable class attribute, on purpose

    def forward(self, x: Any) -> Any:
        return x * self.table[0]


def test_class_attributes_are_guarded_or_refused(spy: _Spy) -> None:
    m = ClassScaled()
    assert m(jnp.ones(2)).tolist() == [2.0, 2.0]
    ClassScaled.scale = 3.0
    try:
        assert m(jnp.ones(2)).tolist() == [3.0, 3.0] and ClassScaled in _eager.AUTO
    finally:
        ClassScaled.scale = 2.0
    t = ClassTable()
    assert t(jnp.ones(2)).tolist() == [1.0, 1.0]
    ClassTable.table[0] = 5.0
    try:
        assert (
            t(jnp.ones(2)).tolist() == [5.0, 5.0]
            and "class attribute" in _eager.REJECTED[ClassTable]
        )
    finally:
        ClassTable.table[0] = 1.0


def test_misuse_of_the_declarations_says_what_was_expected(spy: _Spy) -> None:
    with pytest.raises(
        TypeError, match=r"plain_forward: expected Module classes with a forward, got 3"
    ):
        nn.utils.plain_forward(3)  # type: ignore[type-var]
    with pytest.raises(TypeError, match=r"refuse_calls: expected functions, got 'save'"):
        _purity.refuse_calls("save")
    assert 3 not in _eager.PLAIN
