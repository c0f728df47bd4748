"""Differential tests of jaxmodule.nn.utils.rnn (packing helpers) and packed input to RNN layers vs torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn.utils import rnn as R
from torch.nn.utils import rnn as TR

from tests.helpers import assert_close, randn, to_torch

LENS = [3, 6, 1, 4]  # unsorted on purpose
X = randn(6, 4, 3, seed=1)  # (T, B, features)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_pack_and_pad_roundtrip_matches_torch(batch_first, enforce_sorted):
    lens = sorted(LENS, reverse=True) if enforce_sorted else LENS
    x = np.ascontiguousarray(X.transpose(1, 0, 2)) if batch_first else X
    p = R.pack_padded_sequence(x, lens, batch_first=batch_first, enforce_sorted=enforce_sorted)
    tp = TR.pack_padded_sequence(
        to_torch(x), lens, batch_first=batch_first, enforce_sorted=enforce_sorted
    )
    assert_close(p.data, tp.data)
    np.testing.assert_array_equal(p.batch_sizes, tp.batch_sizes.numpy())
    for mine, theirs in (
        (p.sorted_indices, tp.sorted_indices),
        (p.unsorted_indices, tp.unsorted_indices),
    ):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            np.testing.assert_array_equal(np.asarray(mine), theirs.numpy())
    padded, lengths = R.pad_packed_sequence(
        p, batch_first=batch_first, padding_value=-1.0, total_length=7
    )
    t_padded, t_lengths = TR.pad_packed_sequence(
        tp, batch_first=batch_first, padding_value=-1.0, total_length=7
    )
    assert_close(padded, t_padded)
    np.testing.assert_array_equal(np.asarray(lengths), t_lengths.numpy())


def test_pad_unpad_pack_unpack_sequence():
    seqs = [randn(n, 2, seed=n) for n in LENS]
    for side in ("right", "left"):
        for bf in (False, True):
            assert_close(
                R.pad_sequence(seqs, batch_first=bf, padding_value=0.5, padding_side=side),
                TR.pad_sequence(
                    [to_torch(s) for s in seqs],
                    batch_first=bf,
                    padding_value=0.5,
                    padding_side=side,
                ),
            )
    padded = R.pad_sequence(seqs)
    for mine, s in zip(R.unpad_sequence(padded, jnp.asarray(LENS)), seqs):
        assert_close(mine, s)
    packed = R.pack_sequence(seqs, enforce_sorted=False)
    t_packed = TR.pack_sequence([to_torch(s) for s in seqs], enforce_sorted=False)
    assert_close(packed.data, t_packed.data)
    for mine, s in zip(R.unpack_sequence(packed), seqs):
        assert_close(mine, s)
    perm = jnp.asarray([2, 0, 3, 1])
    np.testing.assert_array_equal(
        np.asarray(R.invert_permutation(perm)),
        TR.invert_permutation(torch.tensor([2, 0, 3, 1])).numpy(),
    )
    assert R.invert_permutation(None) is None


def test_packed_sequence_is_a_pytree_with_static_batch_sizes():
    p = R.pack_padded_sequence(X, LENS, enforce_sorted=False)
    leaves, treedef = jax.tree.flatten(p)
    assert len(leaves) == 3  # data, sorted_indices, unsorted_indices; batch_sizes is static
    q = jax.jit(lambda p: p._replace(data=p.data * 2))(p)
    assert isinstance(q, R.PackedSequence)
    np.testing.assert_array_equal(q.batch_sizes, p.batch_sizes)
    assert_close(q.data, np.asarray(p.data) * 2)
    assert p.to("float16").data.dtype == jnp.float16


def test_pack_errors_match_torch():
    cases = [
        (RuntimeError, "must be sorted in decreasing order", (X, LENS), {}),
        (
            RuntimeError,
            "Length of all samples has to be greater than 0",
            (X, [6, 0, 1, 4]),
            dict(enforce_sorted=False),
        ),
    ]
    for exc, msg, args, kw in cases:
        with pytest.raises(exc, match=msg):
            TR.pack_padded_sequence(to_torch(args[0]), args[1], **kw)
        with pytest.raises(exc, match=msg):
            R.pack_padded_sequence(*args, **kw)
    p = R.pack_padded_sequence(X, LENS, enforce_sorted=False)
    with pytest.raises(ValueError, match="Expected total_length to be at least the length"):
        R.pad_packed_sequence(p, total_length=3)
    with pytest.raises(ValueError, match="exceeds the padded length"):
        R.pack_padded_sequence(X, [9, 6, 1, 4], enforce_sorted=False)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2)),
        ("GRU", dict(bidirectional=True, batch_first=True)),
        ("RNN", dict(num_layers=2)),
    ],
)
def test_rnn_layers_on_packed_input_match_torch(name, kw):
    jm, tm = getattr(nn, name)(3, 5, **kw), getattr(torch.nn, name)(3, 5, **kw)
    jm.load_state_dict(tm.state_dict())
    p = R.pack_padded_sequence(X, LENS, enforce_sorted=False)
    tp = TR.pack_padded_sequence(to_torch(X, requires_grad=True), LENS, enforce_sorted=False)
    tp.data.retain_grad()
    d = 2 if kw.get("bidirectional") else 1
    n_h = kw.get("num_layers", 1) * d
    h0 = randn(n_h, 4, kw.get("proj_size") or 5, seed=7)
    hx = (h0, randn(n_h, 4, 5, seed=8)) if name == "LSTM" else h0
    t_hx = tuple(map(to_torch, hx)) if name == "LSTM" else to_torch(hx)
    t_out, t_h = tm(tp, t_hx)
    t_h = list(t_h) if name == "LSTM" else [t_h]
    cot = randn(*t_out.data.shape, seed=9)
    loss = (t_out.data * to_torch(cot)).sum() + sum(h.sum() for h in t_h)
    loss.backward()

    def jm_loss(m, data):
        out, h = m(p._replace(data=data), hx)
        hs = list(h) if name == "LSTM" else [h]
        return (out.data * cot).sum() + sum(x.sum() for x in hs), (out, hs)

    (_, (out, hs)), (g_m, g_data) = jax.jit(
        jax.value_and_grad(jm_loss, argnums=(0, 1), has_aux=True)
    )(jm, p.data)
    assert isinstance(out, R.PackedSequence)
    np.testing.assert_array_equal(out.batch_sizes, t_out.batch_sizes.numpy())
    assert_close(out.data, t_out.data)
    for h, th in zip(hs, t_h):
        assert_close(h, th)
    assert_close(g_data, tp.data.grad)
    t_grads = dict(tm.named_parameters())
    for pname, g in g_m.named_parameters():
        assert_close(g, t_grads[pname].grad)
    # eager call without a state, as most code does
    out, _ = jm(p)
    t_out, _ = tm(tp)
    assert_close(out.data, t_out.data)


def test_torch_packed_sequence_is_rejected():
    m = nn.GRU(3, 5)
    with pytest.raises(TypeError, match="expected a jaxmodule.nn.utils.rnn.PackedSequence"):
        m(TR.pack_padded_sequence(to_torch(X), LENS, enforce_sorted=False))
