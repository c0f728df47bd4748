"""`weight_norm` and `spectral_norm` as parametrizations. Mirrors `torch.nn.utils.parametrizations`.

The state_dict keys are torch's: `parametrizations.weight.original0` (g) and `original1` (v)
for weight_norm; `parametrizations.weight.original` plus `parametrizations.weight.0._u` / `._v`
for spectral_norm. `orthogonal` is not implemented (calling it raises NotImplementedError).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ..._random import next_key
from .. import functional as F
from ..functional._utils import unwrap
from ..modules.module import Module
from . import parametrize

__all__ = ["orthogonal", "spectral_norm", "weight_norm"]


def _norm_except_dim(v: jax.Array, dim: int) -> jax.Array:
    """torch.norm_except_dim(v, 2, dim): the 2-norm over every axis but `dim` (all axes if dim == -1),
    keeping dims."""
    if dim == -1:
        return jnp.sqrt(jnp.sum(jnp.square(v)))
    d = dim % v.ndim
    axes = tuple(a for a in range(v.ndim) if a != d)
    return jnp.sqrt(jnp.sum(jnp.square(v), axis=axes, keepdims=True))


class _WeightNorm(Module):
    """`weight = g * v / ||v||` with the norm over every dimension but `dim`."""

    def __init__(self, dim: int | None = 0) -> None:
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Any, weight_v: Any) -> jax.Array:
        v, g = unwrap(weight_v), unwrap(weight_g)
        return v * (g / _norm_except_dim(v, self.dim))

    def right_inverse(self, weight: Any) -> tuple[jax.Array, jax.Array]:
        w = unwrap(weight)
        return _norm_except_dim(w, self.dim), w


def weight_norm(module: Module, name: str = "weight", dim: int = 0) -> Module:
    """Reparametrize `module.<name>` as magnitude `original0` times direction `original1`.

    Mirrors `torch.nn.utils.parametrizations.weight_norm`, including loading old-style
    `<name>_g` / `<name>_v` state_dict keys.

    Args:
        module: the module.
        name: the parameter to reparametrize.
        dim: the dimension kept by the norm (None: one norm over the whole tensor).

    >>> from jaxmodule import nn
    >>> m = weight_norm(nn.Linear(3, 4))
    >>> [(k, v.shape) for k, v in m.state_dict().items()]
    [('bias', (4,)), ('parametrizations.weight.original0', (4, 1)), ('parametrizations.weight.original1', (4, 3))]
    """
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)

    def _weight_norm_compat_hook(state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                                 missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
        g_key, v_key = f"{prefix}{name}_g", f"{prefix}{name}_v"
        if g_key in state_dict and v_key in state_dict:
            state_dict[f"{prefix}parametrizations.{name}.original0"] = state_dict.pop(g_key)
            state_dict[f"{prefix}parametrizations.{name}.original1"] = state_dict.pop(v_key)

    module._register_load_state_dict_pre_hook(_weight_norm_compat_hook)
    return module


class _SpectralNorm(Module):
    """`weight / sigma`, sigma estimated by power iteration on the buffers `_u` and `_v`."""

    def __init__(self, weight: Any, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12) -> None:
        super().__init__()
        w = unwrap(weight)
        ndim = w.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError("Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            weight_mat = self._reshape_weight_to_matrix(w)
            h, wd = weight_mat.shape
            ku, kv = jax.random.split(next_key())
            u = jax.random.normal(ku, (h,), weight_mat.dtype)
            v = jax.random.normal(kv, (wd,), weight_mat.dtype)
            self.register_buffer("_u", F.normalize(u, dim=0, eps=self.eps))
            self.register_buffer("_v", F.normalize(v, dim=0, eps=self.eps))
            self._power_method(weight_mat, 15)

    def _reshape_weight_to_matrix(self, weight: jax.Array) -> jax.Array:
        if self.dim != 0:
            weight = jnp.moveaxis(weight, self.dim, 0)
        return weight.reshape(weight.shape[0], -1)

    def _power_method(self, weight_mat: jax.Array, n_power_iterations: int) -> None:
        """Update `_u` and `_v` in place (no gradient flows through them, as in torch)."""
        weight_mat = jax.lax.stop_gradient(weight_mat)
        u, v = self._u._value, self._v._value
        for _ in range(n_power_iterations):
            u = F.normalize(weight_mat @ v, dim=0, eps=self.eps)
            v = F.normalize(jnp.conj(weight_mat).T @ u, dim=0, eps=self.eps)
        self._u = u
        self._v = v

    def forward(self, weight: Any) -> jax.Array:
        w = unwrap(weight)
        if w.ndim == 1:
            return F.normalize(w, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(w)
        if self.training:
            self._power_method(weight_mat, self.n_power_iterations)
        u = jax.lax.stop_gradient(self._u._value)
        v = jax.lax.stop_gradient(self._v._value)
        sigma = jnp.vdot(u, weight_mat @ v)
        return w / sigma

    def right_inverse(self, value: Any) -> Any:
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """Divide `module.<name>` by its spectral norm, estimated by power iteration.

    Mirrors `torch.nn.utils.parametrizations.spectral_norm`: in training mode every access of
    `module.<name>` runs `n_power_iterations` steps and updates the buffers `_u`/`_v`; in eval
    mode they are used as they are. Initial `_u`/`_v` are drawn from jaxmodule's generator.

    Args:
        module: the module.
        name: the weight's name.
        n_power_iterations: power-iteration steps per access in training mode.
        eps: the normalization epsilon.
        dim: the output dimension (default 0, and 1 for ConvTranspose modules).

    >>> from jaxmodule import nn
    >>> m = spectral_norm(nn.Linear(3, 4))
    >>> list(m.state_dict())
    ['bias', 'parametrizations.weight.original', 'parametrizations.weight.0._u', 'parametrizations.weight.0._v']
    """
    weight = getattr(module, name, None)
    if not parametrize._is_tensor(weight):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        transposed = any(c.__name__ in ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
                         and c.__module__.startswith("jaxmodule.") for c in type(module).__mro__)
        dim = 1 if transposed else 0
    parametrize.register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


def orthogonal(module: Module, name: str = "weight", orthogonal_map: str | None = None, *,
               use_trivialization: bool = True) -> Module:
    """Not implemented (torch.nn.utils.parametrizations.orthogonal)."""
    raise NotImplementedError("jaxmodule.nn.utils.parametrizations.orthogonal is not implemented")
