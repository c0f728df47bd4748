"""`PairwiseDistance` and `CosineSimilarity`."""

from __future__ import annotations

from typing import Any

import jax

from .. import functional as F
from .module import Module

__all__ = ["PairwiseDistance", "CosineSimilarity"]


class PairwiseDistance(Module):
    """p-norm distance of `x1 - x2 + eps` over the last dim. Mirrors `torch.nn.PairwiseDistance`.

    Args:
        p: the norm degree (stored as `self.norm`, as in torch). eps: added to the difference.
        keepdim: keep the reduced dimension.
    """

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm = p
        self.eps = eps
        self.keepdim = keepdim

    def forward(self, x1: Any, x2: Any) -> jax.Array:
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class CosineSimilarity(Module):
    """Cosine similarity along `dim`. Mirrors `torch.nn.CosineSimilarity`.

    Args:
        dim: the dimension to reduce (default 1). eps: lower bound of each norm.
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x1: Any, x2: Any) -> jax.Array:
        return F.cosine_similarity(x1, x2, self.dim, self.eps)
