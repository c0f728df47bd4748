"""Differential tests of the Transformer family vs torch (slow path): values, gradients, state_dict, repr."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from jaxmodule import nn
from jaxmodule.nn import functional as F
from jaxmodule.nn.modules.transformer import _detect_is_causal_mask

from tests.helpers import assert_close, randn, to_torch

D, NHEAD, FF, S, T, N = 8, 2, 16, 5, 4, 3

# A stack of attention + LayerNorm layers accumulates float32 rounding (LayerNorm divides by a
# per-row std, which amplifies the absolute error of small residuals): compare with atol 1e-5.
STACK_ATOL = 1e-5


def _same_structure(jm, tm):
    assert [(k, tuple(v.shape)) for k, v in jm.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in tm.state_dict().items()
    ]
    assert repr(jm) == repr(tm)


def _layer_pair(kind, **kw):
    jm = getattr(nn, kind)(D, NHEAD, FF, dropout=0.0, **kw)
    t_kw = (
        {**kw, "activation": torch.nn.GELU(approximate="tanh")}
        if isinstance(kw.get("activation"), nn.Module)
        else kw
    )
    tm = getattr(torch.nn, kind)(D, NHEAD, FF, dropout=0.0, **t_kw)
    _same_structure(jm, tm)
    jm.load_state_dict(tm.state_dict())
    return jm, tm


def _seq(length, batch_first, seed):
    x = randn(length, N, D, seed=seed)
    return np.ascontiguousarray(x.transpose(1, 0, 2)) if batch_first else x


def _tkw(kw):
    return {
        n: (to_torch(a) if isinstance(a, (np.ndarray, jax.Array)) else a) for n, a in kw.items()
    }


def _check_grads(jm, tm, inputs, call_kw, atol=1e-6):
    """Compare output and gradients (inputs and parameters) of `m(*inputs, **call_kw)`."""
    t_in = [to_torch(a, requires_grad=True) for a in inputs]
    t_out = tm(*t_in, **_tkw(call_kw))
    cot = randn(*t_out.shape, seed=99)
    (t_out * to_torch(cot)).sum().backward()

    def loss(m, *xs):
        out = m(*xs, **call_kw)
        return (out * cot).sum(), out

    argnums = tuple(range(len(inputs) + 1))
    (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=argnums, has_aux=True))(jm, *inputs)
    assert_close(out, t_out, atol=atol)
    for g, t in zip(grads[1:], t_in):
        assert_close(g, t.grad, atol=atol)
    t_grads = dict(tm.named_parameters())
    for name, g in grads[0].named_parameters():
        assert_close(g, t_grads[name].grad, atol=atol)


CAUSAL_S = np.asarray(nn.Transformer.generate_square_subsequent_mask(S))
KPM_S = np.zeros((N, S), bool)
KPM_S[1, 3:] = True
KPM_F = np.where(KPM_S, -np.inf, 0.0).astype(np.float32)  # float twin, to pair with float masks
# torch warns about its nested-tensor fast path, which does not exist in jaxmodule
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")


@pytest.mark.parametrize(
    "ctor,call",
    [
        (dict(), dict()),
        (dict(batch_first=True, norm_first=True), dict(src_mask=CAUSAL_S, is_causal=True)),
        (dict(activation="gelu", bias=False), dict(src_key_padding_mask=KPM_S)),
        (dict(layer_norm_eps=1e-3), dict(src_mask=CAUSAL_S == -np.inf, src_key_padding_mask=KPM_S)),
    ],
    ids=["default", "prenorm_causal", "gelu_nobias_kpm", "bool_masks"],
)
def test_encoder_layer_matches_torch(ctor, call):
    jm, tm = _layer_pair("TransformerEncoderLayer", **ctor)
    _check_grads(jm, tm, [_seq(S, ctor.get("batch_first", False), 1)], call)


@pytest.mark.parametrize(
    "ctor,call",
    [
        (
            dict(),
            dict(
                tgt_mask=np.asarray(nn.Transformer.generate_square_subsequent_mask(T)),
                tgt_is_causal=True,
            ),
        ),
        (
            dict(batch_first=True, norm_first=True, activation=F.gelu),
            dict(memory_key_padding_mask=KPM_F, memory_mask=randn(T, S, seed=7)),
        ),
    ],
    ids=["causal", "prenorm_memory_masks"],
)
def test_decoder_layer_matches_torch(ctor, call):
    jm, tm = _layer_pair(
        "TransformerDecoderLayer",
        **{**ctor, "activation": "gelu"} if "activation" in ctor else ctor,
    )
    bf = ctor.get("batch_first", False)
    _check_grads(jm, tm, [_seq(T, bf, 2), _seq(S, bf, 3)], call)


def test_encoder_and_decoder_stacks_match_torch():
    jm_layer, t_layer = _layer_pair("TransformerEncoderLayer", batch_first=True)
    jm = nn.TransformerEncoder(jm_layer, 2, nn.LayerNorm(D), enable_nested_tensor=False)
    tm = torch.nn.TransformerEncoder(t_layer, 2, torch.nn.LayerNorm(D), enable_nested_tensor=False)
    _same_structure(jm, tm)
    # deep copies: separate modules and cells, same initial values
    assert (
        jm.layers[0] is not jm.layers[1]
        and jm.layers[0].linear1.weight is not jm.layers[1].linear1.weight
    )
    np.testing.assert_array_equal(
        np.asarray(jm.layers[0].linear1.weight), np.asarray(jm.layers[1].linear1.weight)
    )
    jm.load_state_dict(tm.state_dict())
    _check_grads(
        jm, tm, [_seq(S, True, 4)], dict(mask=CAUSAL_S, src_key_padding_mask=KPM_F), atol=STACK_ATOL
    )

    jm_dl, t_dl = _layer_pair("TransformerDecoderLayer", norm_first=True)
    jm = nn.TransformerDecoder(jm_dl, 2)
    tm = torch.nn.TransformerDecoder(t_dl, 2)
    _same_structure(jm, tm)
    jm.load_state_dict(tm.state_dict())
    tgt_mask = np.asarray(nn.Transformer.generate_square_subsequent_mask(T))
    _check_grads(
        jm, tm, [_seq(T, False, 5), _seq(S, False, 6)], dict(tgt_mask=tgt_mask), atol=STACK_ATOL
    )


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(batch_first=True, norm_first=True, activation="gelu")],
    ids=["default", "prenorm_gelu"],
)
def test_transformer_matches_torch(kw):
    jm = nn.Transformer(D, NHEAD, 2, 1, FF, dropout=0.0, **kw)
    tm = torch.nn.Transformer(D, NHEAD, 2, 1, FF, dropout=0.0, **kw)
    _same_structure(jm, tm)
    jm.load_state_dict(tm.state_dict())
    bf = kw.get("batch_first", False)
    call = dict(
        tgt_mask=nn.Transformer.generate_square_subsequent_mask(T),
        src_key_padding_mask=KPM_S,
        memory_key_padding_mask=KPM_S,
    )
    _check_grads(jm, tm, [_seq(S, bf, 7), _seq(T, bf, 8)], call, atol=STACK_ATOL)


def test_transformer_eager_unbatched_and_eval_dropout():
    jm = nn.Transformer(D, NHEAD, 1, 1, FF, dropout=0.3)
    tm = torch.nn.Transformer(D, NHEAD, 1, 1, FF, dropout=0.3)
    jm.load_state_dict(tm.state_dict())
    src, tgt = randn(S, D, seed=9), randn(T, D, seed=10)
    a, b = jm(src, tgt), jm(src, tgt)  # eager, training: dropout draws fresh masks
    assert a.shape == (T, D) and not np.allclose(np.asarray(a), np.asarray(b))
    jm.eval()
    tm.eval()
    assert_close(jm(src, tgt), tm(to_torch(src), to_torch(tgt)), atol=STACK_ATOL)


def test_generate_square_subsequent_mask_and_causal_detection():
    for dtype, t_dtype in ((None, None), ("float64", torch.float64), (jnp.bool_, torch.bool)):
        if dtype == "float64":
            continue  # float64 needs JAX's x64 mode; the dtype mapping is covered by the others
        m = nn.Transformer.generate_square_subsequent_mask(4, dtype=dtype)
        t = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=t_dtype)
        assert str(m.dtype) == str(t.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(np.asarray(m), t.numpy())
    causal = nn.Transformer.generate_square_subsequent_mask(4)
    assert _detect_is_causal_mask(causal) is True
    assert _detect_is_causal_mask(causal, size=3) is False
    assert _detect_is_causal_mask(jnp.zeros((4, 4))) is False
    assert _detect_is_causal_mask(jnp.zeros((4, 4)), is_causal=True) is True
    assert _detect_is_causal_mask(None) is False
    traced = jax.jit(lambda m: jnp.asarray(_detect_is_causal_mask(m)))(causal)
    assert not bool(traced)  # a traced mask cannot be inspected: treated as an ordinary mask


def test_custom_activation_and_activation_flags():
    layer = nn.TransformerEncoderLayer(D, NHEAD, FF, dropout=0.0, activation=jax.nn.silu)
    t_layer = torch.nn.TransformerEncoderLayer(D, NHEAD, FF, dropout=0.0, activation=TF.silu)
    layer.load_state_dict(t_layer.state_dict())
    x = _seq(S, False, 11)
    assert_close(layer(x), t_layer(to_torch(x)))
    assert layer.activation_relu_or_gelu == 0
    assert nn.TransformerEncoderLayer(D, NHEAD).activation_relu_or_gelu == 1
    assert nn.TransformerEncoderLayer(D, NHEAD, activation="gelu").activation_relu_or_gelu == 2
    # an activation module is a registered submodule (it shows in the repr), as in torch
    jm, tm = _layer_pair("TransformerEncoderLayer", activation=nn.GELU(approximate="tanh"))
    assert jm.activation_relu_or_gelu == 2 and isinstance(jm.activation, nn.GELU)
    jm.load_state_dict(tm.state_dict())
    assert repr(jm) == repr(tm)
    assert_close(jm(x), tm(to_torch(x)))


def test_encoder_layer_vmap_over_unbatched_inputs():
    jm, tm = _layer_pair("TransformerEncoderLayer", batch_first=True)
    x = _seq(S, True, 12)  # (N, S, D): vmap over N runs the unbatched (S, D) path
    assert_close(jax.vmap(lambda s: jm(s))(x), tm(to_torch(x)))


def test_transformer_errors_match_torch():
    for lib in (nn, torch.nn):
        with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
            lib.TransformerEncoderLayer(D, NHEAD, activation="tanh")
    jm = nn.Transformer(D, NHEAD, 1, 1, FF)
    tm = torch.nn.Transformer(D, NHEAD, 1, 1, FF)
    for args, msg in [
        ((randn(S, N, D), randn(T, 2, D)), "the batch number of src and tgt must be equal"),
        (
            (randn(S, N, 6), randn(T, N, 6)),
            "the feature number of src and tgt must be equal to d_model",
        ),
    ]:
        with pytest.raises(RuntimeError, match=msg):
            tm(*map(to_torch, args))
        with pytest.raises(RuntimeError, match=msg):
            jm(*args)
