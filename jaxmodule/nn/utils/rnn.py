"""Variable-length sequences: `PackedSequence` and the pack/pad helpers. Mirrors
`torch.nn.utils.rnn`; the code is in `jaxmodule/nn/_packed_sequence.py` (below the modules, which
use it)."""

from .._packed_sequence import (
    PackedSequence,
    invert_permutation,
    pack_padded_sequence,
    pack_sequence,
    pad_packed_sequence,
    pad_sequence,
    unpack_sequence,
    unpad_sequence,
)

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
