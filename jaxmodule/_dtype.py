"""torch-style dtype names and conversion of any dtype spelling to a numpy/JAX dtype."""

from __future__ import annotations

import builtins
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "float32",
    "float",
    "float16",
    "half",
    "bfloat16",
    "float64",
    "double",
    "int8",
    "int16",
    "int32",
    "int",
    "int64",
    "long",
    "uint8",
    "bool",
    "complex64",
    "complex128",
    "get_default_dtype",
    "set_default_dtype",
]

float32 = jnp.dtype("float32")
float = float32  # noqa: A001 - torch spelling
float16 = jnp.dtype("float16")
half = float16
bfloat16 = jnp.dtype(jnp.bfloat16)
float64 = jnp.dtype("float64")
double = float64
int8 = jnp.dtype("int8")
int16 = jnp.dtype("int16")
int32 = jnp.dtype("int32")
int = int32  # noqa: A001
int64 = jnp.dtype("int64")
long = int64
uint8 = jnp.dtype("uint8")
bool = jnp.dtype("bool")  # noqa: A001
complex64 = jnp.dtype("complex64")
complex128 = jnp.dtype("complex128")

_default_dtype = [float32]

X64_HINT = (
    "JAX's 64-bit mode is off, so {what} would silently stay 32-bit. Turn it on before creating "
    "arrays: `jax.config.update('jax_enable_x64', True)` or set the environment variable "
    "JAX_ENABLE_X64=1."
)


def get_default_dtype() -> np.dtype:
    """Return the default floating dtype (float32 unless changed). Mirrors `torch.get_default_dtype`."""
    return _default_dtype[0]


def set_default_dtype(d: Any) -> None:
    """Set the default floating dtype used by factories and layer parameters."""
    dt = to_dtype(d)
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(f"set_default_dtype: only floating-point types are supported, got {dt}")
    check_x64(dt, "set_default_dtype(float64)")
    _default_dtype[0] = dt


def to_dtype(d: Any) -> np.dtype:
    """Convert a jnp/np dtype, a string ('float32', 'torch.float16') or a torch dtype to a np.dtype."""
    if d is None:
        return get_default_dtype()
    if isinstance(d, str):
        name = d.removeprefix("torch.")
        aliases = {
            "float": "float32",
            "double": "float64",
            "half": "float16",
            "long": "int64",
            "int": "int32",
            "short": "int16",
            "cfloat": "complex64",
            "cdouble": "complex128",
        }
        return jnp.dtype(aliases.get(name, name))
    if type(d).__module__ == "torch":  # a torch.dtype, converted by name without importing torch
        return to_dtype(str(d))
    return jnp.dtype(d)


def is_floating(dtype: Any) -> builtins.bool:  # this file's `bool` is torch's dtype name
    """True for floating-point dtypes (bfloat16 included)."""
    return jnp.issubdtype(dtype, jnp.floating)


def is_floating_or_complex(dtype: Any) -> builtins.bool:
    return jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)


def x64_enabled() -> builtins.bool:
    """True when JAX's 64-bit mode (`jax_enable_x64`) is on."""
    return jax.config.jax_enable_x64  # type: ignore[attr-defined]  # jax sets its flags as dynamic attributes


def check_x64(dtype: Any, what: str) -> None:
    """Raise RuntimeError if `dtype` is float64/complex128 while JAX's x64 mode is off."""
    if jnp.dtype(dtype) in (float64, complex128) and not x64_enabled():
        raise RuntimeError(X64_HINT.format(what=what))
