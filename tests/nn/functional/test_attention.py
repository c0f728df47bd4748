"""Differential tests of scaled_dot_product_attention and multi_head_attention_forward vs torch."""

import jax
import jax.numpy as jnp
import jaxmodule
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from tests.helpers import assert_close, randn, to_torch


def _qkv(q_shape, k_shape, v_shape):
    return randn(*q_shape, seed=1), randn(*k_shape, seed=2), randn(*v_shape, seed=3)


def _t(x):
    return None if x is None else torch.from_numpy(np.array(x))


MASK = np.random.default_rng(5).random((4, 6)) > 0.4  # bool, True = takes part
MASK[1] = False  # a fully masked query row
MASK[2, 0] = True


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"attn_mask": MASK},
        {"attn_mask": randn(2, 1, 4, 6, seed=9)},  # float mask, broadcast over heads
        {"is_causal": True},
        {"scale": 0.3},
        {"attn_mask": np.where(MASK, 0.0, -np.inf).astype(np.float32)},  # -inf rows like torch
    ],
    ids=["plain", "bool_mask", "float_mask", "causal", "scale", "inf_mask"],
)
def test_sdpa_matches_torch_values_and_grads(kwargs):
    q, k, v = _qkv((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5))
    cot = randn(2, 3, 4, 5, seed=4)
    tq, tk, tv = (to_torch(a, requires_grad=True) for a in (q, k, v))
    tkw = {n: (_t(a) if isinstance(a, np.ndarray) else a) for n, a in kwargs.items()}
    t_out = TF.scaled_dot_product_attention(tq, tk, tv, **tkw)
    (t_out * _t(cot)).sum().backward()

    def loss(q, k, v):
        out = F.scaled_dot_product_attention(q, k, v, **kwargs)
        return (out * cot).sum(), out

    (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(q, k, v)
    assert_close(out, t_out)
    for g, tg in zip(grads, (tq.grad, tk.grad, tv.grad)):
        assert_close(g, tg)
    if (
        "attn_mask" in kwargs and kwargs["attn_mask"].shape == MASK.shape
    ):  # torch's CPU kernels give zeros (not NaN) for the fully masked row
        assert np.all(np.asarray(out)[:, :, 1] == 0)
        assert np.all(np.isfinite(np.asarray(grads[0])))


def test_sdpa_unbatched_3d_and_broadcast_heads():
    q, k, v = _qkv((4, 8), (6, 8), (6, 8))
    assert_close(
        F.scaled_dot_product_attention(q, k, v),
        TF.scaled_dot_product_attention(_t(q), _t(k), _t(v)),
    )
    q, k, v = _qkv((2, 4, 8), (2, 6, 8), (2, 6, 8))
    assert_close(
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        TF.scaled_dot_product_attention(_t(q), _t(k), _t(v), is_causal=True),
    )
    # key/value with one head broadcast against four query heads (matmul broadcasting, as torch)
    q, k, v = _qkv((2, 4, 3, 8), (2, 1, 6, 8), (2, 1, 6, 8))
    assert_close(
        F.scaled_dot_product_attention(q, k, v),
        TF.scaled_dot_product_attention(_t(q), _t(k), _t(v)),
    )


def test_sdpa_causal_mask_combined_with_attn_mask():
    # torch's CPU flash kernel (used for these shapes) applies both masks; jaxmodule always does
    q, k, v = _qkv((1, 2, 4, 8), (1, 2, 6, 8), (1, 2, 6, 8))
    mask = np.ones((4, 6), bool)
    mask[:, 0] = False
    expected = TF.scaled_dot_product_attention(
        _t(q), _t(k), _t(v), attn_mask=_t(mask), is_causal=True
    )
    both = np.tril(np.ones((4, 6), bool)) & mask
    assert_close(expected, TF.scaled_dot_product_attention(_t(q), _t(k), _t(v), attn_mask=_t(both)))
    assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True), expected)


def test_sdpa_grouped_query_attention():
    q, k, v = _qkv((2, 6, 4, 8), (2, 2, 5, 8), (2, 2, 5, 8))
    out = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    assert_close(out, TF.scaled_dot_product_attention(_t(q), _t(k), _t(v), enable_gqa=True))
    with pytest.raises(RuntimeError, match="must divide the number of heads in query"):
        F.scaled_dot_product_attention(randn(1, 3, 4, 8), k[:1], v[:1], enable_gqa=True)


