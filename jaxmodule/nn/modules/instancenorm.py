"""Instance normalization layers: `InstanceNorm1d/2d/3d` and their lazy forms.

Mirrors `torch.nn.modules.instancenorm`. With `track_running_stats=True`, a training-mode forward
assigns new arrays to `running_mean`/`running_var` (as `BatchNorm` does; see `batchnorm.py`);
like torch, it does not advance `num_batches_tracked`.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp

from ..functional.normalization import _instance_norm_and_stats
from ._backward_hooks import gate_view, register_last_operation
from .batchnorm import _LazyNormBase, _NormBase

__all__ = [
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LazyInstanceNorm1d",
    "LazyInstanceNorm2d",
    "LazyInstanceNorm3d",
]


class _InstanceNorm(_NormBase):
    """The forward shared by `InstanceNorm1d/2d/3d` (torch's defaults: no affine, no stats)."""

    _no_batch_dim: int = 0
    _dims_text: str = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )

    def _check_input_dim(self, input: Any) -> None:
        if input.ndim not in (self._no_batch_dim, self._no_batch_dim + 1):
            raise ValueError(f"expected {self._dims_text} input (got {input.ndim}D input)")

    def _apply_instance_norm(self, input: Any) -> jax.Array:
        use_input_stats = self.training or not self.track_running_stats
        out, new_mean, new_var = _instance_norm_and_stats(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_input_stats,
            self.momentum if self.momentum is not None else 0.0,
            self.eps,
        )
        # Module.__setattr__ puts the new arrays into the buffers' cells
        if use_input_stats and self.running_mean is not None:
            self.running_mean = new_mean  # type: ignore[assignment]
        if use_input_stats and self.running_var is not None:
            self.running_var = new_var  # type: ignore[assignment]
        return out

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
        # Checkpoints without version metadata (before torch 0.4) may carry running stats that
        # a layer with track_running_stats=False does not have: report them, as torch does.
        version = local_metadata.get("version", None)
        if version is None and not self.track_running_stats:
            keys = [prefix + n for n in ("running_mean", "running_var") if prefix + n in state_dict]
            if keys:
                klass = type(self).__name__
                error_msgs.append(
                    "Unexpected running stats buffer(s) {names} for {klass} with "
                    "track_running_stats=False. If state_dict is a checkpoint saved before 0.4.0, "
                    "this may be expected because {klass} does not track running stats by default "
                    "since 0.4.0. Please remove these keys from state_dict. If the running stats "
                    "are actually needed, instead set track_running_stats=True in {klass} to "
                    "enable them. See the documentation of {klass} for details.".format(
                        names=" and ".join(f'"{k}"' for k in keys), klass=klass
                    )
                )
                for k in keys:
                    state_dict.pop(k)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, input: Any) -> jax.Array:
        self._check_input_dim(input)
        feature_dim = input.ndim - self._no_batch_dim
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(
                    f"expected input's size at dim={feature_dim} to match num_features "
                    f"({self.num_features}), but got: {input.shape[feature_dim]}."
                )
            warnings.warn(
                f"input's size at dim={feature_dim} does not match num_features. You can silence "
                "this warning by not passing in num_features, which is not used because "
                "affine=False",
                stacklevel=2,
            )
        if input.ndim == self._no_batch_dim:
            return self._apply_instance_norm(input[None])[0]
        return self._apply_instance_norm(input)


# legacy backward hooks: torch's last operation of _InstanceNorm.forward (see _backward_hooks.py)
def _instance_norm_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    if len(args) != 1 or kwargs or jnp.ndim(args[0]) != m._no_batch_dim + 1:
        return NotImplemented
    y = m.forward(args[0])  # batch_norm on input viewed as (1, N * C, ...), then a view back
    shape = jnp.shape(y)
    return gate_view(sessions, y, (1, shape[0] * shape[1], *shape[2:])), True


register_last_operation(_InstanceNorm, _instance_norm_rule)


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization over `(N, C, L)` or `(C, L)` inputs. Mirrors `torch.nn.InstanceNorm1d`.

    Args:
        num_features: `C`.
        eps: added to the variance.
        momentum: factor of the running-statistics update (None counts as 0, as in torch).
        affine: learn a per-channel weight and bias (default False).
        track_running_stats: keep running statistics and use them in eval mode (default False).
        bias: learn the bias (keyword-only, with `affine`).

    Shape:
        - Input: `(N, C, L)` or `(C, L)`; output: same shape.

    Difference from torch: running statistics are replaced, not updated in place.

    >>> import jax.numpy as jnp
    >>> InstanceNorm1d(2)(jnp.arange(8.0).reshape(1, 2, 4)).shape
    (1, 2, 4)
    """

    _no_batch_dim = 2
    _dims_text = "2D or 3D"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization over `(N, C, H, W)` or `(C, H, W)` inputs.

    Mirrors `torch.nn.InstanceNorm2d`; args and differences as `InstanceNorm1d`.
    """

    _no_batch_dim = 3
    _dims_text = "3D or 4D"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization over `(N, C, D, H, W)` or `(C, D, H, W)` inputs.

    Mirrors `torch.nn.InstanceNorm3d`; args and differences as `InstanceNorm1d`.
    """

    _no_batch_dim = 4
    _dims_text = "4D or 5D"


class _LazyInstanceNorm(_LazyNormBase, _InstanceNorm):
    def __init__(
        self,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def initialize_parameters(self, input: Any) -> None:
        # The channel dim of an unbatched input is 0.
        if input.ndim == self._no_batch_dim:
            input = input[None]
        super().initialize_parameters(input)


class LazyInstanceNorm1d(_LazyInstanceNorm):
    """`InstanceNorm1d` with `num_features` inferred from the first input. Mirrors torch's
    (whose lazy forms default to `affine=True, track_running_stats=True`)."""

    cls_to_become = InstanceNorm1d
    _no_batch_dim = 2
    _dims_text = "2D or 3D"


class LazyInstanceNorm2d(_LazyInstanceNorm):
    """`InstanceNorm2d` with `num_features` inferred from the first input. Mirrors torch's."""

    cls_to_become = InstanceNorm2d
    _no_batch_dim = 3
    _dims_text = "3D or 4D"


class LazyInstanceNorm3d(_LazyInstanceNorm):
    """`InstanceNorm3d` with `num_features` inferred from the first input. Mirrors torch's."""

    cls_to_become = InstanceNorm3d
    _no_batch_dim = 4
    _dims_text = "4D or 5D"
