"""Named tuples returned by torch's `(values, indices)` functions. Mirrors `torch.return_types`.

They are JAX pytrees (named tuples are), so jitted functions can return them.

>>> import jax.numpy as jnp, jaxmodule
>>> jaxmodule.max(jnp.array([[1.0, 5.0], [7.0, 2.0]]), dim=1)
max(values=Array([5., 7.], dtype=float32), indices=Array([1, 0], dtype=int32))
"""

from __future__ import annotations

from typing import NamedTuple

import jax

__all__ = [
    "max",
    "min",
    "sort",
    "topk",
    "kthvalue",
    "median",
    "nanmedian",
    "mode",
    "cummax",
    "cummin",
    "aminmax",
]


def _values_indices(name: str) -> type:
    cls = NamedTuple(name, [("values", jax.Array), ("indices", jax.Array)])  # type: ignore[misc]  # noqa: UP014 - named at runtime
    cls.__module__ = __name__
    return cls


max = _values_indices("max")  # noqa: A001 - torch's names
min = _values_indices("min")  # noqa: A001
sort = _values_indices("sort")
topk = _values_indices("topk")
kthvalue = _values_indices("kthvalue")
median = _values_indices("median")
nanmedian = _values_indices("nanmedian")
mode = _values_indices("mode")
cummax = _values_indices("cummax")
cummin = _values_indices("cummin")


class aminmax(NamedTuple):  # noqa: N801 - torch's name
    min: jax.Array  # noqa: A003
    max: jax.Array  # noqa: A003
