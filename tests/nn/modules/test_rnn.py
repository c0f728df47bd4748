"""Differential tests of RNN, LSTM, GRU and the cells vs torch: values, gradients, state_dict, repr."""

import math

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn, to_torch

T, N, IN, H = 5, 3, 4, 6  # sequence length, batch, input features, hidden features

# Most forwards run compiled: one XLA compilation per configuration instead of one per eager op,
# which keeps this file fast on a small shared CPU. Eager calls are covered in a few tests too.
_fwd = jax.jit(lambda m, *args: m(*args))


def _pair(name, **kw):
    jm, tm = getattr(nn, name)(IN, H, **kw), getattr(torch.nn, name)(IN, H, **kw)
    assert [(k, tuple(v.shape)) for k, v in jm.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in tm.state_dict().items()
    ]
    jm.load_state_dict(tm.state_dict())
    return jm, tm


def _states(name, kw, batch=N, seed=40):
    d = 2 if kw.get("bidirectional") else 1
    n = kw.get("num_layers", 1) * d
    h_out = kw.get("proj_size", 0) or H
    shape = (n, batch) if batch else (n,)
    h0 = randn(*shape, h_out, seed=seed)
    if name == "LSTM":
        return h0, randn(*shape, H, seed=seed + 1)
    return h0


def _flatten(out):
    """(output, h) or (output, (h, c)) -> a flat list of arrays."""
    o, h = out
    return [o, *h] if isinstance(h, tuple) else [o, h]


# torch notes that its oneDNN kernels lack LSTM projections (it falls back to its own loop)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

CASES = [
    ("RNN", {}),
    ("RNN", dict(nonlinearity="relu", num_layers=2, batch_first=True)),
    ("RNN", dict(bidirectional=True, bias=False)),
    ("LSTM", {}),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(proj_size=2, batch_first=True)),
    ("LSTM", dict(proj_size=3, num_layers=2, bidirectional=True, bias=False)),
    ("GRU", dict(num_layers=2)),
    ("GRU", dict(bidirectional=True, batch_first=True)),
]


@pytest.mark.parametrize(
    "name,kw", CASES, ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES]
)
def test_rnn_matches_torch_values_and_grads(name, kw):
    jm, tm = _pair(name, **kw)
    x = randn(N, T, IN, seed=1) if kw.get("batch_first") else randn(T, N, IN, seed=1)
    hx = _states(name, kw)
    t_out = _flatten(tm(to_torch(x), tuple(map(to_torch, hx)) if name == "LSTM" else to_torch(hx)))
    cots = [randn(*o.shape, seed=50 + i) for i, o in enumerate(t_out)]

    tx = to_torch(x, requires_grad=True)
    thx = (
        tuple(to_torch(h, requires_grad=True) for h in hx)
        if name == "LSTM"
        else to_torch(hx, requires_grad=True)
    )
    t_out = _flatten(tm(tx, thx))
    sum((o * to_torch(c)).sum() for o, c in zip(t_out, cots)).backward()

    def loss(m, x, hx):
        outs = _flatten(m(x, hx))
        return sum((o * c).sum() for o, c in zip(outs, cots)), outs

    # jit: one compilation instead of many eager op dispatches (keeps the file fast on small CPUs)
    (_, outs), (g_m, g_x, g_hx) = jax.jit(
        jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
    )(jm, x, hx)
    for o, to in zip(outs, t_out):
        assert_close(o, to)
    assert_close(g_x, tx.grad)
    for g, th in zip(g_hx if name == "LSTM" else [g_hx], thx if name == "LSTM" else [thx]):
        assert_close(g, th.grad)
    t_grads = dict(tm.named_parameters())
    for pname, g in g_m.named_parameters():
        assert_close(g, t_grads[pname].grad)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_rnn_default_zero_state_and_unbatched(name):
    kw = dict(num_layers=2, bidirectional=True)
    jm, tm = _pair(name, **kw)
    x = randn(T, N, IN, seed=2)
    for o, to in zip(_flatten(jm(x)), _flatten(tm(to_torch(x)))):  # eager
        assert_close(o, to)
    xu = randn(T, IN, seed=3)
    hx = _states(name, kw, batch=None)
    t_hx = tuple(map(to_torch, hx)) if name == "LSTM" else to_torch(hx)
    for o, to in zip(_flatten(_fwd(jm, xu, hx)), _flatten(tm(to_torch(xu), t_hx))):
        assert_close(o, to)
    for o, to in zip(_flatten(_fwd(jm, xu)), _flatten(tm(to_torch(xu)))):
        assert_close(o, to)


def test_lstm_proj_default_state_batch_first_unbatched():
    jm, tm = _pair("LSTM", proj_size=2, batch_first=True)
    xu = randn(T, IN, seed=4)  # batch_first is ignored for unbatched input, as in torch
    for o, to in zip(_flatten(_fwd(jm, xu)), _flatten(tm(to_torch(xu)))):
        assert_close(o, to)


