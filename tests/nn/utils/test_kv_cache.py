"""`jaxmodule.nn.utils.kv_cache` and the KV-cached GPT of `examples/gpt_generate.py`."""

import importlib.util
import math
import os
import subprocess
import sys

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn.utils.kv_cache import (
    StaticKVCache,
    disable_kv_cache,
    enable_kv_cache,
    multihead_attention_with_cache,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
_spec = importlib.util.spec_from_file_location(
    "gpt_generate", os.path.join(ROOT, "examples", "gpt_generate.py")
)
gg = sys.modules.setdefault("gpt_generate", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(gg)
_spec = importlib.util.spec_from_file_location(
    "gpt_torch", os.path.join(ROOT, "benchmarks", "gpt_torch.py")
)
gpt_torch = sys.modules.setdefault("gpt_torch", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(gpt_torch)

CONFIG = gg.GPTConfig(block_size=24, vocab_size=64, n_layer=2, n_head=2, n_embd=16)
PROMPTS = [[5, 17, 3, 42], [60, 1, 9, 33], [7, 7, 21, 50, 2, 11, 40]]
NEW = 8


@pytest.fixture(scope="module")
def models():
    """The torch twin with random weights large enough to separate the greedy choices, and the
    jaxmodule GPT loaded from its state_dict."""
    torch.manual_seed(0)
    reference = gpt_torch.TorchGPT(CONFIG).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0.0, 0.3)
    model = gg.GPT(CONFIG)
    model.load_state_dict(reference.state_dict())
    return reference, model


@pytest.fixture(scope="module")
def eager_reference(models):
    """Per prompt: greedy tokens and each step's last logits, the eager model on the grown sequence."""
    _, model = models
    out = []
    for prompt in PROMPTS:
        idx, logits = jnp.asarray([prompt], jnp.int32), []
        for _ in range(NEW):
            last = model(idx)[:, -1]
            logits.append(np.asarray(last))
            idx = jnp.concatenate(
                [idx, jnp.argmax(last, -1, keepdims=True).astype(jnp.int32)], axis=1
            )
        out.append((np.asarray(idx), np.stack(logits)))
    return out


def cached_run(model, prompt, new=NEW):
    idx = jnp.asarray([prompt], jnp.int32)
    steps = list(model.stream(idx, new, temperature=0.0))
    tokens = np.concatenate([np.asarray(idx)] + [np.asarray(t) for t, _ in steps], axis=1)
    return tokens, np.stack([np.asarray(lg) for _, lg in steps])


# ---- (1), (2): the cached generation is the recomputed one ------------------------------------
def test_cached_greedy_tokens_equal_eager_recompute(models, eager_reference):
    _, model = models
    for prompt, (tokens, logits) in zip(PROMPTS, eager_reference):
        top2 = np.sort(logits, axis=-1)[..., -2:]
        assert (top2[..., 1] - top2[..., 0]).min() > 1e-3  # the greedy choices are well separated
        np.testing.assert_array_equal(cached_run(model, prompt)[0], tokens)


def test_cached_logits_match_eager_recompute(models, eager_reference):
    _, model = models
    for prompt, (_, logits) in zip(PROMPTS, eager_reference):
        cached = cached_run(model, prompt)[1]
        for step in range(NEW):
            scale = np.abs(logits[step]).max()
            np.testing.assert_allclose(cached[step], logits[step], rtol=1e-5, atol=1e-5 * scale)


def test_cached_greedy_tokens_equal_torch_recompute(models):
    reference, model = models
    for prompt in PROMPTS + [[1], list(range(30, 46))]:
        idx = torch.tensor([prompt])
        with torch.no_grad():
            for _ in range(NEW):
                idx = torch.cat([idx, reference(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
        np.testing.assert_array_equal(cached_run(model, prompt)[0], idx.numpy())


# ---- (3): one prefill and one decode program for any number of tokens and prompts -----------
def test_generation_traces_once_per_step_function(models, monkeypatch):
    _, model = models
    prefill, decode = jaxmodule.compile(gg.prefill.fn), jaxmodule.compile(gg.decode.fn)
    monkeypatch.setattr(gg, "prefill", prefill)
    monkeypatch.setattr(gg, "decode", decode)
    first = model.generate(jnp.asarray([PROMPTS[0]], jnp.int32), 20, temperature=0.0)
    assert first.shape == (1, 24)
    assert (prefill.trace_count, decode.trace_count) == (1, 1)
    model.generate(jnp.asarray([PROMPTS[2]], jnp.int32), 10, temperature=0.0)  # another length
    assert (prefill.trace_count, decode.trace_count) == (1, 1)


def test_reset_cache_generates_again_without_trace(models):
    _, model = models
    prefill, decode = jaxmodule.compile(gg.prefill.fn), jaxmodule.compile(gg.decode.fn)
    caches = enable_kv_cache(model, 1, CONFIG.block_size, gg.CausalSelfAttention)
    try:
        runs = []
        for _ in range(2):
            padded = (
                jnp.zeros((1, CONFIG.block_size), jnp.int32).at[0, :4].set(jnp.asarray(PROMPTS[0]))
            )
            tok, _ = prefill(model, padded, jnp.asarray(4, jnp.int32), 1.0, None, True)
            toks = [int(tok[0, 0])]
            for _ in range(12):
                tok, _ = decode(model, tok, 1.0, None, True)
                toks.append(int(tok[0, 0]))
            assert [int(c.pos) for c in caches] == [4 + 12] * CONFIG.n_layer
            runs.append(toks)
            for cache in caches:
                cache.reset()
        assert [int(c.pos) for c in caches] == [0] * CONFIG.n_layer
        assert float(jnp.abs(jnp.asarray(caches[0].k_cache)).max()) == 0.0
    finally:
        disable_kv_cache(model)
    assert runs[0] == runs[1]
    assert (prefill.trace_count, decode.trace_count) == (1, 1)


def test_sampling_is_seeded_and_respects_top_k(models):
    _, model = models
    idx = jnp.asarray([PROMPTS[0]], jnp.int32)
    jaxmodule.manual_seed(3)
    a = model.generate(idx, 12, temperature=0.8, top_k=1)
    greedy = model.generate(idx, 12, temperature=0.0)
    np.testing.assert_array_equal(a, greedy)  # top_k=1 leaves only the argmax
    jaxmodule.manual_seed(5)
    b = model.generate(idx, 12, temperature=2.0)
    jaxmodule.manual_seed(5)
    c = model.generate(idx, 12, temperature=2.0)
    np.testing.assert_array_equal(b, c)
    assert not np.array_equal(b, greedy)


# ---- (4), (5): caches stay out of checkpoints; the model is torch's ------------------------
def test_cache_buffers_are_not_persistent(models):
    reference, model = models
    keys = list(model.state_dict())
    caches = enable_kv_cache(model, 2, CONFIG.block_size, gg.CausalSelfAttention)
    try:
        assert list(model.state_dict()) == keys == list(reference.state_dict())
        buffers = dict(model.named_buffers())
        assert set(buffers) == {
            f"transformer.h.{i}.attn.kv_cache.{n}"
            for i in range(CONFIG.n_layer)
            for n in ("k_cache", "v_cache", "pos")
        }
        assert buffers["transformer.h.0.attn.kv_cache.k_cache"].shape == (
            2,
            2,
            CONFIG.block_size,
            8,
        )
        model.load_state_dict(reference.state_dict())  # strict, with the caches attached
        assert caches[0] is model.transformer.h[0].attn.kv_cache
    finally:
        disable_kv_cache(model)
    assert model.transformer.h[0].attn.kv_cache is None
    assert "kv_cache" not in repr(model)


def test_full_forward_matches_torch(models):
    reference, model = models
    idx = np.random.default_rng(0).integers(0, CONFIG.vocab_size, (3, CONFIG.block_size))
    with torch.no_grad():
        expected = reference(torch.from_numpy(idx)).numpy()
    got = np.asarray(model(jnp.asarray(idx, jnp.int32)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_generate_refuses_more_than_block_size(models):
    _, model = models
    with pytest.raises(
        ValueError, match=r"prompt length 20 \+ max_new_tokens 5 exceeds block_size=24"
    ):
        model.generate(jnp.zeros((1, 20), jnp.int32), 5)


# ---- StaticKVCache on its own ----------------------------------------------------------------
def test_update_writes_at_position_and_masks():
    cache = StaticKVCache(1, 1, max_len=6, head_dim=2)
    k1 = jnp.arange(6.0).reshape(1, 1, 3, 2)
    k_all, v_all, mask = cache.update(k1, -k1)
    np.testing.assert_array_equal(k_all[0, 0, :3], k1[0, 0])
    np.testing.assert_array_equal(v_all[0, 0, :3], -k1[0, 0])
    np.testing.assert_array_equal(k_all[0, 0, 3:], 0.0)
    k_all, _, mask = cache.update(jnp.full((1, 1, 2, 2), 9.0), jnp.zeros((1, 1, 2, 2)))
    np.testing.assert_array_equal(k_all[0, 0, 3:5], 9.0)
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]])
    assert int(cache.pos) == 5
    cache.crop(2)
    assert int(cache.pos) == 2
    cache.crop(4)  # crop never grows
    assert int(cache.pos) == 2
    assert cache.state_dict() == {}
    assert repr(cache) == "StaticKVCache(batch_size=1, num_heads=1, max_len=6, head_dim=2)"


def test_update_errors():
    cache = StaticKVCache(1, 2, max_len=4, head_dim=3)
    with pytest.raises(
        ValueError, match=r"expected k and v of shape \(1, 2, 2, 3\), got \(1, 2, 2, 4\)"
    ):
        cache.update(jnp.zeros((1, 2, 2, 4)), jnp.zeros((1, 2, 2, 4)))
    cache.update(jnp.zeros((1, 2, 3, 3)), jnp.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"2 new positions at position 3 exceed max_len=4"):
        cache.update(jnp.zeros((1, 2, 2, 3)), jnp.zeros((1, 2, 2, 3)))


def test_enable_kv_cache_errors():
    with pytest.raises(ValueError, match="the model has no MultiheadAttention module"):
        enable_kv_cache(nn.Linear(2, 2), 1, 8)
    with pytest.raises(ValueError, match=r"Linear at '' has no `num_heads`/`head_dim` attributes"):
        enable_kv_cache(nn.Linear(2, 2), 1, 8, nn.Linear)
    caches = enable_kv_cache(nn.Linear(2, 2), 1, 8, nn.Linear, num_heads=1, head_dim=2)
    assert caches[0].k_cache.shape == (1, 1, 8, 2)


# ---- nn.MultiheadAttention through a cache ------------------------------------------------
@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_with_cache_matches_full_causal(batch_first):
    jaxmodule.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    nn.init.normal_(mha.in_proj_bias, std=0.5)
    x = jaxmodule.randn(2, 7, 8)  # (N, L, E)
    seq = x if batch_first else jnp.swapaxes(x, 0, 1)
    causal = nn.Transformer.generate_square_subsequent_mask(7)
    expected = np.asarray(mha(seq, seq, seq, attn_mask=causal, need_weights=False)[0])
    enable_kv_cache(mha, 2, 10)
    pieces = []
    for lo, hi in ((0, 3), (3, 4), (4, 5), (5, 7)):  # a prefill, then tokens and a chunk
        chunk = x[:, lo:hi] if batch_first else jnp.swapaxes(x[:, lo:hi], 0, 1)
        pieces.append(np.asarray(multihead_attention_with_cache(mha, chunk)))
    got = np.concatenate(pieces, axis=1 if batch_first else 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    disable_kv_cache(mha)
    assert mha.kv_cache is None


def test_multihead_attention_with_cache_errors():
    mha = nn.MultiheadAttention(8, 2, dropout=0.1)
    with pytest.raises(ValueError, match=r"no cache given and `mha.kv_cache` is NoneType"):
        multihead_attention_with_cache(mha, jnp.ones((3, 1, 8)))
    cache = StaticKVCache(1, 2, 8, 4)
    with pytest.raises(ValueError, match="attention dropout in training; call model.eval()"):
        multihead_attention_with_cache(mha, jnp.ones((3, 1, 8)), cache)
    with pytest.raises(ValueError, match="supports packed in_proj_weight without add_bias_kv"):
        multihead_attention_with_cache(
            nn.MultiheadAttention(8, 2, kdim=4), jnp.ones((3, 1, 8)), cache
        )


def test_compiled_decode_step_writes_cache_back():
    cache = StaticKVCache(1, 1, max_len=5, head_dim=1)

    @jaxmodule.compile
    def step(k):
        return cache.update(k, k)[2]

    for i in range(4):
        mask = step(jnp.full((1, 1, 1, 1), float(i + 1)))
    assert step.trace_count == 1
    assert int(cache.pos) == 4
    np.testing.assert_array_equal(np.asarray(cache.k_cache)[0, 0, :, 0], [1, 2, 3, 4, 0])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0]])
    assert math.isclose(float(jnp.asarray(cache.v_cache).sum()), 10.0)


# ---- the example ---------------------------------------------------------------------------
def test_example_tiny_runs():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "examples/gpt_generate.py", "--tiny"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cached == recompute (4 tokens): True" in proc.stdout
    assert "traces: prefill 2, decode 2" in proc.stdout
    assert "greedy:  'the quick " in proc.stdout and "sampled: 'the quick " in proc.stdout
