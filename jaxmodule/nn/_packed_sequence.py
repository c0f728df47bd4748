"""Variable-length sequences for the recurrent layers: `PackedSequence` and the pack/pad helpers.

Mirrors `torch.nn.utils.rnn`, which re-exports these names; they live here, below the modules
(`nn.modules.rnn` uses them), because the `nn.utils` package also loads files that build on
modules. As in torch, lengths and `batch_sizes` live on the host (numpy):
packing is a gather whose indices are fixed by the lengths, so a `PackedSequence` is a pytree
whose `batch_sizes` are static (part of the tree structure) and whose `data` and index arrays are
leaves. A `jax.jit` function taking a `PackedSequence` therefore compiles once per length pattern.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._dtype import to_dtype
from .functional._utils import unwrap

__all__ = [
    "PackedSequence",
    "invert_permutation",
    "pack_padded_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "unpad_sequence",
    "pack_sequence",
    "unpack_sequence",
]


class _PackedSequenceFields(NamedTuple):
    data: jax.Array
    batch_sizes: np.ndarray
    sorted_indices: jax.Array | None
    unsorted_indices: jax.Array | None


class PackedSequence(_PackedSequenceFields):
    """A batch of variable-length sequences packed time step by time step. Mirrors `torch.nn.utils.rnn.PackedSequence`.

    Build it with `pack_padded_sequence` or `pack_sequence`, not by hand.

    Attributes:
        data: `(sum(lengths), *)` the steps of all sequences, time-major, longest sequence first.
        batch_sizes: numpy int64 `(max_len,)`: how many sequences are still running at each step.
        sorted_indices: the batch order used for packing (None when the input was sorted).
        unsorted_indices: its inverse.

    Differences from torch: `batch_sizes` is a numpy array (torch keeps it as a CPU tensor);
    device-moving methods (`cuda`, `pin_memory`) do not exist.
    """

    def __new__(
        cls,
        data: Any,
        batch_sizes: Any = None,
        sorted_indices: Any = None,
        unsorted_indices: Any = None,
    ) -> PackedSequence:
        if batch_sizes is None:
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise AssertionError("Expected data to be a list or tuple of length 2")
            data, batch_sizes = data
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        return super().__new__(
            cls, data, np.asarray(batch_sizes, dtype=np.int64), sorted_indices, unsorted_indices
        )

    def to(self, dtype: Any) -> PackedSequence:
        """A copy with `data` cast to `dtype` (the indices are unchanged)."""
        return type(self)(
            self.data.astype(to_dtype(dtype)),
            self.batch_sizes,
            self.sorted_indices,
            self.unsorted_indices,
        )

    def float(self) -> PackedSequence:
        return self.to("float32")

    def double(self) -> PackedSequence:
        return self.to("float64")

    def half(self) -> PackedSequence:
        return self.to("float16")

    @property
    def is_cuda(self) -> bool:
        return any(d.platform == "gpu" for d in self.data.devices())


def _flatten_packed(p: PackedSequence) -> tuple[tuple, tuple]:
    return (p.data, p.sorted_indices, p.unsorted_indices), tuple(int(b) for b in p.batch_sizes)


def _unflatten_packed(aux: tuple, children: tuple) -> PackedSequence:
    data, sorted_indices, unsorted_indices = children
    return tuple.__new__(
        PackedSequence, (data, np.asarray(aux, dtype=np.int64), sorted_indices, unsorted_indices)
    )


jax.tree_util.register_pytree_node(PackedSequence, _flatten_packed, _unflatten_packed)


def invert_permutation(permutation: Any | None) -> jax.Array | None:
    """The inverse of a permutation of `0..n-1` (None stays None). Mirrors torch."""
    if permutation is None:
        return None
    p = jnp.asarray(unwrap(permutation))
    return jnp.zeros_like(p).at[p].set(jnp.arange(p.shape[0], dtype=p.dtype))


def _concrete_lengths(lengths: Any) -> np.ndarray:
    lengths = unwrap(lengths)
    if isinstance(lengths, jax.core.Tracer):
        raise TypeError(
            "sequence lengths must be concrete (a list, numpy array or a jax array "
            "outside `jax.jit`): packing indices are computed on the host, as in torch"
        )
    if type(lengths).__module__.startswith("torch"):
        lengths = lengths.detach().cpu().numpy()
    return np.asarray(lengths, dtype=np.int64).reshape(-1)


def _pack_indices(batch_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Time and batch index of each row of packed data (time-major, sorted batch)."""
    t_idx = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    b_idx = (
        np.concatenate([np.arange(b) for b in batch_sizes])
        if len(batch_sizes)
        else np.zeros(0, np.int64)
    )
    return t_idx, b_idx


def _lengths_from_batch_sizes(batch_sizes: np.ndarray) -> np.ndarray:
    """Sorted lengths: sequence b runs for the number of steps whose batch size exceeds b."""
    n = int(batch_sizes[0]) if len(batch_sizes) else 0
    return (batch_sizes[None, :] > np.arange(n)[:, None]).sum(axis=1).astype(np.int64)


