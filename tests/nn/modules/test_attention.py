"""Differential tests of MultiheadAttention vs torch: values, gradients, state_dict, repr, init."""

import math

import jax
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn, to_torch

E, HEADS, L, S, N = 8, 2, 4, 5, 3

# One compilation per configuration instead of one per eager op (keeps the file fast).
_fwd = jax.jit(
    lambda m, *args, **kw: m(*args, **kw),
    static_argnames=("need_weights", "average_attn_weights", "is_causal"),
)


def _pair(**kw):
    jm, tm = nn.MultiheadAttention(E, HEADS, **kw), torch.nn.MultiheadAttention(E, HEADS, **kw)
    assert [(k, tuple(v.shape)) for k, v in jm.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in tm.state_dict().items()
    ]
    jm.load_state_dict(tm.state_dict())
    return jm, tm


def _inputs(kw, batch_first=False, self_attn=False):
    q = randn(L, N, E, seed=1)
    k = randn(S, N, kw.get("kdim", E), seed=2)
    v = randn(S, N, kw.get("vdim", E), seed=3)
    if self_attn:
        k = v = q
    if batch_first:
        q, k, v = (np.ascontiguousarray(a.transpose(1, 0, 2)) for a in (q, k, v))
        if self_attn:
            k = v = q
    return q, k, v


KPM = np.zeros((N, S), bool)
KPM[1, 3:] = True
AM = randn(L, S, seed=20)

CASES = [
    (dict(), dict()),
    (dict(batch_first=True), dict(need_weights=False, key_padding_mask=KPM)),
    (dict(kdim=3, vdim=6), dict(attn_mask=AM, average_attn_weights=False)),
    (dict(add_bias_kv=True, add_zero_attn=True), dict(key_padding_mask=KPM, attn_mask=AM > 1.0)),
    (dict(bias=False, batch_first=True), dict(attn_mask=randn(N * HEADS, L, S, seed=21))),
]


@pytest.mark.parametrize(
    "ctor,call",
    CASES,
    ids=["default", "batch_first_kpm", "kdim_vdim", "bias_kv_zero_attn", "no_bias_3d_mask"],
)
def test_mha_matches_torch_values_and_grads(ctor, call):
    jm, tm = _pair(**ctor)
    q, k, v = _inputs(ctor, ctor.get("batch_first", False))
    tq, tk, tv = (to_torch(a, requires_grad=True) for a in (q, k, v))
    t_out, t_w = tm(
        tq,
        tk,
        tv,
        **{n: (to_torch(a) if isinstance(a, np.ndarray) else a) for n, a in call.items()},
    )
    cot = randn(*t_out.shape, seed=30)
    (t_out * to_torch(cot)).sum().backward()

    def loss(m, q, k, v):
        out, w = m(q, k, v, **call)
        return (out * cot).sum(), (out, w)

    (_, (out, w)), (g_m, gq, gk, gv) = jax.jit(
        jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True)
    )(jm, q, k, v)
    assert_close(out, t_out)
    if t_w is None:
        assert w is None
    else:
        assert_close(w, t_w)
    for g, tg in zip((gq, gk, gv), (tq, tk, tv)):
        assert_close(g, tg.grad)
    t_grads = dict(tm.named_parameters())
    for name, g in g_m.named_parameters():
        assert_close(g, t_grads[name].grad)


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_self_attention_eager_and_causal(batch_first):
    jm, tm = _pair(batch_first=batch_first)
    q, _, _ = _inputs({}, batch_first, self_attn=True)
    tq = to_torch(q)
    out, w = jm(q, q, q)  # eager, packed self-attention projection
    t_out, t_w = tm(tq, tq, tq)
    assert_close(out, t_out)
    assert_close(w, t_w)
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    out, w = _fwd(jm, q, q, q, attn_mask=causal, is_causal=True, need_weights=False)
    t_out, _ = tm(tq, tq, tq, attn_mask=to_torch(causal), is_causal=True, need_weights=False)
    assert w is None
    assert_close(out, t_out)


def test_mha_unbatched_inputs():
    jm, tm = _pair(kdim=3, vdim=6, batch_first=True)  # batch_first is ignored for unbatched input
    q, k, v = randn(L, E, seed=4), randn(S, 3, seed=5), randn(S, 6, seed=6)
    kpm = np.array([False, False, False, True, True])
    mask3 = randn(HEADS, L, S, seed=7)
    for kw in (
        dict(),
        dict(key_padding_mask=kpm, average_attn_weights=False),
        dict(attn_mask=mask3),
    ):
        out, w = _fwd(jm, q, k, v, **kw)
        t_out, t_w = tm(
            *map(to_torch, (q, k, v)),
            **{n: (to_torch(a) if isinstance(a, np.ndarray) else a) for n, a in kw.items()},
        )
        assert_close(out, t_out)
        assert_close(w, t_w)


