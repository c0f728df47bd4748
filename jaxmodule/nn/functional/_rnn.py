"""Recurrent math: the RNN/LSTM/GRU cells and the multi-layer, bidirectional sequence loop.

These mirror torch's private `_VF.rnn_tanh/rnn_relu/lstm/gru` and `*_cell` kernels (gate orders
LSTM i,f,g,o and GRU r,z,n, with torch's `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`).

The time loop is one `jax.lax.scan` per layer. Both directions of a bidirectional layer run in that
same scan: their weights are stacked on a leading direction axis and the reverse direction reads
its input projection reversed in time. The input projection `x @ W_ih^T + b_ih` of every step is
computed before the loop as one matmul, so only the `h @ W_hh^T` recurrence stays inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ...amp.autocast_mode import autocast_inputs
from ._utils import unwrap
from .dropout import dropout as _dropout
from .linear import linear as _lin

__all__ = ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell", "rnn_forward"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _step(
    mode: str, xi: jax.Array, hh: jax.Array, h: jax.Array, c: jax.Array | None
) -> tuple[jax.Array, jax.Array | None]:
    """One recurrence step from the input part `xi` and hidden part `hh` of the gates.

    Returns the new hidden state (before any LSTM projection) and the new cell state.
    """
    if mode == "RNN_TANH":
        return jnp.tanh(xi + hh), None
    if mode == "RNN_RELU":
        return jax.nn.relu(xi + hh), None
    if mode == "LSTM":
        assert c is not None, "an LSTM step needs the cell state"
        return _lstm_step(xi, hh, c)
    # GRU
    xr, xz, xn = jnp.split(xi, 3, axis=-1)
    hr, hz, hn = jnp.split(hh, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return (1 - z) * n + z * h, None


def _lstm_step(xi: jax.Array, hh: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`_step` for LSTM (gates i, f, g, o): the new hidden and cell states."""
    i, f, g, o = jnp.split(xi + hh, 4, axis=-1)
    c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c_new), c_new


def rnn_tanh_cell(
    input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None
) -> jax.Array:
    """One Elman step `tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)` on `(N, H_in)`/`(N, H)` arrays."""
    x, h = unwrap(input), unwrap(hx)
    return _step(
        "RNN_TANH",
        _lin(x, unwrap(w_ih), unwrap(b_ih)),
        _lin(h, unwrap(w_hh), unwrap(b_hh)),
        h,
        None,
    )[0]


def rnn_relu_cell(
    input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None
) -> jax.Array:
    """One Elman step with ReLU on `(N, H_in)`/`(N, H)` arrays."""
    x, h = unwrap(input), unwrap(hx)
    return _step(
        "RNN_RELU",
        _lin(x, unwrap(w_ih), unwrap(b_ih)),
        _lin(h, unwrap(w_hh), unwrap(b_hh)),
        h,
        None,
    )[0]


def lstm_cell(
    input: Any, hx: Sequence[Any], w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None
) -> tuple[jax.Array, jax.Array]:
    """One LSTM step (gates i, f, g, o); `hx = (h, c)`; returns `(h', c')`."""
    x, h, c = unwrap(input), unwrap(hx[0]), unwrap(hx[1])
    return _lstm_step(_lin(x, unwrap(w_ih), unwrap(b_ih)), _lin(h, unwrap(w_hh), unwrap(b_hh)), c)


def gru_cell(
    input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None
) -> jax.Array:
    """One GRU step (gates r, z, n) on `(N, H_in)`/`(N, H)` arrays."""
    x, h = unwrap(input), unwrap(hx)
    return _step(
        "GRU", _lin(x, unwrap(w_ih), unwrap(b_ih)), _lin(h, unwrap(w_hh), unwrap(b_hh)), h, None
    )[0]


def _reverse_within(x: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """Reverse time-major `x` `(T, N, ...)` along time, each sequence within its own length.

    Padded steps (t >= length) stay where they are; the map is its own inverse.
    """
    if lengths is None:
        return x[::-1]
    t = jnp.arange(x.shape[0])[:, None]
    idx = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, N)
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=0)