def test_rnn_jit_vmap_and_one_scan_per_layer():
    jm, tm = _pair("LSTM", num_layers=2, bidirectional=True, batch_first=True)
    x = randn(N, T, IN, seed=5)
    expected = _flatten(tm(to_torch(x)))
    for o, to in zip(_flatten(jax.jit(lambda m, x: m(x))(jm, x)), expected):
        assert_close(o, to)
    # vmap over a batch of unbatched sequences gives the batched result
    out_v, (h_v, _) = jax.vmap(lambda s: jm(s))(x)
    assert_close(out_v, expected[0])
    assert_close(jnp.swapaxes(h_v, 0, 1), expected[1])
    # the time loop is a lax.scan (one per layer, both directions inside it), not an unrolled loop
    jaxpr = jax.make_jaxpr(lambda m, x: m(x))(jm, x).jaxpr
    scans = [e for e in jaxpr.eqns if e.primitive.name == "scan"]
    assert [e.params["length"] for e in scans] == [T, T]


def test_rnn_dropout_between_layers():
    # p = 1 zeroes the first layer's output in training: deterministic, so comparable with torch
    jm, tm = _pair("LSTM", num_layers=2, dropout=1.0)
    x = randn(T, N, IN, seed=6)
    for o, to in zip(_flatten(_fwd(jm, x)), _flatten(tm(to_torch(x)))):
        assert_close(o, to)
    # 0 < p < 1: training output is random (fresh keys each call), eval output is deterministic
    jm, tm = _pair("RNN", num_layers=2, dropout=0.5)
    x = randn(T, N, IN, seed=7)
    a, b = jm(x)[0], jm(x)[0]
    assert not np.allclose(np.asarray(a), np.asarray(b))
    jm.eval()
    tm.eval()
    assert_close(_fwd(jm, x)[0], tm(to_torch(x))[0])


def test_rnn_dropout_warns_for_one_layer():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.GRU(IN, H, dropout=0.2)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("RNN", {}),
        ("RNN", dict(nonlinearity="relu", num_layers=3, bias=False, batch_first=True)),
        ("LSTM", dict(proj_size=2, num_layers=2, dropout=0.5, bidirectional=True)),
        ("GRU", dict(bidirectional=True)),
        ("RNNCell", dict(nonlinearity="relu")),
        ("LSTMCell", dict(bias=False)),
        ("GRUCell", {}),
    ],
)
def test_repr_and_state_dict_match_torch(name, kw):
    jm, tm = _pair(name, **kw)
    assert repr(jm) == repr(tm)


def test_init_is_uniform_in_torch_bounds():
    m = nn.GRU(IN, 64)
    bound = 1 / math.sqrt(64)
    values = np.concatenate([np.asarray(p).ravel() for p in m.parameters()])
    assert np.abs(values).max() <= bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.01 * bound  # U(-b, b) has std b/sqrt(3)
    jaxmodule.manual_seed(1)
    a = np.asarray(nn.GRU(IN, H).weight_hh_l0)
    jaxmodule.manual_seed(1)
    np.testing.assert_array_equal(a, np.asarray(nn.GRU(IN, H).weight_hh_l0))


def test_all_weights_and_flat_weights():
    m = nn.LSTM(IN, H, num_layers=2, bidirectional=True, proj_size=2)
    t = torch.nn.LSTM(IN, H, num_layers=2, bidirectional=True, proj_size=2)
    assert m._flat_weights_names == t._flat_weights_names
    assert [[tuple(p.shape) for p in ws] for ws in m.all_weights] == [
        [tuple(p.shape) for p in ws] for ws in t.all_weights
    ]
    m.flatten_parameters()  # no-op, exists for torch compatibility
    assert m._flat_weights[0] is m.weight_ih_l0


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_torch_values_and_grads(name, bias):
    jm, tm = _pair(name, bias=bias)
    x = randn(N, IN, seed=8)
    hx = (randn(N, H, seed=9), randn(N, H, seed=10)) if name == "LSTMCell" else randn(N, H, seed=9)
    tx = to_torch(x, requires_grad=True)
    t_out = tm(tx, tuple(map(to_torch, hx)) if name == "LSTMCell" else to_torch(hx))
    t_out = list(t_out) if name == "LSTMCell" else [t_out]
    cots = [randn(*o.shape, seed=60 + i) for i, o in enumerate(t_out)]
    sum((o * to_torch(c)).sum() for o, c in zip(t_out, cots)).backward()

    def loss(m, x):
        out = m(x, hx)
        outs = list(out) if name == "LSTMCell" else [out]
        return sum((o * c).sum() for o, c in zip(outs, cots)), outs

    (_, outs), (g_m, g_x) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(jm, x)
    for o, to in zip(outs, t_out):
        assert_close(o, to)
    assert_close(g_x, tx.grad)
    t_grads = dict(tm.named_parameters())
    for pname, g in g_m.named_parameters():
        assert_close(g, t_grads[pname].grad)
    # unbatched and default (zero) state
    xu = randn(IN, seed=11)
    out_u, t_u = jm(xu), tm(to_torch(xu))
    for o, to in zip(
        out_u if name == "LSTMCell" else [out_u], t_u if name == "LSTMCell" else [t_u]
    ):
        assert_close(o, to)


