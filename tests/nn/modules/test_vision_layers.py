"""Fold/Unfold, Upsample*, PixelShuffle, ChannelShuffle, padding and distance layers vs torch.nn."""

import jax
import jax.numpy as jnp
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn, to_torch

# (class name, constructor args, constructor kwargs, input shapes (one per forward argument))
CASES = [
    ("Unfold", ((2, 3),), dict(dilation=(1, 2), padding=1, stride=2), [(2, 3, 6, 7)]),
    ("Fold", ((4, 5), 2), dict(), [(2, 12, 12)]),
    ("Fold", (5, 3), dict(padding=1, stride=2), [(18, 9)]),
    ("Upsample", (), dict(scale_factor=2, mode="nearest"), [(1, 2, 3, 4)]),
    ("Upsample", ((5, 7),), dict(mode="bilinear", align_corners=False), [(1, 2, 3, 4)]),
    (
        "Upsample",
        (),
        dict(scale_factor=(1.5, 2.0), mode="bicubic", align_corners=True),
        [(1, 2, 3, 4)],
    ),
    ("Upsample", (7,), dict(mode="linear"), [(2, 3, 4)]),
    (
        "Upsample",
        (),
        dict(scale_factor=0.5, mode="trilinear", recompute_scale_factor=True),
        [(1, 1, 4, 4, 6)],
    ),
    ("UpsamplingNearest2d", (), dict(scale_factor=3), [(1, 2, 3, 4)]),
    ("UpsamplingBilinear2d", ((6, 5),), dict(), [(1, 2, 3, 4)]),
    ("PixelShuffle", (2,), dict(), [(2, 8, 3, 3)]),
    ("PixelUnshuffle", (3,), dict(), [(2, 1, 6, 9)]),
    ("ChannelShuffle", (3,), dict(), [(2, 6, 2, 2)]),
    ("ZeroPad1d", ((1, 2),), dict(), [(2, 3, 4)]),
    ("ZeroPad2d", (2,), dict(), [(1, 2, 3, 4)]),
    ("ZeroPad3d", ((1, 0, 2, 1, 0, 1),), dict(), [(1, 2, 2, 3, 4)]),
    ("ConstantPad1d", (2, 3.5), dict(), [(3, 4)]),
    ("ConstantPad2d", ((1, -1, 2, 0), -1.0), dict(), [(1, 2, 3, 4)]),
    ("ConstantPad3d", (1, 2.0), dict(), [(2, 2, 3, 4)]),
    ("ReflectionPad1d", ((3, 1),), dict(), [(2, 3, 5)]),
    ("ReflectionPad2d", ((1, 2, 2, 1),), dict(), [(3, 4, 5)]),
    ("ReflectionPad3d", (1,), dict(), [(1, 2, 3, 4, 5)]),
    ("ReplicationPad1d", ((3, 1),), dict(), [(2, 3, 5)]),
    ("ReplicationPad2d", (2,), dict(), [(1, 3, 4, 5)]),
    ("ReplicationPad3d", ((1, 2, 0, 1, 2, 0),), dict(), [(2, 3, 4, 5)]),
    ("CircularPad1d", ((3, 1),), dict(), [(2, 3, 5)]),
    ("CircularPad2d", ((1, 2, 2, 1),), dict(), [(1, 3, 4, 5)]),
    ("CircularPad3d", (1,), dict(), [(2, 3, 4, 5)]),
    ("CosineSimilarity", (), dict(), [(4, 5, 3), (4, 5, 3)]),
    ("CosineSimilarity", (), dict(dim=-1, eps=1e-3), [(4, 5), (1, 5)]),
    ("PairwiseDistance", (), dict(), [(4, 5), (4, 5)]),
    ("PairwiseDistance", (), dict(p=1.0, eps=0.0, keepdim=True), [(4, 5), (4, 5)]),
]


@pytest.mark.parametrize("name, args, kwargs, shapes", CASES)
def test_layer_matches_torch(name, args, kwargs, shapes):
    t = getattr(torch.nn, name)(*args, **kwargs)
    m = getattr(nn, name)(*args, **kwargs)
    assert repr(m) == repr(t)
    assert list(m.state_dict()) == list(t.state_dict()) == []
    xs = [randn(*s, seed=i + 1) for i, s in enumerate(shapes)]
    txs = [to_torch(x, requires_grad=True) for x in xs]
    t_out = t(*txs)
    ct = randn(*t_out.shape, seed=9)
    (t_out * to_torch(ct)).sum().backward()
    jxs = [jnp.asarray(x) for x in xs]
    assert_close(m(*jxs), t_out, atol=1e-5)
    grads = jax.grad(lambda *v: (m(*v) * ct).sum(), argnums=tuple(range(len(xs))))(*jxs)
    for g, tx in zip(grads, txs):
        assert_close(g, tx.grad, atol=1e-5)


def test_jit_with_module_argument():
    m = nn.Upsample(scale_factor=2, mode="bilinear")
    x = randn(1, 1, 3, 3)
    out = jax.jit(lambda mod, v: mod(v))(m, x)
    assert_close(out, torch.nn.Upsample(scale_factor=2, mode="bilinear")(to_torch(x)))


def test_circular_pad_checks_input_rank():
    with pytest.raises(ValueError, match="expected 3D or 4D input \\(got 2D input\\)"):
        nn.CircularPad2d(1)(jnp.ones((3, 3)))


def test_attributes_match_torch():
    assert nn.PairwiseDistance(p=3.0).norm == torch.nn.PairwiseDistance(p=3.0).norm
    m, t = nn.Upsample(size=4, mode="bicubic"), torch.nn.Upsample(size=4, mode="bicubic")
    assert (m.name, m.size, m.scale_factor, m.align_corners) == (
        t.name,
        t.size,
        t.scale_factor,
        t.align_corners,
    )
