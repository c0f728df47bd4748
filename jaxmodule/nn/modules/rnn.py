"""Recurrent layers: `RNN`, `LSTM`, `GRU` and the single-step `RNNCell`, `LSTMCell`, `GRUCell`.

Parameter names, shapes, gate orders, initialisation and argument checks are torch's; the math is
in `jaxmodule/nn/functional/_rnn.py` (one `jax.lax.scan` per layer over time).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..._dtype import to_dtype
from .. import init
from .._packed_sequence import PackedSequence, _lengths_from_batch_sizes, _pack_indices
from ..functional import _rnn
from ..functional._utils import unwrap
from ..parameter import Parameter
from ._eager import register_pure_forward
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _as_input(x: Any) -> jax.Array:
    if type(x).__name__ == "PackedSequence":  # torch's, not ours
        raise TypeError(
            "expected a jaxmodule.nn.utils.rnn.PackedSequence or an array, got a "
            f"{type(x).__module__}.PackedSequence"
        )
    return jnp.asarray(unwrap(x))


class RNNBase(Module):
    """Shared machinery of `RNN`, `LSTM` and `GRU`. Mirrors `torch.nn.RNNBase`.

    Args:
        mode: 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU'.
        input_size: features of the input.
        hidden_size: features of the hidden state.
        num_layers: stacked recurrent layers.
        bias: use `bias_ih_l*` and `bias_hh_l*`.
        batch_first: input and output are `(N, L, H)` instead of `(L, N, H)` (not the states).
        dropout: dropout on the outputs of every layer except the last, in training.
        bidirectional: run a reverse direction too (`*_reverse` parameters).
        proj_size: LSTM only: project the hidden state to this size (`weight_hr_l*`).

    A `jaxmodule.nn.utils.rnn.PackedSequence` input runs every sequence for its own length only
    (one masked scan over the padded batch) and returns a `PackedSequence`, as torch does.

    Differences from torch: `flatten_parameters()` is a no-op (there is no cuDNN weight buffer).
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        if (
            not isinstance(dropout, numbers.Number)
            or isinstance(dropout, bool)
            or not 0 <= dropout <= 1
        ):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the "
                "probability of an element being zeroed"
            )
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=2,
            )
        if not isinstance(bias, bool):
            raise TypeError(f"bias should be of type bool, got: {type(bias).__name__}")
        if not isinstance(batch_first, bool):
            raise TypeError(
                f"batch_first should be of type bool, got: {type(batch_first).__name__}"
            )
        if not isinstance(input_size, int):
            raise TypeError(f"input_size should be of type int, got: {type(input_size).__name__}")
        if input_size <= 0:
            raise ValueError("input_size must be greater than zero")
        if not isinstance(hidden_size, int):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError(
                "proj_size should be a positive integer or zero to disable projections"
            )
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + mode)

        gate_size = _GATES[mode] * hidden_size
        num_directions = 2 if bidirectional else 1
        real_hidden = proj_size if proj_size > 0 else hidden_size
        dt = to_dtype(dtype)
        flat_names: list[str] = []
        all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * num_directions
            for direction in range(num_directions):
                suffix = "_reverse" if direction == 1 else ""
                shapes: list[tuple[str, tuple[int, ...]]] = [
                    ("weight_ih", (gate_size, layer_input)),
                    ("weight_hh", (gate_size, real_hidden)),
                ]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                names = []
                for base, shape in shapes:
                    name = f"{base}_l{layer}{suffix}"
                    setattr(self, name, Parameter(jnp.empty(shape, dt)))
                    names.append(name)
                flat_names.extend(names)
                all_weights.append(names)
        self._flat_weights_names = flat_names
        self._all_weights = all_weights
        self.reset_parameters()

    @property
    def _flat_weights(self) -> list[Parameter | None]:
        """The parameters in torch's flat order (looked up by name, so always current)."""
        return [getattr(self, n) if hasattr(self, n) else None for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters grouped per layer and direction. Mirrors torch."""
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """No-op: torch uses it to pack weights for cuDNN; there is nothing to pack here."""

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def check_input(self, input: Any, batch_sizes: Any) -> None:
        w_dtype = self._flat_weights[0].dtype  # type: ignore[union-attr]  # weight_ih_l0 is always there
        if input.dtype != w_dtype:
            raise ValueError(
                f"RNN input dtype ({input.dtype}) does not match weight dtype ({w_dtype}). "
                f"Convert input: input.astype({w_dtype}), or convert model: model.to({input.dtype})"
            )
        expected_input_dim = 2 if batch_sizes is not None else 3
        if input.ndim != expected_input_dim:
            raise RuntimeError(f"input must have {expected_input_dim} dimensions, got {input.ndim}")
        if self.input_size != input.shape[-1]:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {input.shape[-1]}"
            )

    def get_expected_hidden_size(self, input: Any, batch_sizes: Any) -> tuple[int, int, int]:
        if batch_sizes is not None:
            mini_batch = int(batch_sizes[0])
        else:
            mini_batch = input.shape[0] if self.batch_first else input.shape[1]
        num_directions = 2 if self.bidirectional else 1
        size = self.proj_size if self.proj_size > 0 else self.hidden_size
        return (self.num_layers * num_directions, mini_batch, size)

    def check_hidden_size(
        self,
        hx: Any,
        expected_hidden_size: tuple[int, int, int],
        msg: str = "Expected hidden size {}, got {}",
    ) -> None:
        if tuple(hx.shape) != tuple(expected_hidden_size):
            raise RuntimeError(msg.format(tuple(expected_hidden_size), list(hx.shape)))

    def check_forward_args(self, input: Any, hidden: Any, batch_sizes: Any) -> None:
        self.check_input(input, batch_sizes)
        self.check_hidden_size(hidden, self.get_expected_hidden_size(input, batch_sizes))

    def permute_hidden(self, hx: Any, permutation: Any) -> Any:
        if permutation is None:
            return hx
        return jnp.take(hx, permutation, axis=1)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    def _prepare(self, input: Any, hx: Any, name: str) -> tuple[jax.Array, Any, bool, int]:
        """Shared input handling of RNN and GRU: rank checks, unbatched inputs, zero h_0."""
        x = _as_input(input)
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {x.ndim}D tensor instead")
        is_batched = x.ndim == 3
        batch_dim = 0 if self.batch_first else 1
        if hx is not None:
            hx = jnp.asarray(unwrap(hx))
        if not is_batched:
            x = jnp.expand_dims(x, batch_dim)
            if hx is not None:
                if hx.ndim != 2:
                    raise RuntimeError(
                        f"For unbatched 2-D input, hx should also be 2-D but got {hx.ndim}-D tensor"
                    )
                hx = hx[:, None]
        elif hx is not None and hx.ndim != 3:
            raise RuntimeError(
                f"For batched 3-D input, hx should also be 3-D but got {hx.ndim}-D tensor"
            )
        if hx is None:
            num_directions = 2 if self.bidirectional else 1
            hx = jnp.zeros(
                (self.num_layers * num_directions, x.shape[batch_dim], self.hidden_size), x.dtype
            )
        self.check_forward_args(x, hx, None)
        return x, hx, is_batched, batch_dim

    def _run(self, x: jax.Array, hx: Any) -> tuple[jax.Array, Any]:
        return _rnn.rnn_forward(
            self.mode,
            x,
            hx,
            self._flat_weights,
            self.bias,
            self.num_layers,
            self.dropout,
            self.training,
            self.bidirectional,
            self.batch_first,
            self.proj_size,
        )

    def _forward_packed(self, packed: PackedSequence, hx: Any) -> tuple[PackedSequence, Any]:
        """Run on a PackedSequence: unpack to a padded sorted batch, one masked scan, repack."""
        data = jnp.asarray(unwrap(packed.data))
        batch_sizes = np.asarray(packed.batch_sizes)
        lstm = self.mode == "LSTM"
        n = int(batch_sizes[0])
        num_directions = 2 if self.bidirectional else 1
        if hx is None:
            real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
            h0 = jnp.zeros((self.num_layers * num_directions, n, real_hidden), data.dtype)
            hx = (
                (h0, jnp.zeros((self.num_layers * num_directions, n, self.hidden_size), data.dtype))
                if lstm
                else h0
            )
        else:
            hx = (
                (jnp.asarray(unwrap(hx[0])), jnp.asarray(unwrap(hx[1])))
                if lstm
                else jnp.asarray(unwrap(hx))
            )
            hx = self.permute_hidden(hx, packed.sorted_indices)
        self.check_forward_args(data, hx, batch_sizes)
        t_idx, b_idx = _pack_indices(batch_sizes)
        x = jnp.zeros((len(batch_sizes), n, data.shape[-1]), data.dtype).at[t_idx, b_idx].set(data)
        lengths = jnp.asarray(_lengths_from_batch_sizes(batch_sizes))
        out, hidden = _rnn.rnn_forward(
            self.mode,
            x,
            hx,
            self._flat_weights,
            self.bias,
            self.num_layers,
            self.dropout,
            self.training,
            self.bidirectional,
            False,
            self.proj_size,
            lengths,
        )
        out_packed = PackedSequence(
            out[t_idx, b_idx], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        )
        return out_packed, self.permute_hidden(hidden, packed.unsorted_indices)


class RNN(RNNBase):
    """Multi-layer Elman RNN, `h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`. Mirrors `torch.nn.RNN`.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: see `RNNBase`.
        nonlinearity: 'tanh' (default) or 'relu'.

    Shape:
        - input: `(L, N, H_in)` (`(N, L, H_in)` with batch_first) or unbatched `(L, H_in)`.
        - h_0: `(D * num_layers, N, H)` or `(D * num_layers, H)`; zeros when omitted.
        - output: `(L, N, D * H)`; h_n: like h_0.

    >>> rnn = RNN(10, 20, 2)
    >>> out, h_n = rnn(jnp.ones((5, 3, 10)))
    >>> out.shape, h_n.shape
    ((5, 3, 20), (2, 3, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(
                f"RNN.__init__() got an unexpected keyword argument '{next(iter(kwargs))}'"
            )
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        super().__init__(
            mode,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
        )
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, jax.Array]:
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        x, hx, is_batched, batch_dim = self._prepare(input, hx, "RNN")
        out, h = self._run(x, hx)
        if not is_batched:
            out, h = jnp.squeeze(out, batch_dim), h[:, 0]
        return out, h


class GRU(RNNBase):
    """Multi-layer gated recurrent unit (gates r, z, n). Mirrors `torch.nn.GRU`.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: see `RNNBase`.

    Shape:
        As `RNN`.

    >>> gru = GRU(10, 20, 2)
    >>> out, h_n = gru(jnp.ones((5, 3, 10)))
    >>> out.shape, h_n.shape
    ((5, 3, 20), (2, 3, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(
                f"GRU.__init__() got an unexpected keyword argument '{next(iter(kwargs))}'"
            )
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
        )

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, jax.Array]:
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        x, hx, is_batched, batch_dim = self._prepare(input, hx, "GRU")
        out, h = self._run(x, hx)
        if not is_batched:
            out, h = jnp.squeeze(out, batch_dim), h[:, 0]
        return out, h


class LSTM(RNNBase):
    """Multi-layer long short-term memory (gates i, f, g, o; optional projection). Mirrors `torch.nn.LSTM`.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: see `RNNBase`.
        proj_size: if > 0, `h_t = W_hr (o_t * tanh(c_t))` has `proj_size` features.

    Shape:
        - input: `(L, N, H_in)` (`(N, L, H_in)` with batch_first) or unbatched `(L, H_in)`.
        - (h_0, c_0): `(D * num_layers, N, H_out)` and `(D * num_layers, N, H_cell)` (no N when
          unbatched); zeros when omitted. `H_out` is `proj_size` if set, else `hidden_size`.
        - output: `(L, N, D * H_out)`; (h_n, c_n): like (h_0, c_0).

    >>> lstm = LSTM(10, 20, 2)
    >>> out, (h_n, c_n) = lstm(jnp.ones((5, 3, 10)))
    >>> out.shape, h_n.shape, c_n.shape
    ((5, 3, 20), (2, 3, 20), (2, 3, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
        )

    def get_expected_cell_size(self, input: Any, batch_sizes: Any) -> tuple[int, int, int]:
        if batch_sizes is not None:
            mini_batch = int(batch_sizes[0])
        else:
            mini_batch = input.shape[0] if self.batch_first else input.shape[1]
        num_directions = 2 if self.bidirectional else 1
        return (self.num_layers * num_directions, mini_batch, self.hidden_size)

    def check_forward_args(self, input: Any, hidden: Any, batch_sizes: Any) -> None:
        self.check_input(input, batch_sizes)
        self.check_hidden_size(
            hidden[0],
            self.get_expected_hidden_size(input, batch_sizes),
            "Expected hidden[0] size {}, got {}",
        )
        self.check_hidden_size(
            hidden[1],
            self.get_expected_cell_size(input, batch_sizes),
            "Expected hidden[1] size {}, got {}",
        )

    def permute_hidden(self, hx: Any, permutation: Any) -> Any:
        if permutation is None:
            return hx
        return jnp.take(hx[0], permutation, axis=1), jnp.take(hx[1], permutation, axis=1)

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, tuple[jax.Array, jax.Array]]:
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        x = _as_input(input)
        if x.ndim not in (2, 3):
            raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {x.ndim}D instead")
        is_batched = x.ndim == 3
        batch_dim = 0 if self.batch_first else 1
        if not is_batched:
            x = jnp.expand_dims(x, batch_dim)
        num_directions = 2 if self.bidirectional else 1
        if hx is None:
            n = x.shape[batch_dim]
            real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
            hx = (
                jnp.zeros((self.num_layers * num_directions, n, real_hidden), x.dtype),
                jnp.zeros((self.num_layers * num_directions, n, self.hidden_size), x.dtype),
            )
        else:
            h0, c0 = jnp.asarray(unwrap(hx[0])), jnp.asarray(unwrap(hx[1]))
            if is_batched:
                if h0.ndim != 3 or c0.ndim != 3:
                    raise RuntimeError(
                        "For batched 3-D input, hx and cx should also be 3-D but got "
                        f"({h0.ndim}-D, {c0.ndim}-D) tensors"
                    )
            else:
                if h0.ndim != 2 or c0.ndim != 2:
                    raise RuntimeError(
                        "For unbatched 2-D input, hx and cx should also be 2-D but got "
                        f"({h0.ndim}-D, {c0.ndim}-D) tensors"
                    )
                h0, c0 = h0[:, None], c0[:, None]
            hx = (h0, c0)
        self.check_forward_args(x, hx, None)
        out, (h, c) = self._run(x, hx)
        if not is_batched:
            out, h, c = jnp.squeeze(out, batch_dim), h[:, 0], c[:, 0]
        return out, (h, c)


class RNNCellBase(Module):
    """Shared parameters of the single-step cells. Mirrors `torch.nn.RNNCellBase`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        dt = to_dtype(dtype)
        self.weight_ih = Parameter(jnp.empty((num_chunks * hidden_size, input_size), dt))
        self.weight_hh = Parameter(jnp.empty((num_chunks * hidden_size, hidden_size), dt))
        if bias:
            self.bias_ih = Parameter(jnp.empty((num_chunks * hidden_size,), dt))
            self.bias_hh = Parameter(jnp.empty((num_chunks * hidden_size,), dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nl = self.__dict__.get("nonlinearity", "tanh")
        if nl != "tanh":
            s += f", nonlinearity={nl}"
        return s

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _check(self, name: str, x: jax.Array, hx: jax.Array | None, hname: str = "hidden") -> None:
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {x.ndim}D instead")
        if hx is not None and hx.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected {hname} to be 1D or 2D, got {hx.ndim}D instead")

    def _check_shapes(self, x: jax.Array, hs: list[jax.Array]) -> None:
        """torch's kernel checks: feature sizes and batch sizes of input and hidden states."""
        if x.shape[1] != self.input_size:
            raise RuntimeError(
                f"input has inconsistent input_size: got {x.shape[1]} expected {self.input_size}"
            )
        for i, h in enumerate(hs):
            if x.shape[0] != h.shape[0]:
                raise RuntimeError(
                    f"Input batch size {x.shape[0]} doesn't match hidden{i} batch size {h.shape[0]}"
                )
            if h.shape[1] != self.hidden_size:
                raise RuntimeError(
                    f"hidden{i} has inconsistent hidden_size: got {h.shape[1]}, expected {self.hidden_size}"
                )


class RNNCell(RNNCellBase):
    """One Elman step `h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`. Mirrors `torch.nn.RNNCell`.

    Args:
        input_size: features of the input.
        hidden_size: features of the hidden state.
        bias: use `bias_ih` and `bias_hh`.
        nonlinearity: 'tanh' (default) or 'relu'.

    Shape:
        input `(N, H_in)` or `(H_in)`, hidden `(N, H)` or `(H)` (zeros when omitted) -> `(N, H)` or `(H)`.

    >>> cell = RNNCell(10, 20)
    >>> cell(jnp.ones((3, 10))).shape
    (3, 20)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> jax.Array:
        x = jnp.asarray(unwrap(input))
        h = None if hx is None else jnp.asarray(unwrap(hx))
        self._check("RNNCell", x, h)
        is_batched = x.ndim == 2
        if not is_batched:
            x = x[None]
        h = (
            jnp.zeros((x.shape[0], self.hidden_size), x.dtype)
            if h is None
            else (h if is_batched else h[None])
        )
        if self.nonlinearity == "tanh":
            fn = _rnn.rnn_tanh_cell
        elif self.nonlinearity == "relu":
            fn = _rnn.rnn_relu_cell
        else:
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        self._check_shapes(x, [h])
        out = fn(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if is_batched else out[0]


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o). Mirrors `torch.nn.LSTMCell`.

    Args:
        input_size: features of the input.
        hidden_size: features of the hidden and cell states.
        bias: use `bias_ih` and `bias_hh`.

    Shape:
        input `(N, H_in)` or `(H_in)`; hx `(h, c)` each `(N, H)` or `(H)` (zeros when omitted);
        returns `(h', c')`.

    >>> cell = LSTMCell(10, 20)
    >>> h, c = cell(jnp.ones((3, 10)))
    >>> h.shape, c.shape
    ((3, 20), (3, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input: Any, hx: Any = None) -> tuple[jax.Array, jax.Array]:
        x = jnp.asarray(unwrap(input))
        if x.ndim not in (1, 2):
            raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {x.ndim}D instead")
        hs = None
        if hx is not None:
            hs = [jnp.asarray(unwrap(v)) for v in hx]
            for idx, value in enumerate(hs):
                if value.ndim not in (1, 2):
                    raise ValueError(
                        f"LSTMCell: Expected hx[{idx}] to be 1D or 2D, got {value.ndim}D instead"
                    )
        is_batched = x.ndim == 2
        if not is_batched:
            x = x[None]
        if hs is None:
            zeros = jnp.zeros((x.shape[0], self.hidden_size), x.dtype)
            hs = [zeros, zeros]
        elif not is_batched:
            hs = [v[None] for v in hs]
        self._check_shapes(x, hs)
        h, c = _rnn.lstm_cell(x, hs, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if is_batched else (h[0], c[0])


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n). Mirrors `torch.nn.GRUCell`.

    Args:
        input_size: features of the input.
        hidden_size: features of the hidden state.
        bias: use `bias_ih` and `bias_hh`.

    Shape:
        input `(N, H_in)` or `(H_in)`, hidden `(N, H)` or `(H)` (zeros when omitted) -> `(N, H)` or `(H)`.

    >>> cell = GRUCell(10, 20)
    >>> cell(jnp.ones((3, 10))).shape
    (3, 20)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input: Any, hx: Any = None) -> jax.Array:
        x = jnp.asarray(unwrap(input))
        h = None if hx is None else jnp.asarray(unwrap(hx))
        self._check("GRUCell", x, h)
        is_batched = x.ndim == 2
        if not is_batched:
            x = x[None]
        h = (
            jnp.zeros((x.shape[0], self.hidden_size), x.dtype)
            if h is None
            else (h if is_batched else h[None])
        )
        self._check_shapes(x, [h])
        out = _rnn.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if is_batched else out[0]


# eager calls of these run one cached jit program (see _eager.py)
# between-layer dropout draws only in training with p > 0 and several layers
register_pure_forward(
    RNN, GRU, LSTM, when=lambda m: not m.training or m.dropout == 0 or m.num_layers == 1
)
register_pure_forward(RNNCell, LSTMCell, GRUCell)