def _layer(
    mode: str,
    x: jax.Array,
    h0: jax.Array,
    c0: jax.Array | None,
    params: list[tuple[Any, ...]],
    lengths: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Run one layer (all its directions) over time-major `x` `(T, N, I)`.

    `params` holds one `(w_ih, w_hh, b_ih, b_hh, w_hr)` tuple per direction (biases/`w_hr` may be
    None); `h0`/`c0` are `(D, N, H)`. With `lengths` `(N,)`, sequence n only runs for its first
    `lengths[n]` steps: its state stops changing after them and its later outputs are zero (the
    reverse direction starts at each sequence's own last step). Returns output
    `(T, N, D * H_out)`, `h_n`, `c_n` `(D, N, ...)`.
    """
    ndir = len(params)
    x, h0, c0 = autocast_inputs(x, h0, c0)  # inside `jaxmodule.autocast`, run in its dtype
    params = [autocast_inputs(*p) for p in params]
    w_ih = jnp.stack([p[0] for p in params])
    w_hh = jnp.stack([p[1] for p in params])
    has_bias = params[0][2] is not None
    has_proj = params[0][4] is not None

    xs = x[None] if ndir == 1 else jnp.stack([x, _reverse_within(x, lengths)])  # (D, T, N, I)
    xi = jnp.einsum("dtni,dgi->dtng", xs, w_ih)
    if has_bias:
        xi = xi + jnp.stack([p[2] for p in params])[:, None, None, :]
    xi = jnp.swapaxes(xi, 0, 1)  # (T, D, N, G)
    b_hh = jnp.stack([p[3] for p in params])[:, None, :] if has_bias else None
    w_hr = jnp.stack([p[4] for p in params]) if has_proj else None

    def body(carry: tuple, inp: tuple) -> tuple[tuple, jax.Array]:
        h, c = carry
        xi_t, t = inp
        hh = jnp.einsum("dnh,dgh->dng", h, w_hh)
        if b_hh is not None:
            hh = hh + b_hh
        h_new, c_new = _step(mode, xi_t, hh, h, c)
        if w_hr is not None:
            h_new = jnp.einsum("dnh,dph->dnp", h_new, w_hr)
        if lengths is None:
            return (h_new, c_new), h_new
        live = (t < lengths)[None, :, None]  # (1, N, 1)
        h_new = jnp.where(live, h_new, h)
        if c_new is not None:
            c_new = jnp.where(live, c_new, c)
        return (h_new, c_new), jnp.where(live, h_new, jnp.zeros((), h_new.dtype))

    steps = jnp.arange(x.shape[0])
    (h_n, c_n), ys = jax.lax.scan(body, (h0, c0), (xi, steps))  # ys: (T, D, N, H_out)
    outs = [ys[:, 0]] if ndir == 1 else [ys[:, 0], _reverse_within(ys[:, 1], lengths)]
    return jnp.concatenate(outs, axis=-1), h_n, c_n


def rnn_forward(
    mode: str,
    input: Any,
    hx: Any,
    flat_weights: Sequence[Any],
    has_biases: bool,
    num_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    batch_first: bool,
    proj_size: int = 0,
    lengths: Any | None = None,
) -> tuple[jax.Array, Any]:
    """A multi-layer (bidirectional) RNN over a batched sequence, like torch's `_VF.rnn_tanh/lstm/gru`.

    Args:
        mode: 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU'.
        input: `(T, N, H_in)`, or `(N, T, H_in)` when `batch_first`.
        hx: `(num_layers * D, N, H_out)`; for LSTM a pair `(h_0, c_0)`.
        flat_weights: torch's `_flat_weights` order: per layer, per direction,
            `w_ih, w_hh[, b_ih, b_hh][, w_hr]`.
        has_biases: whether the biases are in `flat_weights`.
        num_layers: stacked layers.
        dropout: dropout on the outputs of every layer but the last (only when `train`).
        train: training mode.
        bidirectional: two directions per layer.
        batch_first: layout of `input` and the output.
        proj_size: LSTM projection size (0: none).
        lengths: optional `(N,)` sequence lengths: sequence n runs only for its first
            `lengths[n]` steps (its outputs after them are zero, `h_n` is its state at its own
            last step), which is what torch computes for a `PackedSequence`.

    Returns:
        `(output, h_n)`, or `(output, (h_n, c_n))` for LSTM.
    """
    if mode not in _GATES:
        raise ValueError(f"Unrecognized RNN mode: {mode}")
    x = unwrap(input)
    if batch_first:
        x = jnp.swapaxes(x, 0, 1)
    lstm = mode == "LSTM"
    h0, c0 = (unwrap(hx[0]), unwrap(hx[1])) if lstm else (unwrap(hx), None)
    ndir = 2 if bidirectional else 1
    per = 2 + (2 if has_biases else 0) + (1 if proj_size > 0 else 0)
    weights = [unwrap(w) for w in flat_weights]
    if len(weights) != per * ndir * num_layers:
        raise ValueError(
            f"rnn_forward: expected {per * ndir * num_layers} weights for {num_layers} layer(s), "
            f"{ndir} direction(s), got {len(weights)}"
        )

    lens = None if lengths is None else jnp.asarray(unwrap(lengths))
    h_n: list[jax.Array] = []
    c_n: list[jax.Array] = []
    for layer in range(num_layers):
        params = []
        for d in range(ndir):
            ws = weights[(layer * ndir + d) * per : (layer * ndir + d + 1) * per]
            w_ih, w_hh = ws[0], ws[1]
            b_ih, b_hh = (ws[2], ws[3]) if has_biases else (None, None)
            w_hr = ws[-1] if proj_size > 0 else None
            params.append((w_ih, w_hh, b_ih, b_hh, w_hr))
        sl = slice(layer * ndir, (layer + 1) * ndir)
        x, hl, cl = _layer(mode, x, h0[sl], c0[sl] if c0 is not None else None, params, lens)
        h_n.append(hl)
        if cl is not None:  # LSTM
            c_n.append(cl)
        if train and dropout > 0.0 and layer < num_layers - 1:
            x = _dropout(x, float(dropout))

    out = jnp.swapaxes(x, 0, 1) if batch_first else x
    h = jnp.concatenate(h_n, axis=0)
    return (out, (h, jnp.concatenate(c_n, axis=0))) if lstm else (out, h)
