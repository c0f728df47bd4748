"""Shared helpers for differential tests against torch.

Tolerance policy: float32 comparisons use rtol=1e-5 with atol=1e-6 (the atol only matters for
values near zero, where a relative bound is meaningless). Tests that need looser bounds say why.
"""

from __future__ import annotations

from typing import Any

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