def test_sdpa_dropout_masks_and_scales_weights():
    # uniform weights (q = k = 0) and v = identity: the output rows ARE the dropped-out weights
    s, p = 64, 0.25
    q = jnp.zeros((1, 1, 256, 8))
    k = jnp.zeros((1, 1, s, 8))
    v = jnp.eye(s)[None, None]
    out = np.asarray(F.scaled_dot_product_attention(q, k, v, dropout_p=p))
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / s / (1 - p), rtol=1e-5)
    assert abs(1 - kept.mean() - p) < 0.02  # 16384 Bernoulli draws: std of the rate ~ 0.0034
    other = np.asarray(F.scaled_dot_product_attention(q, k, v, dropout_p=p))
    assert (other != out).any()  # a fresh key per call
    # p = 1 drops everything, as torch
    assert_close(
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.0),
        TF.scaled_dot_product_attention(_t(q), _t(k), _t(v), dropout_p=1.0),
    )


def test_sdpa_dropout_follows_manual_seed():
    q, k, v = _qkv((1, 2, 4, 8), (1, 2, 6, 8), (1, 2, 6, 8))
    jaxmodule.manual_seed(3)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    jaxmodule.manual_seed(3)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sdpa_jit_and_errors():
    q, k, v = _qkv((2, 2, 4, 8), (2, 2, 6, 8), (2, 2, 6, 8))
    f = jax.jit(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m))
    assert_close(
        f(q, k, v, MASK), TF.scaled_dot_product_attention(_t(q), _t(k), _t(v), attn_mask=_t(MASK))
    )
    with pytest.raises(RuntimeError, match="same dtype"):
        F.scaled_dot_product_attention(q, k.astype(np.float16), v)
    with pytest.raises(RuntimeError, match="at least 2 dimensional"):
        F.scaled_dot_product_attention(q[0, 0, 0], k[0, 0, 0], v[0, 0, 0])
    with pytest.raises(RuntimeError, match="attn_mask dtype to be bool or float"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 6), np.int32))
    with pytest.raises(RuntimeError, match="last dim"):
        F.scaled_dot_product_attention(q, k[..., :4], v)


# ---- multi_head_attention_forward -----------------------------------------------------------------

E, H, L, S, N = 8, 2, 4, 5, 3


def _mha_params(kdim=E, vdim=E, bias=True, bias_kv=False):
    p = {
        "in_proj_weight": randn(3 * E, E, seed=10) * 0.4,
        "in_proj_bias": randn(3 * E, seed=11) if bias else None,
        "out_proj_weight": randn(E, E, seed=12) * 0.4,
        "out_proj_bias": randn(E, seed=13) if bias else None,
        "bias_k": randn(1, 1, E, seed=14) if bias_kv else None,
        "bias_v": randn(1, 1, E, seed=15) if bias_kv else None,
    }
    if kdim != E or vdim != E:
        p.update(
            q_proj_weight=randn(E, E, seed=16) * 0.4,
            k_proj_weight=randn(E, kdim, seed=17) * 0.4,
            v_proj_weight=randn(E, vdim, seed=18) * 0.4,
            in_proj_weight=None,
        )
    return p


