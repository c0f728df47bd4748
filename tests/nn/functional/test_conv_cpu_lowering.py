"""Each CPU lowering of conv1d/2d/3d (`JAXMODULE_CPU_CONV` = xla | im2col | auto) against torch:
forward and gradients w.r.t. input, weight and bias, at the existing conv tests' tolerances."""

import jax
import jax.numpy as jnp
import jaxmodule.nn.functional as F
import pytest
import torch.nn.functional as TF
from jaxmodule.nn.functional import _conv_cpu

from tests.helpers import randn
from tests.nn.functional.test_conv import _check

MODES = ["xla", "im2col", "auto"]

# (in_channels, out_channels, spatial, kernel, kwargs); groups divides both channel counts
CASES_2D = [
    (4, 6, (9, 8), (3, 2), dict()),
    (4, 6, (9, 8), (3, 3), dict(stride=2, padding=1)),
    (4, 6, (9, 8), (3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))),
    (4, 6, (9, 8), (3, 3), dict(padding="same", dilation=2)),
    (4, 6, (6, 7), (4, 2), dict(padding="same")),  # even kernel: torch pads the extra on the right
    (4, 6, (9, 8), (3, 3), dict(padding="valid")),
    (4, 6, (9, 8), (3, 3), dict(groups=2, padding=1)),
    (4, 6, (9, 8), (3, 2), dict(stride=3, groups=2, dilation=2, padding=(2, 0))),
    (6, 6, (7, 7), (3, 3), dict(groups=6, padding=1)),  # depthwise
    (6, 12, (5, 5), (3, 3), dict(groups=6, stride=2)),  # depthwise, channel multiplier 2
    (8, 16, (2, 2), (3, 3), dict(padding=1)),  # the small maps `auto` sends to im2col
    (8, 16, (1, 1), (3, 3), dict(padding=1)),
    (8, 16, (4, 4), (3, 3), dict(stride=2, padding=1)),
    (8, 16, (4, 4), (1, 1), dict(stride=2)),
]
CASES_1D = [
    (6, 9, (11,), (3,), dict()),
    (6, 9, (11,), (3,), dict(stride=2, padding=2, dilation=2, groups=3)),
    (6, 9, (11,), (3,), dict(padding="same")),
    (6, 6, (10,), (5,), dict(groups=6, padding=2)),
]
CASES_3D = [
    (4, 4, (5, 6, 5), (2, 3, 2), dict()),
    (4, 4, (5, 6, 5), (2, 3, 2), dict(stride=(1, 2, 2), padding=1, groups=2)),
    (4, 6, (3, 3, 3), (3, 3, 3), dict(padding="same", dilation=(1, 1, 1))),
    (4, 6, (2, 2, 2), (3, 3, 3), dict(padding=1, stride=2)),
]
FNS = {1: (F.conv1d, TF.conv1d), 2: (F.conv2d, TF.conv2d), 3: (F.conv3d, TF.conv3d)}


def _run(case, bias: bool) -> None:
    c_in, c_out, spatial, kernel, kwargs = case
    groups = kwargs.get("groups", 1)
    x = randn(2, c_in, *spatial, seed=1)
    w = randn(c_out, c_in // groups, *kernel, seed=2)
    b = randn(c_out, seed=3) if bias else None
    jm_fn, torch_fn = FNS[len(spatial)]
    _check(jm_fn, torch_fn, [x, w, b], kwargs)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "case",
    CASES_2D + CASES_1D + CASES_3D,
    ids=lambda c: f"{len(c[2])}d-{c[0]}x{c[1]}-{c[2]}-{c[3]}-{c[4]}",
)
def test_lowering_matches_torch(monkeypatch, mode, case):
    monkeypatch.setenv(_conv_cpu.ENV_VAR, mode)
    _run(case, bias=True)


@pytest.mark.parametrize("mode", ["im2col", "auto"])
def test_no_bias_and_unbatched(monkeypatch, mode):
    monkeypatch.setenv(_conv_cpu.ENV_VAR, mode)
    _run((8, 16, (2, 2), (3, 3), dict(padding=1)), bias=False)
    x, w = randn(8, 2, 2, seed=1), randn(16, 8, 3, 3, seed=2)
    _check(F.conv2d, TF.conv2d, [x, w, None], dict(padding=1))


def _primitives(mode: str, monkeypatch, shape, kernel, **kwargs) -> set[str]:
    monkeypatch.setenv(_conv_cpu.ENV_VAR, mode)
    x, w = jnp.zeros(shape), jnp.zeros(kernel)
    jaxpr = jax.make_jaxpr(lambda x, w: F.conv2d(x, w, **kwargs))(x, w)
    return {eqn.primitive.name for eqn in jaxpr.jaxpr.eqns}


@pytest.mark.parametrize(
    "mode, shape, kernel, kwargs, expected",
    [
        ("xla", (2, 8, 2, 2), (16, 8, 3, 3), dict(padding=1), "conv_general_dilated"),
        ("im2col", (2, 8, 9, 9), (16, 8, 3, 3), dict(padding=1), "dot_general"),
        ("auto", (2, 8, 4, 4), (16, 8, 3, 3), dict(padding=1), "dot_general"),  # 16 outputs: im2col
        ("auto", (2, 8, 5, 5), (16, 8, 3, 3), dict(padding=1), "conv_general_dilated"),  # 25: XLA
        ("auto", (2, 8, 2, 2), (8, 1, 3, 3), dict(padding=1, groups=8), "conv_general_dilated"),
    ],
)
def test_mode_picks_the_lowering(monkeypatch, mode, shape, kernel, kwargs, expected):
    prims = _primitives(mode, monkeypatch, shape, kernel, **kwargs)
    other = {"dot_general", "conv_general_dilated"} - {expected}
    assert expected in prims and not prims & other, prims


def test_other_backends_keep_xla_convolution(monkeypatch):
    monkeypatch.setenv(_conv_cpu.ENV_VAR, "im2col")
    monkeypatch.setattr(_conv_cpu.jax, "default_backend", lambda: "gpu")
    seen = []
    jax.make_jaxpr(lambda x: seen.append(_conv_cpu.choose_im2col(x, [2, 2], 1)) or x)(
        jnp.zeros((1, 2, 2, 2))
    )
    assert seen == [False]


def test_bad_mode_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(_conv_cpu.ENV_VAR, "fast")
    with pytest.raises(
        ValueError, match="JAXMODULE_CPU_CONV: expected one of auto, im2col, xla, got 'fast'"
    ):
        F.conv2d(jnp.ones((1, 2, 2, 2)), jnp.ones((3, 2, 1, 1)))
