"""Eager zero-argument `jaxmodule.backward` as a traced loss and a cached program (`_replay.py`).

Each training loop is compared with torch's `loss.backward()` step by step (loss, gradients,
buffers) and with the eager-autodiff path (replay off); the loss function's Python runs once per
call, captured arrays that change (a carried hidden state, new batches) never retrace, and losses
that cannot be traced fall back with the same results.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import _autograd, _replay, nn
from jaxmodule.nn import functional as F
from jaxmodule.nn.modules import _eager

from tests.helpers import assert_close


@pytest.fixture
def replay(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """Counts the cached programs run and the traces that fell back."""
    runs: list = []
    real = _replay._run

    def run(*args: object) -> object:
        runs.append(args[0])
        return real(*args)

    monkeypatch.setattr(_replay, "_run", run)
    monkeypatch.setattr(_replay, "_SEEN", type(_replay._SEEN)())
    monkeypatch.setattr(_autograd, "_LAST_READ", type(_autograd._LAST_READ)())
    previous = _eager.set_eager_jit(True)
    yield runs
    _eager.set_eager_jit(previous)


class RNNLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Embedding(20, 6)
        self.rnn = nn.LSTM(6, 6, 2)
        self.decoder = nn.Linear(6, 20)

    def forward(self, x: jax.Array, hidden: tuple) -> tuple:
        out, hidden = self.rnn(self.encoder(x), hidden)
        return F.log_softmax(self.decoder(out).reshape(-1, 20), dim=1), hidden


class TorchRNNLM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Embedding(20, 6)
        self.rnn = torch.nn.LSTM(6, 6, 2)
        self.decoder = torch.nn.Linear(6, 20)

    def forward(self, x: torch.Tensor, hidden: tuple) -> tuple:
        out, hidden = self.rnn(self.encoder(x), hidden)
        return torch.log_softmax(self.decoder(out).reshape(-1, 20), dim=1), hidden


def _train_lstm(steps: int, replay_on: bool) -> tuple[list, list, RNNLM, TorchRNNLM]:
    torch.manual_seed(0)
    ref = TorchRNNLM()
    model = RNNLM()
    model.load_state_dict(ref.state_dict())
    opt = jaxmodule.optim.SGD(model.parameters(), lr=0.5)
    topt = torch.optim.SGD(ref.parameters(), lr=0.5)
    rng = np.random.default_rng(0)
    # two arrays: one array captured twice would be one constant of the first trace, two later
    state = {"h": (jnp.zeros((2, 3, 6)), jnp.zeros((2, 3, 6))), "th": (torch.zeros(2, 3, 6),) * 2}
    ran, losses = [], []
    previous = _eager.set_eager_jit(replay_on)
    try:
        for _ in range(steps):
            tokens = rng.integers(0, 20, (5, 3))
            x, y = jnp.asarray(tokens[:-1]), jnp.asarray(tokens[1:].reshape(-1))

            def loss_fn() -> tuple:
                ran.append(1)
                out, hidden = model(x, state["h"])  # noqa: B023 - this step's batch, as in torch
                return F.nll_loss(out, y), hidden  # noqa: B023

            opt.zero_grad()
            loss, hidden = jaxmodule.backward(loss_fn, has_aux=True)
            state["h"] = tuple(jax.lax.stop_gradient(h) for h in hidden)
            nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            opt.step()
            topt.zero_grad()
            out, th = ref(torch.from_numpy(tokens[:-1]), tuple(h.detach() for h in state["th"]))
            state["th"] = th
            tloss = torch.nn.functional.nll_loss(out, torch.from_numpy(tokens[1:].reshape(-1)))
            tloss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.25)
            topt.step()
            losses.append((float(loss), float(tloss.detach())))
    finally:
        _eager.set_eager_jit(True)
        _eager.set_eager_jit(previous)
    return ran, losses, model, ref


def test_an_lstm_training_loop_matches_torch_with_one_program(replay: list) -> None:
    ran, losses, model, ref = _train_lstm(6, replay_on=True)
    for ours, theirs in losses:
        assert abs(ours - theirs) <= 1e-5 * abs(theirs) + 1e-6
    for p, q in zip(model.parameters(), ref.parameters()):
        assert_close(p, q.detach().numpy(), rtol=1e-4, atol=1e-5)  # 6 SGD steps of lr 0.5
    # every call, the first included, runs the body once, as torch does
    assert len(ran) == 6
    # two programs: the first call's (parameters found as constants), then one for steps 2-6
    # (parameters as inputs): new batches and the carried hidden state are arguments
    assert len(replay) == 6 and len({p._hash for p in replay}) == 2


def test_replay_and_eager_autodiff_give_the_same_training(replay: list) -> None:
    _, with_replay, model_a, _ = _train_lstm(4, replay_on=True)
    _, without, model_b, _ = _train_lstm(4, replay_on=False)
    assert len(replay) == 4
    for (a, _), (b, _) in zip(with_replay, without):
        assert abs(a - b) <= 1e-6 * abs(b)
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert_close(p, q)


def test_buffers_and_dropout_draws_are_written_back(replay: list) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 1))
    twin = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 1))
    twin.load_state_dict(model.state_dict())
    x = jnp.asarray(np.random.default_rng(0).standard_normal((6, 4)), jnp.float32)
    results = []
    for net, on in ((model, True), (twin, False)):
        jaxmodule.manual_seed(3)
        previous = _eager.set_eager_jit(on)
        try:
            for _ in range(3):
                net.zero_grad()
                jaxmodule.backward(lambda net=net: (net(x) ** 2).mean())
        finally:
            _eager.set_eager_jit(previous)
        results.append(
            (
                [np.asarray(p.grad) for p in net.parameters()],
                {k: np.asarray(v) for k, v in net.state_dict().items()},
                np.asarray(jaxmodule.default_generator.get_state()),
            )
        )
    assert len(replay) == 3
    (ga, sa, ka), (gb, sb, kb) = results
    for a, b in zip(ga, gb):
        assert_close(a, b)
    for k in sa:
        assert_close(sa[k], sb[k])
    assert (ka == kb).all()
    assert int(sa["1.num_batches_tracked"]) == 3


def test_python_in_the_loss_runs_once_per_call_and_aux_keeps_python_values(
    replay: list, capsys: pytest.CaptureFixture
) -> None:
    model = nn.Linear(3, 1)
    x = jnp.ones((2, 3))
    for _ in range(4):
        loss, aux = jaxmodule.backward(
            lambda: (print("step") or model(x).sum(), {"n": 2, "out": model(x)}), has_aux=True
        )
        assert aux["n"] == 2 and isinstance(aux["out"], jax.Array)
    assert capsys.readouterr().out.count("step") == 4  # once per call, the first included
    assert len(replay) == 4


def test_a_loss_that_cannot_be_traced_falls_back_once_and_for_all(replay: list) -> None:
    model = nn.Linear(3, 1)
    twin = nn.Linear(3, 1)
    twin.load_state_dict(model.state_dict())
    x = jnp.ones((2, 3))
    runs = []

    def loss_fn() -> jax.Array:
        runs.append(1)
        if _replay.is_replay_trace():  # stands for anything the loss trace cannot do
            raise RuntimeError("not in a trace")
        return model(x).sum()

    for _ in range(3):
        jaxmodule.backward(loss_fn)
        jaxmodule.backward(lambda: twin(x).sum(), inputs=list(twin.parameters()))
    for p, q in zip(model.parameters(), twin.parameters()):
        assert_close(p.grad, q.grad)
    assert replay == [] and _replay._SEEN[loss_fn.__code__] is None
    # first call: the failed trace, then probe and differentiate; later calls: eager, one pass
    assert len(runs) == 3 + 1 + 1


def test_new_shapes_get_their_own_programs_up_to_the_limit(
    replay: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_replay, "MAX_PROGRAMS", 2)
    model = nn.Linear(3, 1)
    twin = nn.Linear(3, 1)
    twin.load_state_dict(model.state_dict())
    for n in (1, 1, 2, 2, 3, 3, 4):
        x = jnp.ones((n, 3))
        jaxmodule.backward(lambda: (model(x) ** 2).sum())  # noqa: B023 - called right away
        jaxmodule.backward(lambda: (twin(x) ** 2).sum(), inputs=list(twin.parameters()))  # noqa: B023
    for p, q in zip(model.parameters(), twin.parameters()):
        assert_close(p.grad, q.grad)
    assert len({p._hash for p in replay}) == 2  # shapes 1 and 2; then eager autodiff


def test_constants_inside_nested_programs_are_part_of_the_structure(replay: list) -> None:
    model = nn.Linear(3, 3)
    twin = nn.Linear(3, 3)
    twin.load_state_dict(model.state_dict())
    x = jnp.ones((2, 3))
    for w in (1.0, 2.0, 3.0, 3.0):
        c = jnp.full((3,), w)
        scaled = jax.jit(lambda h: (h * c).sum())  # noqa: B023 - a new program closing over c
        model.zero_grad()
        twin.zero_grad()
        jaxmodule.backward(lambda: scaled(model(x)))  # noqa: B023
        jaxmodule.backward(lambda: scaled(twin(x)), inputs=list(twin.parameters()))  # noqa: B023
        for p, q in zip(model.parameters(), twin.parameters()):
            assert_close(p.grad, q.grad)
    # one per weight (2.0, 3.0) after the first call's own program (1.0)
    assert len({p._hash for p in replay}) == 3
