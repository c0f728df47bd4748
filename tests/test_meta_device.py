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


# ---- every layer of jaxmodule.nn builds under meta as it builds normally --------------------------
from tests.nn.modules.module_cases import CASES  # noqa: E402
import torch  # noqa: E402

from jaxmodule import nn  # noqa: E402


def _build(case, lib, arr):
    if case.build is not None:
        return case.build(lib, arr)
    args = [arr(a) if isinstance(a, np.ndarray) else a for a in case.args]
    kwargs = {k: arr(v) if isinstance(v, np.ndarray) else v for k, v in case.kwargs.items()}
    return getattr(lib, case.cls)(*args, **kwargs)


def _layout(model) -> list:
    return [(k, tuple(v.shape), jnp.dtype(v.dtype)) for k, v in model.state_dict().items()]


def _torch_layout(model) -> list:
    return [(k, tuple(v.shape), str(v.dtype).replace("torch.", "").replace("int64", "int32"))
            for k, v in model.state_dict().items()]


_JM_CASES = [c for c in CASES if hasattr(nn, c.cls)]


@pytest.mark.parametrize("case", _JM_CASES, ids=[c.id for c in _JM_CASES])
def test_every_layer_builds_under_meta_like_a_normal_build_and_like_torch(case):
    normal = _build(case, nn, jnp.asarray)
    key = jaxmodule.get_rng_state()
    with jaxmodule.device("meta"):
        meta = _build(case, nn, jnp.asarray)
    assert (jaxmodule.get_rng_state() == key).all(), "a meta build advanced the generator"
    assert _layout(meta) == _layout(normal)
    assert [k for k, _ in meta.named_parameters()] == [k for k, _ in normal.named_parameters()]
    assert repr(meta) == repr(normal)
    made = [p.is_meta for p in (*meta.parameters(), *meta.buffers())]
    if case.lazy:  # torch cannot read an uninitialized parameter's shape: jaxmodule's own checks only
        return
    with torch.device("meta"):
        t = _build(case, torch.nn, lambda a: torch.from_numpy(np.array(a)))
    assert [(k, s) for k, s, _ in _torch_layout(t)] == [(k, s) for k, s, _ in _layout(meta)]
    # arrays given to the constructor (a loss weight) stay real in both libraries
    assert [tp.is_meta for tp in (*t.parameters(), *t.buffers())] == made