def test_constructor_errors_match_torch():
    cases = [
        (
            ValueError,
            "proj_size argument is only supported for LSTM",
            lambda lib: lib.GRU(IN, H, proj_size=2),
        ),
        (
            ValueError,
            "Unknown nonlinearity 'gelu'",
            lambda lib: lib.RNN(IN, H, nonlinearity="gelu"),
        ),
        (
            ValueError,
            "proj_size has to be smaller than hidden_size",
            lambda lib: lib.LSTM(IN, H, proj_size=H),
        ),
        (
            ValueError,
            r"dropout should be a number in range \[0, 1\]",
            lambda lib: lib.LSTM(IN, H, dropout=1.5),
        ),
        (TypeError, "bias should be of type bool, got: int", lambda lib: lib.LSTM(IN, H, bias=1)),
        (TypeError, "input_size should be of type int, got: float", lambda lib: lib.GRU(4.0, H)),
        (ValueError, "hidden_size must be greater than zero", lambda lib: lib.GRU(IN, 0)),
        (
            ValueError,
            "num_layers must be greater than zero",
            lambda lib: lib.RNN(IN, H, num_layers=0),
        ),
    ]
    for exc, msg, make in cases:
        with pytest.raises(exc, match=msg):
            make(torch.nn)
        with pytest.raises(exc, match=msg):
            make(nn)


def test_forward_errors_match_torch():
    lstm, t_lstm = _pair("LSTM")
    gru, t_gru = _pair("GRU")
    x = randn(T, N, IN, seed=12)
    cases = [
        (ValueError, "LSTM: Expected input to be 2D or 3D, got 4D", lambda m: m(x[None])),
        (
            RuntimeError,
            r"input.size\(-1\) must be equal to input_size. Expected 4, got 3",
            lambda m: m(x[..., :3]),
        ),
        (
            RuntimeError,
            r"Expected hidden\[1\] size \(1, 3, 6\), got \[1, 2, 6\]",
            lambda m: m(x, (np.zeros((1, N, H), np.float32), np.zeros((1, 2, H), np.float32))),
        ),
        (
            RuntimeError,
            "For batched 3-D input, hx and cx should also be 3-D but got",
            lambda m: m(x, (np.zeros((N, H), np.float32), np.zeros((N, H), np.float32))),
        ),
    ]
    for exc, msg, call in cases:
        with pytest.raises(exc, match=msg):
            call(lambda a, *h: t_lstm(to_torch(a), *[tuple(map(to_torch, s)) for s in h]))
        with pytest.raises(exc, match=msg):
            call(lstm)
    gru_cases = [
        (
            RuntimeError,
            r"Expected hidden size \(1, 3, 6\), got \[1, 2, 6\]",
            lambda m, c: m(c(x), c(np.zeros((1, 2, H), np.float32))),
        ),
        (
            RuntimeError,
            "For unbatched 2-D input, hx should also be 2-D but got 3-D",
            lambda m, c: m(c(x[:, 0]), c(np.zeros((1, 1, H), np.float32))),
        ),
        (ValueError, "RNN input dtype", lambda m, c: m(c(x.astype(np.float16)))),
    ]
    for exc, msg, call in gru_cases:
        with pytest.raises(exc, match=msg):
            call(t_gru, to_torch)
        with pytest.raises(exc, match=msg):
            call(gru, lambda a: a)
    cell, t_cell = _pair("GRUCell")
    for exc, msg, args in [
        (RuntimeError, "input has inconsistent input_size: got 3 expected 4", (randn(N, 3),)),
        (
            RuntimeError,
            "Input batch size 3 doesn't match hidden0 batch size 2",
            (randn(N, IN), randn(2, H)),
        ),
        (ValueError, "GRUCell: Expected input to be 1D or 2D, got 3D instead", (randn(1, N, IN),)),
    ]:
        with pytest.raises(exc, match=msg):
            t_cell(*map(to_torch, args))
        with pytest.raises(exc, match=msg):
            cell(*args)
    with pytest.raises(TypeError, match="expected a jaxmodule.nn.utils.rnn.PackedSequence"):
        lstm(torch.nn.utils.rnn.pack_padded_sequence(to_torch(x), [5, 4, 2]))
