"""Embedding layers: `Embedding`, `EmbeddingBag`. Mirrors `torch.nn.modules.sparse`.

With `max_norm`, torch renormalises the looked-up rows of `weight` in place on every forward.
Here the forward computes its output from the renormalised rows and then stores the renormalised
weight back into the `weight` parameter, which has the same effect (eagerly and inside
`jaxmodule.compile`). `sparse=True` raises NotImplementedError: JAX has no sparse gradients.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ..._dtype import to_dtype
from ..._tensor import as_array
from .. import init
from ..functional.sparse import (
    _check_range,
    _embedding_and_weight,
    _embedding_bag_and_weight,
    _indices,
    _normalize_padding_idx,
)
from ..parameter import Parameter
from ._backward_hooks import gate, register_last_operation, swap_gated
from ._eager import register_pure_forward
from .module import Module

__all__ = ["Embedding", "EmbeddingBag"]

_SPARSE_MSG = (
    "{cls}: sparse=True is not supported (JAX has no sparse gradients); use "
    "sparse=False, whose dense gradient has the same values"
)


def _initial_weight(
    module: Module, shape: tuple[int, int], _weight: Any, dtype: Any, requires_grad: bool
) -> None:
    if _weight is None:
        module.weight = Parameter(jnp.empty(shape, to_dtype(dtype)), requires_grad=requires_grad)
        module.reset_parameters()
        return
    w = as_array(_weight)
    if list(w.shape) != list(shape):
        raise AssertionError("Shape of weight does not match num_embeddings and embedding_dim")
    module.weight = Parameter(w, requires_grad=requires_grad)


def _pretrained_shape(embeddings: Any) -> tuple[Any, int, int]:
    emb = as_array(embeddings)
    if emb.ndim != 2:
        raise AssertionError("Embeddings parameter is expected to be 2-dimensional")
    rows, cols = emb.shape
    return emb, rows, cols


class _EmbeddingBase(Module):
    def reset_parameters(self) -> None:
        """Weight from N(0, 1), then the `padding_idx` row zeroed (torch's init)."""
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            self.weight.data = self.weight._value.at[self.padding_idx].set(0)

    def _store_renormed(self, new_weight: jax.Array | None) -> None:
        if new_weight is not None:
            self.weight.data = new_weight


class Embedding(_EmbeddingBase):
    """A lookup table of `num_embeddings` vectors of size `embedding_dim`. Mirrors `torch.nn.Embedding`.

    Args:
        num_embeddings: size of the dictionary.
        embedding_dim: size of each vector.
        padding_idx: this row gets no gradient and starts as zeros (negative counts from the end).
        max_norm: rows looked up with a larger norm are renormalised to `max_norm`, and written
            back into `weight` (see the module docstring).
        norm_type: the p of the p-norm for `max_norm`.
        scale_grad_by_freq: scale each row's gradient by 1 / its count in the mini-batch.
        sparse: not supported; True raises NotImplementedError.

    Shape:
        - Input: integer indices `(*)`; output: `(*, embedding_dim)`.

    Difference from torch: integer indices of any width are accepted.

    >>> import jax.numpy as jnp
    >>> Embedding(10, 3, padding_idx=0)(jnp.array([[0, 2]])).shape
    (1, 2, 3)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Any = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if sparse:
            raise NotImplementedError(_SPARSE_MSG.format(cls="Embedding"))
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = _normalize_padding_idx(
            padding_idx, num_embeddings, "Padding_idx must be within num_embeddings"
        )
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        _initial_weight(self, (num_embeddings, embedding_dim), _weight, dtype, not _freeze)
        self.sparse = sparse

    def forward(self, input: Any) -> jax.Array:
        out, new_weight = _embedding_and_weight(
            input,
            self.weight,
            self.padding_idx,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.sparse,
        )
        self._store_renormed(new_weight)
        return out

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        return s

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Any,
        freeze: bool = True,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
    ) -> Embedding:
        """An Embedding holding `embeddings` (2-D: rows, dim), frozen unless `freeze=False`.

        Mirrors `torch.nn.Embedding.from_pretrained` (the `padding_idx` row is not zeroed).
        """
        emb, rows, cols = _pretrained_shape(embeddings)
        return cls(
            num_embeddings=rows,
            embedding_dim=cols,
            _weight=emb,
            _freeze=freeze,
            padding_idx=padding_idx,
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            sparse=sparse,
        )


# legacy backward hooks: torch's last operation of Embedding.forward (see _backward_hooks.py)
def _embedding_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    if len(args) != 1 or kwargs or m.max_norm is not None:
        return NotImplemented
    (wg,) = gate(sessions, (m.weight,))
    with swap_gated(((m.weight, wg),)):
        return m.forward(args[0]), True


register_last_operation(Embedding, _embedding_rule)


class EmbeddingBag(_EmbeddingBase):
    """Sums, means or maxes of bags of embeddings, without materialising each lookup.

    Mirrors `torch.nn.EmbeddingBag`; the math is `F.embedding_bag`.

    Args:
        num_embeddings: size of the dictionary.
        embedding_dim: size of each vector.
        max_norm, norm_type, scale_grad_by_freq: as in `Embedding`.
        mode: "sum", "mean" (default) or "max".
        sparse: not supported; True raises NotImplementedError.
        include_last_offset: `offsets` has one more entry, the end of the last bag.
        padding_idx: index excluded from every bag; its row starts as zeros.

    Shape:
        - `input` `(B, N)` (offsets None) or `(L,)` with `offsets` `(B,)`; output
          `(B, embedding_dim)`.

    >>> import jax.numpy as jnp
    >>> bag = EmbeddingBag(10, 3, mode="sum")
    >>> bag(jnp.array([1, 2, 4, 5, 4]), jnp.array([0, 2])).shape
    (2, 3)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        mode: str = "mean",
        sparse: bool = False,
        _weight: Any = None,
        include_last_offset: bool = False,
        padding_idx: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if sparse:
            raise NotImplementedError(_SPARSE_MSG.format(cls="EmbeddingBag"))
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.padding_idx = _normalize_padding_idx(
            padding_idx, num_embeddings, "padding_idx must be within num_embeddings"
        )
        _initial_weight(self, (num_embeddings, embedding_dim), _weight, dtype, True)
        self.mode = mode
        self.sparse = sparse
        self.include_last_offset = include_last_offset

    def forward(self, input: Any, offsets: Any = None, per_sample_weights: Any = None) -> jax.Array:
        out, new_weight = _embedding_bag_and_weight(
            input,
            self.weight,
            offsets,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.mode,
            self.sparse,
            per_sample_weights,
            self.include_last_offset,
            self.padding_idx,
        )
        self._store_renormed(new_weight)
        return out

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings!r}, {self.embedding_dim!r}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm!r}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type!r}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq!r}"
        s += f", mode={self.mode!r}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx!r}"
        return s

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Any,
        freeze: bool = True,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        mode: str = "mean",
        sparse: bool = False,
        include_last_offset: bool = False,
        padding_idx: int | None = None,
    ) -> EmbeddingBag:
        """An EmbeddingBag holding `embeddings`, frozen unless `freeze=False`.

        Mirrors `torch.nn.EmbeddingBag.from_pretrained`.
        """
        emb, rows, cols = _pretrained_shape(embeddings)
        bag = cls(
            num_embeddings=rows,
            embedding_dim=cols,
            _weight=emb,
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            mode=mode,
            sparse=sparse,
            include_last_offset=include_last_offset,
            padding_idx=padding_idx,
        )
        bag.weight.requires_grad = not freeze
        return bag


# eager calls run one cached jit program unless max_norm renormalises the weight (a write)
def _check_indices(module: Embedding, args: tuple, kwargs: dict) -> None:
    """Embedding's eager index-range check (IndexError), kept when the cached program runs."""
    x = args[0] if args else kwargs["input"]
    _check_range(_indices(x, "embedding"), module.weight.shape[0], "embedding")


register_pure_forward(Embedding, when=lambda m: m.max_norm is None, check=_check_indices)
