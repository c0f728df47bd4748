"""End to end: the ported word language models (LSTM with repackaged hidden state and tied
weights, Transformer with a positional-encoding buffer) match torch, training loop included."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from tests.helpers import assert_close
from tests.port._porting import assert_same_state, ported_fixture, torch_fixture

tw = torch_fixture("word_language_model")
NTOKEN = 40


@pytest.fixture(scope="module")
def jw(tmp_path_factory):
    module, result = ported_fixture("word_language_model", tmp_path_factory.mktemp("wlm"))
    module.report = result.issues
    return module


def build(jw, kind):
    torch.manual_seed(0)
    if kind == "lstm":
        args = (NTOKEN, 16, 16, 2)
        torch_model = tw.RNNModel(*args, dropout=0.0, tie_weights=True)
        model = jw.RNNModel(*args, dropout=0.0, tie_weights=True)
    else:
        args = (NTOKEN, 16, 2, 32, 2)
        torch_model = tw.TransformerModel(*args, dropout=0.0)
        model = jw.TransformerModel(*args, dropout=0.0)
    model.load_state_dict(torch_model.state_dict())
    return model, torch_model


def streams(jw, n, seed, bsz=4):
    tokens = np.random.default_rng(seed).integers(0, NTOKEN, n)
    return jw.batchify(jnp.asarray(tokens), bsz), tw.batchify(torch.tensor(tokens), bsz)


def test_report_is_empty(jw):
    assert jw.report == []


def test_positional_encoding_buffer_matches(jw):
    pe, t_pe = jw.PositionalEncoding(8, max_len=50), tw.PositionalEncoding(8, max_len=50)
    assert_close(pe.pe, t_pe.pe)
    data, t_data = streams(jw, 100, 0)
    np.testing.assert_array_equal(np.asarray(data), t_data.numpy())


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_forward_matches(jw, kind):
    model, torch_model = build(jw, kind)
    data, t_data = streams(jw, 48, 1)
    x, t_x = data[:6], t_data[:6]
    if kind == "lstm":
        out, (h, c) = model(x, model.init_hidden(4))
        t_out, (t_h, t_c) = torch_model(t_x, torch_model.init_hidden(4))
        assert_close(h, t_h)
        assert_close(c, t_c)
    else:
        out, t_out = model(x), torch_model(t_x)
    assert_close(out, t_out)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_training_with_annealing_matches(jw, kind):
    """Three epochs of truncated-BPTT SGD with clipping; the learning rate is annealed once."""
    model, torch_model = build(jw, kind)
    train, t_train = streams(jw, 4 * 17, 2)
    val, t_val = streams(jw, 4 * 9, 3)
    history = jw.fit(model, train, val, lr=20.0, epochs=3, bptt=8)
    t_history = tw.fit(torch_model, t_train, t_val, lr=20.0, epochs=3, bptt=8)
    assert [h[2] for h in t_history] == [20.0, 20.0, 5.0]
    assert_close(np.array(history), np.array(t_history))
    assert_same_state(model, torch_model)
