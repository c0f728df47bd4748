"""Batch normalization layers: `BatchNorm1d/2d/3d`, their lazy forms, and `SyncBatchNorm`.

Running statistics live in buffers (`running_mean`, `running_var`, `num_batches_tracked`) with
torch's names, shapes and state_dict keys. JAX arrays are immutable, so a training-mode forward
assigns new arrays to those buffers (`self.running_mean = new`) instead of updating them in place;
this works eagerly and inside `jaxmodule.compile`, which writes the new values back after each
call. Everything in `forward` is traceable: no Python branch depends on an array value.

`num_batches_tracked` is int64 as in torch when JAX's x64 mode is on; with x64 off (JAX's
default) it is int32, which is exact up to 2**31 - 1 batches. A torch checkpoint's int64 counter
loads into it either way.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ..._dtype import to_dtype
from ..functional.normalization import _batch_norm_and_stats
from ..parameter import Buffer, UninitializedBuffer, UninitializedParameter, is_lazy
from ._backward_hooks import input_and_params_rule, register_last_operation
from ._eager import register_pure_forward
from .module import Module
from .normalization import _init_affine, _reset_affine

__all__ = [
    "BatchNorm1d",
    "LazyBatchNorm1d",
    "BatchNorm2d",
    "LazyBatchNorm2d",
    "BatchNorm3d",
    "LazyBatchNorm3d",
    "SyncBatchNorm",
]


def _long_dtype() -> Any:
    """torch.long: int64 with JAX's x64 mode on, int32 otherwise."""
    return jax.dtypes.canonicalize_dtype(jnp.int64)