def _call_mha(fn, conv, q, k, v, p, add_zero_attn=False, **kw):
    sep = p.get("q_proj_weight") is not None
    extra = (
        {n: conv(p[n]) for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight")} if sep else {}
    )
    kw = {n: (conv(a) if isinstance(a, np.ndarray) else a) for n, a in kw.items()}
    return fn(
        conv(q),
        conv(k),
        conv(v),
        E,
        H,
        conv(p["in_proj_weight"]),
        conv(p["in_proj_bias"]),
        conv(p["bias_k"]),
        conv(p["bias_v"]),
        add_zero_attn,
        0.0,
        conv(p["out_proj_weight"]),
        conv(p["out_proj_bias"]),
        use_separate_proj_weight=sep,
        **extra,
        **kw,
    )


KPM = np.zeros((N, S), bool)
KPM[1, 3:] = True
AM = randn(L, S, seed=20)


@pytest.mark.parametrize(
    "case",
    [
        dict(),
        dict(need_weights=False),
        dict(key_padding_mask=KPM, average_attn_weights=False),
        dict(
            attn_mask=AM,
            key_padding_mask=np.where(KPM, -np.inf, 0.0).astype(np.float32),
            need_weights=False,
        ),
        dict(attn_mask=AM > 0.5),
        dict(attn_mask=randn(N * H, L, S, seed=21), need_weights=False),
        dict(_params=dict(kdim=3, vdim=6)),
        dict(
            _params=dict(bias=False, bias_kv=True),
            add_zero_attn=True,
            key_padding_mask=KPM,
            attn_mask=AM > 0,
        ),
        dict(attn_mask=AM, is_causal=True, need_weights=False),
    ],
    ids=[
        "default",
        "no_weights",
        "kpm_per_head",
        "float_masks",
        "bool_2d",
        "mask_3d",
        "kdim_vdim",
        "bias_kv_zero_attn",
        "causal_hint",
    ],
)
def test_mha_forward_matches_torch(case):
    case = dict(case)
    p = _mha_params(**case.pop("_params", {}))
    kdim = p["k_proj_weight"].shape[1] if p.get("k_proj_weight") is not None else E
    vdim = p["v_proj_weight"].shape[1] if p.get("v_proj_weight") is not None else E
    q, k, v = _qkv((L, N, E), (S, N, kdim), (S, N, vdim))
    out, w = _call_mha(F.multi_head_attention_forward, lambda a: a, q, k, v, p, **case)
    t_out, t_w = _call_mha(TF.multi_head_attention_forward, _t, q, k, v, p, **case)
    assert_close(out, t_out)
    if t_w is None:
        assert w is None
    else:
        assert_close(w, t_w)


def test_mha_forward_unbatched_and_self_attention_grads():
    p = _mha_params()
    x = randn(L, E, seed=30)
    tx = to_torch(x, requires_grad=True)
    tw = to_torch(p["in_proj_weight"], requires_grad=True)
    t_out, t_w = TF.multi_head_attention_forward(
        tx,
        tx,
        tx,
        E,
        H,
        tw,
        _t(p["in_proj_bias"]),
        None,
        None,
        False,
        0.0,
        _t(p["out_proj_weight"]),
        _t(p["out_proj_bias"]),
    )
    t_out.sum().backward()

    def loss(x, w):
        out, weights = F.multi_head_attention_forward(
            x,
            x,
            x,
            E,
            H,
            w,
            p["in_proj_bias"],
            None,
            None,
            False,
            0.0,
            p["out_proj_weight"],
            p["out_proj_bias"],
        )
        return out.sum(), (out, weights)

    (_, (out, weights)), (gx, gw) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        x, p["in_proj_weight"]
    )
    assert_close(out, t_out)
    assert_close(weights, t_w)
    assert_close(gx, tx.grad)
    assert_close(gw, tw.grad)


def test_mha_forward_dropout_only_in_training():
    p = _mha_params()
    q, k, v = _qkv((L, N, E), (S, N, E), (S, N, E))
    args = (
        q,
        k,
        v,
        E,
        H,
        p["in_proj_weight"],
        p["in_proj_bias"],
        None,
        None,
        False,
        1.0,
        p["out_proj_weight"],
        p["out_proj_bias"],
    )
    out, w = F.multi_head_attention_forward(*args, training=True)
    # every attention weight dropped: the output is the out-projection bias, as in torch
    assert_close(out, np.broadcast_to(p["out_proj_bias"], (L, N, E)))
    assert_close(w, np.zeros((N, L, S), np.float32))
    eval_out, _ = F.multi_head_attention_forward(*args, training=False)
    t_out, _ = TF.multi_head_attention_forward(
        *(_t(a) if isinstance(a, np.ndarray) else a for a in args), training=False
    )
    assert_close(eval_out, t_out)


def test_mha_forward_errors():
    p = _mha_params()
    q, k, v = _qkv((L, N, E), (S, N, E), (S, N, E))

    def call(q=q, k=k, v=v, e=E, **kw):
        return F.multi_head_attention_forward(
            q,
            k,
            v,
            e,
            H,
            p["in_proj_weight"],
            p["in_proj_bias"],
            None,
            None,
            False,
            0.0,
            p["out_proj_weight"],
            p["out_proj_bias"],
            **kw,
        )

    with pytest.raises(AssertionError, match="was expecting embedding dimension of 6, but got 8"):
        call(e=6)
    with pytest.raises(AssertionError, match="expected `key` and `value` to be 3-D"):
        call(k=k[0])
    with pytest.raises(AssertionError, match="query should be unbatched 2D or batched 3D"):
        call(q=q[None])
    with pytest.raises(
        RuntimeError, match=r"The shape of the 2D attn_mask is \(4, 4\), but should be \(4, 5\)"
    ):
        call(attn_mask=np.zeros((L, L), np.float32))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        call(is_causal=True)
    with pytest.raises(AssertionError, match="only bool and floating types of key_padding_mask"):
        call(key_padding_mask=np.zeros((N, S), np.int32))
    with pytest.raises(
        AssertionError, match=r"Expected key_padded_mask.shape\[1\] to be 5, but got 4"
    ):
        call(key_padding_mask=np.zeros((N, 4), bool))
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        call(key_padding_mask=KPM, attn_mask=AM)
