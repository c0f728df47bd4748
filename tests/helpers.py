"""Shared helpers for differential tests against torch.

Tolerance policy: float32 comparisons use rtol=1e-5 with atol=1e-6 (the atol only matters for
values near zero, where a relative bound is meaningless). Tests that need looser bounds say why.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

RTOL = 1e-5
ATOL = 1e-6


def to_numpy(x: Any) -> np.ndarray:
    """jax array / Parameter / torch tensor / number -> numpy (bfloat16 via float32)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.name == "bfloat16":
        arr = arr.astype(np.float32)
    return arr


def to_torch(x: Any, requires_grad: bool = False) -> torch.Tensor:
    t = torch.from_numpy(np.array(to_numpy(x)))
    if requires_grad:
        t.requires_grad_(True)
    return t


def assert_close(actual: Any, expected: Any, rtol: float = RTOL, atol: float = ATOL) -> None:
    a, e = to_numpy(actual), to_numpy(expected)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def randn(*shape: int, seed: int = 0, dtype: Any = np.float32) -> np.ndarray:
    """Deterministic numpy normal samples (feed the same data to both libraries)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def copy_torch_to_jm(jm_module: Any, torch_module: torch.nn.Module) -> None:
    """Load the torch module's state_dict into the jaxmodule module (strict)."""
    jm_module.load_state_dict(torch_module.state_dict())


def state_dict_shapes(sd: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in sd.items()]


def randomize_torch_module(tm: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give a torch module random parameters (N(0, 1)) and running statistics, if it has them
    (mean N(0, 1), variance U(0.5, 1.5)); returns `tm`."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tm.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        if getattr(tm, "running_mean", None) is not None:
            tm.running_mean.copy_(torch.randn(tm.running_mean.shape, generator=gen))
            tm.running_var.copy_(torch.rand(tm.running_var.shape, generator=gen) + 0.5)
    return tm


def assert_forward_and_grads_match(
    jm: Any,
    tm: torch.nn.Module,
    x: np.ndarray,
    rtol: float = RTOL,
    atol: float = ATOL,
    grad_tol: dict[str, float] | None = None,
) -> None:
    """Forward of `jm` vs `tm` on `x`, then the gradients (w.r.t. `x` and every parameter) of a
    random cotangent; `grad_tol` (rtol/atol dict) defaults to the forward's tolerance."""
    grad_tol = dict(rtol=rtol, atol=atol) if grad_tol is None else grad_tol
    out, vjp = jax.vjp(lambda m, v: m(v), jm, jnp.asarray(x))
    g = randn(*out.shape, seed=7)
    gm, gx = vjp(jnp.asarray(g))
    tx = to_torch(x, requires_grad=True)
    tout = tm(tx)
    tout.backward(torch.from_numpy(g))
    assert_close(out, tout, rtol, atol)
    assert_close(gx, tx.grad, **grad_tol)
    for name, p in tm.named_parameters():
        assert_close(gm.get_parameter(name)._value, p.grad, **grad_tol)
