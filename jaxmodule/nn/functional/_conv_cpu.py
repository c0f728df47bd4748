"""How a forward convolution lowers on the CPU backend: XLA's convolution, or im2col + one matmul.

XLA:CPU's convolution is fast on large feature maps but pathologically slow when the output map is
tiny and the channels are many (ResNet-18's last stages on 32x32 images: a 2x2 or 1x1 map with 256
or 512 channels takes 6-50x the time of the same arithmetic as a matmul, forward and backward).
im2col gathers the kernel taps with strided slices into (N, C, K, *out) and contracts (C, K) with
the weight in one `dot_general`; its gradients are jax's autodiff of slices (pads) and a matmul.

`JAXMODULE_CPU_CONV` (read at trace time) picks the lowering on CPU:

* `auto` (default): im2col where it measured faster (`groups == 1` and at most `IM2COL_MAX_OUT`
  output positions per map), XLA's convolution elsewhere;
* `im2col`: im2col for every forward convolution;
* `xla`: always `lax.conv_general_dilated` (the off switch).

Other backends (GPU, TPU) always use `lax.conv_general_dilated`.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

import jax
from jax import lax

__all__ = ["ENV_VAR", "IM2COL_MAX_OUT", "cpu_conv_mode", "choose_im2col", "conv_im2col"]

ENV_VAR = "JAXMODULE_CPU_CONV"
_MODES = ("auto", "im2col", "xla")
# Output positions per map up to which `auto` takes im2col (measured: 4x4 and smaller maps win,
# 8x8 and larger lose to XLA's convolution; see benchmarks/RESULTS.md, "Convolutions on CPU").
IM2COL_MAX_OUT = 16


def cpu_conv_mode() -> str:
    """The value of `JAXMODULE_CPU_CONV` ('auto' when unset); a clear error for anything else.

    >>> cpu_conv_mode() in ("auto", "im2col", "xla")
    True
    """
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"{ENV_VAR}: expected one of {', '.join(_MODES)}, got {mode!r}")
    return mode


def _platform(x: Any) -> str:
    """The platform `x` computes on: its device's for a concrete array, else the default backend."""
    devices = getattr(x, "devices", None)
    if devices is not None and not isinstance(x, jax.core.Tracer):
        try:
            return next(iter(devices())).platform
        except Exception:  # noqa: BLE001 - deleted or abstract arrays fall back to the default
            pass
    return jax.default_backend()


def choose_im2col(x: Any, out_sizes: list[int], groups: int) -> bool:
    """Whether the forward convolution of `x` (N, C, *spatial) with these output sizes uses im2col.

    >>> import jax.numpy as jnp
    >>> isinstance(choose_im2col(jnp.ones((1, 2, 2, 2)), [2, 2], 1), bool)
    True
    """
    mode = cpu_conv_mode()
    if mode == "xla" or _platform(x) != "cpu":
        return False
    if mode == "im2col":
        return True
    return groups == 1 and math.prod(out_sizes) <= IM2COL_MAX_OUT


def conv_im2col(
    x: jax.Array,
    w: jax.Array,
    stride: tuple[int, ...],
    pads: list[tuple[int, int]],
    dilation: tuple[int, ...],
    groups: int,
    out_sizes: list[int],
) -> jax.Array:
    """torch's convolution (no bias) of x (N, C, *spatial) with w (O, C / groups, *kernel) as im2col.

    Same result as `lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dilation,
    feature_group_count=groups)` up to float reordering of the sum.

    >>> import jax.numpy as jnp
    >>> conv_im2col(jnp.ones((1, 2, 3, 3)), jnp.ones((4, 2, 3, 3)), (1, 1), [(1, 1)] * 2, (1, 1), 1,
    ...             [3, 3]).shape
    (1, 4, 3, 3)
    """
    nd = len(stride)
    n, c = x.shape[:2]
    o, cg, *kernel = w.shape
    xp = lax.pad(x, _zero(x), [(0, 0, 0)] * 2 + [(lo, hi, 0) for lo, hi in pads])
    taps = []
    for offs in itertools.product(*(range(k) for k in kernel)):
        start = [0, 0] + [t * d for t, d in zip(offs, dilation)]
        limit = [n, c] + [b + s * (m - 1) + 1 for b, s, m in zip(start[2:], stride, out_sizes)]
        taps.append(lax.slice(xp, start, limit, (1, 1) + tuple(stride)))
    k = len(taps)
    patches = taps[0][:, :, None] if k == 1 else lax.concatenate([t[:, :, None] for t in taps], 2)
    spatial = tuple(range(3, 3 + nd))
    if groups == 1:
        # (N, C, K, *out) . (O, C, K) -> (N, *out, O)
        out = lax.dot_general(patches, w.reshape(o, cg, k), (((1, 2), (1, 2)), ((), ())))
        return out.transpose((0, nd + 1) + tuple(range(1, nd + 1)))
    og = o // groups
    patches = patches.reshape((n, groups, cg, k) + tuple(out_sizes))
    wg = w.reshape(groups, og, cg, k)
    # batch over groups: (G, N, *out, O/G) -> (N, G, O/G, *out) -> (N, O, *out)
    out = lax.dot_general(patches, wg, (((2, 3), (2, 3)), ((1,), (0,))))
    out = out.transpose((1, 0, nd + 2) + tuple(s - 1 for s in spatial))
    return out.reshape((n, o) + tuple(out_sizes))


def _zero(x: jax.Array) -> jax.Array:
    """A scalar zero of x's dtype (the padding value)."""
    return lax.convert_element_type(0, x.dtype)