def test_mha_vmap_over_unbatched_inputs():
    jm, tm = _pair(batch_first=True)
    q, k, v = _inputs({}, batch_first=True)  # (N, L, E): vmap over N runs the unbatched path
    out, w = jax.vmap(lambda q, k, v: jm(q, k, v))(q, k, v)
    t_out, t_w = tm(*map(to_torch, (q, k, v)))
    assert_close(out, t_out)
    assert_close(w, t_w)


def test_mha_fully_masked_row_follows_torch():
    jm, tm = _pair()
    q, k, v = _inputs({})
    kpm = np.zeros((N, S), bool)
    kpm[0] = True  # batch element 0 attends to nothing
    for need_weights in (True, False):
        out, w = _fwd(jm, q, k, v, key_padding_mask=kpm, need_weights=need_weights)
        t_out, t_w = tm(
            *map(to_torch, (q, k, v)), key_padding_mask=to_torch(kpm), need_weights=need_weights
        )
        # torch gives NaN with need_weights=True (explicit softmax) and zeros (SDPA) without
        np.testing.assert_allclose(
            np.asarray(out), t_out.detach().numpy(), rtol=1e-5, atol=1e-6, equal_nan=True
        )
        assert np.isnan(np.asarray(out)[:, 0]).all() == need_weights


def test_mha_dropout_train_and_eval():
    jm, tm = _pair(dropout=1.0)
    q, k, v = _inputs({})
    out, w = _fwd(jm, q, k, v)  # training: every attention weight dropped, out = out_proj.bias
    t_out, t_w = tm(*map(to_torch, (q, k, v)))
    assert_close(out, t_out)
    assert_close(w, t_w)
    jm.eval()
    tm.eval()
    out, w = _fwd(jm, q, k, v)
    with torch.no_grad():
        t_out, t_w = tm(*map(to_torch, (q, k, v)))
    assert_close(out, t_out)
    assert_close(w, t_w)
    jm.train()
    jm.dropout = 0.5
    a, b = jm(q, k, v)[0], jm(q, k, v)[0]
    assert not np.allclose(np.asarray(a), np.asarray(b))


def test_mha_repr_state_dict_and_init():
    for kw in (dict(), dict(kdim=3, vdim=6, add_bias_kv=True), dict(bias=False)):
        jm, tm = _pair(**kw)
        assert repr(jm) == repr(tm)
    jaxmodule.manual_seed(0)
    m = nn.MultiheadAttention(64, 4, add_bias_kv=True)
    w = np.asarray(m.in_proj_weight)
    bound = math.sqrt(6 / (64 + 3 * 64))  # xavier_uniform_ on the (3E, E) packed weight
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert not np.asarray(m.in_proj_bias).any() and not np.asarray(m.out_proj.bias).any()
    std = math.sqrt(2 / (1 + 64))  # xavier_normal_ on (1, 1, E): fan_in = 1, fan_out = E
    assert 0.7 * std < np.asarray(m.bias_k).std() < 1.3 * std
    assert m.bias_v is not None and m.in_proj_weight.shape == (192, 64)
    no_kv = nn.MultiheadAttention(8, 2)
    assert no_kv.bias_k is None and no_kv.bias_v is None
    assert type(no_kv.out_proj).__name__ == "NonDynamicallyQuantizableLinear"
    assert isinstance(no_kv.out_proj, nn.Linear)


def test_mha_merge_masks_matches_torch():
    jm, tm = _pair(batch_first=True)
    q = randn(N, L, E, seed=8)
    am = randn(L, L, seed=9)
    kpm = randn(N, L, seed=10)
    for args in ((am, None), (None, kpm), (am, kpm)):
        mask, kind = jm.merge_masks(*args, q)
        t_mask, t_kind = tm.merge_masks(
            *(None if a is None else to_torch(a) for a in args), to_torch(q)
        )
        assert kind == t_kind
        assert_close(mask, t_mask)


def test_mha_errors_match_torch():
    for exc, msg, ctor in [
        (
            ValueError,
            "embed_dim and num_heads must be greater than 0",
            dict(embed_dim=0, num_heads=2),
        ),
        (
            AssertionError,
            "embed_dim must be divisible by num_heads",
            dict(embed_dim=7, num_heads=2),
        ),
    ]:
        with pytest.raises(exc, match=msg):
            torch.nn.MultiheadAttention(**ctor)
        with pytest.raises(exc, match=msg):
            nn.MultiheadAttention(**ctor)
    jm, tm = _pair()
    q, k, v = _inputs({})
    with pytest.raises(AssertionError, match="key shape .* does not match value shape"):
        jm(q, k, v[:, :2])
    with pytest.raises(
        RuntimeError,
        match=r"The shape of the 3D attn_mask is \(2, 4, 5\), but should be \(6, 4, 5\)",
    ):
        jm(q, k, v, attn_mask=np.zeros((2, L, S), bool))
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        jm(q, k, v, key_padding_mask=KPM, attn_mask=AM)
