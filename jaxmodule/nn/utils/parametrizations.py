"""`weight_norm` and `spectral_norm` as parametrizations. Mirrors `torch.nn.utils.parametrizations`.

The state_dict keys are torch's: `parametrizations.weight.original0` (g) and `original1` (v)
for weight_norm; `parametrizations.weight.original` plus `parametrizations.weight.0._u` / `._v`
for spectral_norm; `parametrizations.weight.original` plus `parametrizations.weight.0.base` for
orthogonal.
"""

from __future__ import annotations

import enum
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..._random import next_key
from .. import functional as F
from ..functional._utils import unwrap
from ..modules.module import Module
from ..parameter import Buffer
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

    def _weight_norm_compat_hook(
        state_dict: dict,
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list,
        unexpected_keys: list,
        error_msgs: list,
    ) -> None:
        g_key, v_key = f"{prefix}{name}_g", f"{prefix}{name}_v"
        if g_key in state_dict and v_key in state_dict:
            state_dict[f"{prefix}parametrizations.{name}.original0"] = state_dict.pop(g_key)
            state_dict[f"{prefix}parametrizations.{name}.original1"] = state_dict.pop(v_key)

    module._register_load_state_dict_pre_hook(_weight_norm_compat_hook)
    return module


class _SpectralNorm(Module):
    """`weight / sigma`, sigma estimated by power iteration on the buffers `_u` and `_v`."""

    # Registered by __init__ for a weight of 2+ dims; annotations only, no class values, so
    # Module.__getattr__ still finds the buffers.
    _u: Buffer
    _v: Buffer

    def __init__(
        self, weight: Any, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12
    ) -> None:
        super().__init__()
        w = unwrap(weight)
        ndim = w.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(
                f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got {dim})"
            )
        if n_power_iterations <= 0:
            raise ValueError(
                "Expected n_power_iterations to be positive, but got "
                f"n_power_iterations={n_power_iterations}"
            )
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
        # Module.__setattr__ puts the new arrays into the buffers' cells
        self._u = u  # type: ignore[assignment]
        self._v = v  # type: ignore[assignment]

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


def spectral_norm(
    module: Module,
    name: str = "weight",
    n_power_iterations: int = 1,
    eps: float = 1e-12,
    dim: int | None = None,
) -> Module:
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
        transposed = any(
            c.__name__ in ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
            and c.__module__.startswith("jaxmodule.")
            for c in type(module).__mro__
        )
        dim = 1 if transposed else 0
    parametrize.register_parametrization(
        module, name, _SpectralNorm(weight, n_power_iterations, dim, eps)
    )
    return module


class _OrthMaps(enum.Enum):
    matrix_exp = enum.auto()
    cayley = enum.auto()
    householder = enum.auto()


def _mh(x: jax.Array) -> jax.Array:
    return jnp.conj(jnp.swapaxes(x, -1, -2))


def _is_orthogonal(q: jax.Array) -> bool:
    n, k = q.shape[-2], q.shape[-1]
    eps = 10.0 * n * float(jnp.finfo(q.dtype).eps)
    return bool(jnp.allclose(_mh(q) @ q, jnp.eye(k, dtype=q.dtype), atol=eps))


def _make_orthogonal(a: jax.Array) -> jax.Array:
    """The Q of a QR decomposition of `a`, with signs making diag(R) positive (unique, as torch's)."""
    q, r = jnp.linalg.qr(a)
    return q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def _householder_product(a: jax.Array, tau: jax.Array) -> jax.Array:
    """torch.linalg.householder_product: the first k columns of H_0 ... H_{k-1}, where
    H_i = I - tau_i v_i v_i^H and v_i is column i of `a` below the diagonal, with a 1 on it.

    Written with jnp (jax.lax.linalg.householder_product has no differentiation rule).
    """
    m, k = a.shape[-2], a.shape[-1]
    rows = jnp.arange(m)
    q0 = jnp.broadcast_to(jnp.eye(m, k, dtype=a.dtype), a.shape)

    def apply_reflector(j: Any, q: jax.Array) -> jax.Array:
        i = k - 1 - j
        col = jnp.take(a, i, axis=-1)
        v = jnp.where(rows > i, col, (rows == i).astype(a.dtype))
        t = jnp.take(tau, i, axis=-1)[..., None, None]
        return q - t * v[..., :, None] * (jnp.conj(v)[..., None, :] @ q)

    return jax.lax.fori_loop(0, k, apply_reflector, q0)


