"""`ChannelShuffle` (ShuffleNet's channel permutation)."""

from __future__ import annotations

from typing import Any

import jax

from .. import functional as F
from .module import Module

__all__ = ["ChannelShuffle"]


class ChannelShuffle(Module):
    """Split the channels into `groups` and interleave them. Mirrors `torch.nn.ChannelShuffle`.

    Shape:
        (N, C, *) -> (N, C, *), C divisible by `groups`.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, input: Any) -> jax.Array:
        return F.channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
