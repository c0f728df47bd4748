"""Meta-device construction, `device=` placement, the `jaxmodule.device` context and `as_array`
on sharded arrays (issue 12). Differential against torch 2.13 where torch has the same thing
(meta shapes, dtypes, keys, reprs, the unchanged generator)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxmodule
from jaxmodule._tensor import as_array, cell_value, is_tensor_cell
from jaxmodule.nn import Buffer, Parameter


def _mesh() -> Mesh:
    return Mesh(np.array(jax.devices()[:8]), ("x",))


# ---- as_array never touches jax.Array._value (a host copy, or an error for a non-addressable array)
def test_as_array_passes_a_sharded_array_through_by_identity_without_a_transfer():
    a = jax.device_put(jnp.arange(64.0).reshape(8, 8), NamedSharding(_mesh(), P("x")))
    with jax.transfer_guard("disallow"):
        assert as_array(a) is a
        assert cell_value(a) is a
        assert not is_tensor_cell(a)
        p = Parameter(a)
        assert p._value is a and as_array(p) is a and cell_value(p) is a and is_tensor_cell(p)
        assert as_array(p.data) is a
    # jax.Array._value gathers the shards into a host copy it caches in _npy_value: never read
    assert a._npy_value is None


def test_as_array_still_converts_cells_numpy_and_python_data():
    b = Buffer(jnp.ones(3))
    assert as_array(b) is b._value
    assert as_array(np.ones(2)).dtype == jnp.float32
    assert as_array([1.0, 2.0]).dtype == jnp.float32
    assert as_array(jnp.ones(2), "float16").dtype == jnp.float16