def _geqrf(q: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """LAPACK geqrf (real): R on and above the diagonal, Householder vectors below, and the taus.

    Eager numpy (used only in `right_inverse`, which torch also runs without gradient); JAX has
    no public geqrf.
    """
    a = np.array(q, dtype=np.float64)
    m, n = a.shape[-2], a.shape[-1]
    taus = np.zeros((*a.shape[:-2], min(m, n)))
    for b in np.ndindex(*a.shape[:-2]):
        mat, tau = a[b], taus[b]
        for j in range(min(m, n)):
            x = mat[j:, j].copy()
            tail = np.linalg.norm(x[1:])
            if tail == 0.0:
                continue
            beta = -np.copysign(np.hypot(x[0], tail), x[0])
            tau[j] = (beta - x[0]) / beta
            v = x / (x[0] - beta)
            v[0] = 1.0
            mat[j:, j + 1 :] -= tau[j] * np.outer(v, v @ mat[j:, j + 1 :])
            mat[j, j] = beta
            mat[j + 1 :, j] = v[1:]
    return a, taus


class _Orthogonal(Module):
    """Maps an unconstrained matrix to an orthogonal one (matrix_exp, cayley or householder)."""

    def __init__(
        self, weight: Any, orthogonal_map: _OrthMaps, *, use_trivialization: bool = True
    ) -> None:
        super().__init__()
        w = unwrap(weight)
        if jnp.iscomplexobj(w) and orthogonal_map == _OrthMaps.householder:
            raise ValueError("The householder parametrization does not support complex tensors.")
        self.shape = tuple(w.shape)
        self.orthogonal_map = orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, X: Any) -> jax.Array:  # noqa: N803 - torch's name
        x = unwrap(X)
        n, k = x.shape[-2], x.shape[-1]
        transposed = n < k
        if transposed:
            x = jnp.swapaxes(x, -1, -2)
            n, k = k, n
        if self.orthogonal_map in (_OrthMaps.matrix_exp, _OrthMaps.cayley):
            x = jnp.tril(x)
            if n != k:
                x = jnp.concatenate([x, jnp.zeros((*x.shape[:-2], n, n - k), x.dtype)], axis=-1)
            a = x - _mh(x)
            if self.orthogonal_map == _OrthMaps.matrix_exp:
                q = jax.scipy.linalg.expm(a)
            else:
                eye = jnp.eye(n, dtype=a.dtype)
                q = jnp.linalg.solve(eye - 0.5 * a, eye + 0.5 * a)
            if n != k:
                q = q[..., :k]
        else:
            a = jnp.tril(x, -1)
            tau = 2.0 / (1.0 + (a * a).sum(axis=-2))
            q = _householder_product(a, tau)
            q = q * jnp.trunc(jnp.diagonal(x, axis1=-2, axis2=-1))[..., None, :]
        if "base" in self._buffers:
            q = self.base @ q
        if transposed:
            q = jnp.swapaxes(q, -1, -2)
        return q

    def right_inverse(self, Q: Any) -> jax.Array:  # noqa: N803 - torch's name
        q = jax.lax.stop_gradient(unwrap(Q))
        if tuple(q.shape) != self.shape:
            raise ValueError(
                f"Expected a matrix or batch of matrices of shape {self.shape}. "
                f"Got a tensor of shape {tuple(q.shape)}."
            )
        q_init = q
        n, k = q.shape[-2], q.shape[-1]
        transpose = n < k
        if transpose:
            q = jnp.swapaxes(q, -1, -2)
            n, k = k, n
        if "base" not in self._buffers:
            if self.orthogonal_map in (_OrthMaps.cayley, _OrthMaps.matrix_exp):
                raise NotImplementedError(
                    "It is not possible to assign to the matrix exponential or the Cayley "
                    "parametrizations when use_trivialization=False."
                )
            a, tau = _geqrf(q)
            idx = np.arange(min(n, k))
            diag = np.sign(a[..., idx, idx])
            a[..., idx, idx] = np.where(tau == 0.0, -diag, diag)
            r = jnp.asarray(a, q.dtype)
            return jnp.swapaxes(r, -1, -2) if transpose else r
        if n == k:
            q = q if _is_orthogonal(q) else _make_orthogonal(q)
        else:
            noise = jax.random.normal(next_key(), (*q.shape[:-2], n, n - k), q.dtype)
            q = _make_orthogonal(jnp.concatenate([q, noise], axis=-1))
        self.base = q
        m = min(q_init.shape[-2], q_init.shape[-1])
        neg_id = jnp.zeros_like(q_init).at[..., jnp.arange(m), jnp.arange(m)].set(-1.0)
        return neg_id


def orthogonal(
    module: Module,
    name: str = "weight",
    orthogonal_map: str | None = None,
    *,
    use_trivialization: bool = True,
) -> Module:
    """Constrain `module.<name>` (a matrix or batch of matrices) to be orthogonal (unitary).

    Mirrors `torch.nn.utils.parametrizations.orthogonal`. Random numbers (the completion of a
    non-square matrix to a square one) come from jaxmodule's generator.

    Args:
        module: the module.
        name: the weight's name.
        orthogonal_map: "matrix_exp", "cayley" or "householder" (default: matrix_exp for square
            or complex matrices, else householder).
        use_trivialization: keep a `base` buffer so the map is applied around it.

    >>> import jax.numpy as jnp
    >>> from jaxmodule import nn
    >>> m = orthogonal(nn.Linear(3, 3))
    >>> bool(jnp.allclose(m.weight @ m.weight.T, jnp.eye(3), atol=1e-5))
    True
    """
    weight = getattr(module, name, None)
    if not parametrize._is_tensor(weight):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if weight.ndim < 2:
        raise ValueError(
            f"Expected a matrix or batch of matrices. Got a tensor of {weight.ndim} dimensions."
        )
    if orthogonal_map is None:
        square = weight.shape[-2] == weight.shape[-1]
        orthogonal_map = (
            "matrix_exp" if square or jnp.iscomplexobj(unwrap(weight)) else "householder"
        )
    orth_enum = getattr(_OrthMaps, orthogonal_map, None)
    if orth_enum is None:
        raise ValueError(
            'orthogonal_map has to be one of "matrix_exp", "cayley", "householder". '
            f"Got: {orthogonal_map}"
        )
    orth = _Orthogonal(weight, orth_enum, use_trivialization=use_trivialization)
    parametrize.register_parametrization(module, name, orth, unsafe=True)
    return module