class _NormBase(Module):
    """Shared state of batch and instance norms: affine parameters and running statistics.

    Mirrors `torch.nn.modules.batchnorm._NormBase`.
    """

    _version = 2
    # Registered by __init__ (None without track_running_stats); annotations only, no class
    # values, so Module.__getattr__ still finds the buffers.
    running_mean: Buffer | None
    running_var: Buffer | None
    num_batches_tracked: Buffer | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = to_dtype(dtype)
        _init_affine(self, affine, (num_features,), bias, dtype)
        if self.track_running_stats:
            self.register_buffer("running_mean", jnp.zeros((num_features,), dt))
            self.register_buffer("running_var", jnp.ones((num_features,), dt))
            self.register_buffer("num_batches_tracked", jnp.zeros((), _long_dtype()))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Zero `running_mean` and `num_batches_tracked`, fill `running_var` with ones."""
        if self.track_running_stats:  # then the buffers are registered
            self.running_mean.zero_()  # type: ignore[union-attr]
            self.running_var.fill_(1)  # type: ignore[union-attr]
            self.num_batches_tracked.zero_()  # type: ignore[union-attr]

    def reset_parameters(self) -> None:
        """Reset the running statistics; weight to ones, bias to zeros (torch's init)."""
        self.reset_running_stats()
        _reset_affine(self, self.affine)

    def _check_input_dim(self, input: Any) -> None:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def _load_from_state_dict(
        self,
        state_dict: Any,
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list,
        unexpected_keys: list,
        error_msgs: list,
    ) -> None:
        # Checkpoints older than version 2 have no num_batches_tracked: keep the current one.
        version = local_metadata.get("version", None)
        if (version is None or version < 2) and self.track_running_stats:
            key = prefix + "num_batches_tracked"
            if key not in state_dict:
                nbt = self.num_batches_tracked
                state_dict[key] = nbt._value if nbt is not None else jnp.zeros((), _long_dtype())
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class _BatchNorm(_NormBase):
    """The forward shared by `BatchNorm1d/2d/3d`. Mirrors `torch.nn.modules.batchnorm._BatchNorm`."""

    def forward(self, input: Any) -> jax.Array:
        self._check_input_dim(input)
        factor: Any = 0.0 if self.momentum is None else self.momentum
        nbt = self.num_batches_tracked
        if self.training and self.track_running_stats and nbt is not None:
            # Module.__setattr__ puts the new array into the cell `nbt`
            self.num_batches_tracked = nbt + 1  # type: ignore[assignment]
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / nbt._value
        # Batch statistics in training mode, and in eval mode when there are no running stats.
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_buffers = not self.training or self.track_running_stats
        running_mean = self.running_mean if use_buffers else None
        running_var = self.running_var if use_buffers else None
        out, new_mean, new_var = _batch_norm_and_stats(
            input, running_mean, running_var, self.weight, self.bias, bn_training, factor, self.eps
        )
        # Module.__setattr__ puts the new arrays into the buffers' cells
        if bn_training and running_mean is not None:
            self.running_mean = new_mean  # type: ignore[assignment]
        if bn_training and running_var is not None:
            self.running_var = new_var  # type: ignore[assignment]
        return out


# legacy backward hooks: torch's last operation of _BatchNorm.forward (see _backward_hooks.py)
register_last_operation(_BatchNorm, input_and_params_rule(("weight", "bias")))


class _LazyNormBase(_NormBase):
    """A norm whose `num_features` is read from dim 1 of the first input.

    Mirrors torch's `_LazyNormBase`: after the first call the module becomes `cls_to_become`.
    """

    cls_to_become: type | None = None

    def __init__(
        self,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(0, eps, momentum, False, False, device, dtype, bias=False)
        self.affine = affine
        self.track_running_stats = track_running_stats
        if self.affine:
            self.weight = UninitializedParameter(dtype=dtype)
            if bias:
                self.bias = UninitializedParameter(dtype=dtype)
        if self.track_running_stats:
            self.running_mean = UninitializedBuffer(jnp.zeros((0,), to_dtype(dtype)))
            self.running_var = UninitializedBuffer(jnp.zeros((0,), to_dtype(dtype)))
            # registers the buffer (Module.__setattr__ takes an array for a None buffer)
            self.num_batches_tracked = jnp.zeros((), _long_dtype())  # type: ignore[assignment]

    def reset_parameters(self) -> None:
        if self.num_features != 0:
            super().reset_parameters()

    def has_uninitialized_params(self) -> bool:
        """True while a parameter or buffer still waits for its shape."""
        cells = (*self._parameters.values(), *self._buffers.values())
        return any(is_lazy(c) for c in cells if c is not None)

    def initialize_parameters(self, input: Any) -> None:
        """Materialise the parameters and buffers with `num_features = input.shape[1]`."""
        if not self.has_uninitialized_params():
            return
        self.num_features = input.shape[1]
        shape = (self.num_features,)
        if self.affine:
            self.weight.materialize(shape)
            if self.bias is not None:
                self.bias.materialize(shape)
        if self.track_running_stats:  # then the buffers are registered UninitializedBuffers
            self.running_mean.materialize(shape)  # type: ignore[union-attr]
            self.running_var.materialize(shape)  # type: ignore[union-attr]
        self.reset_parameters()

    def forward(self, input: Any) -> jax.Array:
        # As torch: materialise on the first call (a loaded state_dict may have done it already),
        # then become `cls_to_become` for good.
        self._check_input_dim(input)
        self.initialize_parameters(input)
        self.__class__ = self.cls_to_become  # type: ignore[assignment]  # a lazy module becomes its eager class, as in torch
        return self.forward(input)


def _check_dims(input: Any, allowed: tuple[int, ...], text: str) -> None:
    if input.ndim not in allowed:
        raise ValueError(f"expected {text} input (got {input.ndim}D input)")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over `(N, C)` or `(N, C, L)` inputs. Mirrors `torch.nn.BatchNorm1d`.

    Args:
        num_features: `C`.
        eps: added to the variance.
        momentum: factor of the running-statistics update; None for a cumulative average.
        affine: learn a per-channel weight and bias.
        track_running_stats: keep running statistics (used in eval mode).
        bias: learn the bias (keyword-only, with `affine`).

    Shape:
        - Input: `(N, C)` or `(N, C, L)`; output: same shape.

    Differences from torch: running statistics are replaced, not updated in place (see the
    module docstring); `num_batches_tracked` is int32 unless JAX's x64 mode is on.

    >>> import jax.numpy as jnp
    >>> bn = BatchNorm1d(3)
    >>> bn(jnp.arange(6.0).reshape(2, 3)).shape
    (2, 3)
    >>> int(bn.num_batches_tracked)
    1
    """

    def _check_input_dim(self, input: Any) -> None:
        _check_dims(input, (2, 3), "2D or 3D")


class BatchNorm2d(_BatchNorm):
    """Batch normalization over `(N, C, H, W)` inputs. Mirrors `torch.nn.BatchNorm2d`.

    Args and differences: as `BatchNorm1d`.
    """

    def _check_input_dim(self, input: Any) -> None:
        _check_dims(input, (4,), "4D")


class BatchNorm3d(_BatchNorm):
    """Batch normalization over `(N, C, D, H, W)` inputs. Mirrors `torch.nn.BatchNorm3d`.

    Args and differences: as `BatchNorm1d`.
    """

    def _check_input_dim(self, input: Any) -> None:
        _check_dims(input, (5,), "5D")


class LazyBatchNorm1d(_LazyNormBase, _BatchNorm):
    """`BatchNorm1d` with `num_features` inferred from the first input. Mirrors torch's."""

    cls_to_become = BatchNorm1d
    _check_input_dim = BatchNorm1d._check_input_dim


class LazyBatchNorm2d(_LazyNormBase, _BatchNorm):
    """`BatchNorm2d` with `num_features` inferred from the first input. Mirrors torch's."""

    cls_to_become = BatchNorm2d
    _check_input_dim = BatchNorm2d._check_input_dim


class LazyBatchNorm3d(_LazyNormBase, _BatchNorm):
    """`BatchNorm3d` with `num_features` inferred from the first input. Mirrors torch's."""

    cls_to_become = BatchNorm3d
    _check_input_dim = BatchNorm3d._check_input_dim


class SyncBatchNorm(_BatchNorm):
    """Batch normalization whose statistics cover the whole (global) batch.

    Mirrors `torch.nn.SyncBatchNorm` (any input of at least 2 dims). In JAX there is no process
    group to synchronise: inside `jax.jit`, a batch sharded over devices is one global array, and
    the batch mean and variance XLA computes are already over the global batch. So this layer
    behaves as `BatchNorm*d` on the global batch; `process_group` is stored and not used.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )
        self.process_group = process_group

    def _check_input_dim(self, input: Any) -> None:
        if input.ndim < 2:
            raise ValueError(f"expected at least 2D input (got {input.ndim}D input)")

    def forward(self, input: Any) -> jax.Array:
        self._check_input_dim(input)
        if input.shape[1] == 0:
            raise ValueError("SyncBatchNorm number of input channels should be non-zero")
        return super().forward(input)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """Replace every `BatchNorm*d` in `module` by a `SyncBatchNorm` sharing its state.

        Mirrors `torch.nn.SyncBatchNorm.convert_sync_batchnorm`.
        """
        out = module
        if isinstance(module, _BatchNorm):
            out = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
                bias=module.bias is not None,
            )
            if module.affine:
                out.weight = module.weight
                out.bias = module.bias
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                out._buffers[name] = module._buffers[name]
            out.training = module.training
            if hasattr(module, "qconfig"):
                out.qconfig = module.qconfig
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out


# eager calls of these run one cached jit program (see _eager.py)
# training mode with running statistics writes them: not cached then
register_pure_forward(
    BatchNorm1d, BatchNorm2d, BatchNorm3d, when=lambda m: not (m.training and m.track_running_stats)
)