def pack_padded_sequence(
    input: Any, lengths: Any, batch_first: bool = False, enforce_sorted: bool = True
) -> PackedSequence:
    """Pack a padded batch `(T, B, *)` (or `(B, T, *)`) of sequences with the given lengths. Mirrors torch.

    Args:
        input: padded sequences.
        lengths: the length of each sequence (list, numpy or concrete jax array).
        batch_first: `input` is `(B, T, *)`.
        enforce_sorted: require lengths sorted in decreasing order; with False the batch is
            sorted here and `sorted_indices` records the order.
    """
    x = jnp.asarray(unwrap(input))
    lens = _concrete_lengths(lengths)
    if batch_first:
        x = jnp.swapaxes(x, 0, 1)
    sorted_indices = None
    if enforce_sorted:
        if np.any(lens[:-1] < lens[1:]):
            raise RuntimeError(
                "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
                "to sidestep this requirement if you do not need ONNX exportability."
            )
    else:
        order = np.argsort(-lens, kind="stable")
        lens = lens[order]
        sorted_indices = jnp.asarray(order)
        x = x[:, order]
    if lens.size and lens.min() <= 0:
        raise RuntimeError(
            "Length of all samples has to be greater than 0, but found an element "
            "in 'lengths' that is <= 0"
        )
    if lens.size != x.shape[1]:
        raise ValueError(
            f"Expected `len(lengths)` to be equal to batch_size, but got {lens.size} "
            f"(batch_size={x.shape[1]})"
        )
    if lens.size and lens.max() > x.shape[0]:
        raise ValueError(f"a sequence length ({lens.max()}) exceeds the padded length {x.shape[0]}")
    max_len = int(lens.max()) if lens.size else 0
    batch_sizes = (lens[None, :] > np.arange(max_len)[:, None]).sum(axis=1).astype(np.int64)
    t_idx, b_idx = _pack_indices(batch_sizes)
    return PackedSequence(x[t_idx, b_idx], batch_sizes, sorted_indices, None)


def pad_packed_sequence(
    sequence: PackedSequence,
    batch_first: bool = False,
    padding_value: float = 0.0,
    total_length: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Undo `pack_padded_sequence`: the padded batch and the lengths, in the original batch order. Mirrors torch.

    Args:
        sequence: the packed batch.
        batch_first: return `(B, T, *)` instead of `(T, B, *)`.
        padding_value: value of the padded positions.
        total_length: pad to this length (at least the longest sequence).
    """
    batch_sizes = np.asarray(sequence.batch_sizes)
    max_len = len(batch_sizes)
    if total_length is not None:
        if total_length < max_len:
            raise ValueError(
                "Expected total_length to be at least the length of the longest sequence in input, "
                f"but got total_length={total_length} and max sequence length being {max_len}"
            )
        max_len = total_length
    data = jnp.asarray(unwrap(sequence.data))
    batch = int(batch_sizes[0])
    t_idx, b_idx = _pack_indices(batch_sizes)
    padded = jnp.full((max_len, batch, *data.shape[1:]), padding_value, data.dtype)
    padded = padded.at[t_idx, b_idx].set(data)
    lengths = jnp.asarray(_lengths_from_batch_sizes(batch_sizes))
    if sequence.unsorted_indices is not None:
        unsorted = jnp.asarray(unwrap(sequence.unsorted_indices))
        padded = padded[:, unsorted]
        lengths = lengths[unsorted]
    if batch_first:
        padded = jnp.swapaxes(padded, 0, 1)
    return padded, lengths


def pad_sequence(
    sequences: Iterable[Any],
    batch_first: bool = False,
    padding_value: float = 0.0,
    padding_side: str = "right",
) -> jax.Array:
    """Stack sequences `(L_i, *)` into `(T, B, *)` (or `(B, T, *)`), padding with `padding_value`. Mirrors torch.

    Args:
        sequences: the sequences (same trailing shape).
        batch_first: return `(B, T, *)`.
        padding_value: value of the padded positions.
        padding_side: 'right' (default) or 'left'.
    """
    if not isinstance(sequences, Iterable):
        raise RuntimeError(
            "pad_sequence: Expected iterable for input sequences, but got arg of "
            f"type: {type(sequences)}"
        )
    if padding_side not in ("left", "right"):
        raise ValueError(
            f"Expected padding_side to be one of left or right, but got {padding_side}."
        )
    seqs = [jnp.asarray(unwrap(s)) for s in sequences]
    max_len = max(s.shape[0] for s in seqs)
    out = []
    for s in seqs:
        pad = [(0, max_len - s.shape[0]) if padding_side == "right" else (max_len - s.shape[0], 0)]
        out.append(jnp.pad(s, pad + [(0, 0)] * (s.ndim - 1), constant_values=padding_value))
    return jnp.stack(out, axis=0 if batch_first else 1)


def unpad_sequence(
    padded_sequences: Any, lengths: Any, batch_first: bool = False
) -> list[jax.Array]:
    """Split a padded batch back into its sequences. Mirrors torch."""
    x = jnp.asarray(unwrap(padded_sequences))
    if not batch_first:
        x = jnp.swapaxes(x, 0, 1)
    return [x[b, : int(n)] for b, n in enumerate(_concrete_lengths(lengths))]


def pack_sequence(sequences: Sequence[Any], enforce_sorted: bool = True) -> PackedSequence:
    """`pack_padded_sequence(pad_sequence(sequences), lengths)`. Mirrors torch.

    >>> p = pack_sequence([jnp.array([1, 2, 3]), jnp.array([4, 5]), jnp.array([6])])
    >>> p.data.tolist(), p.batch_sizes.tolist()
    ([1, 4, 6, 2, 5, 3], [3, 2, 1])
    """
    lengths = [jnp.shape(unwrap(s))[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[jax.Array]:
    """The list of sequences in a `PackedSequence`, in the original order. Mirrors torch."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
