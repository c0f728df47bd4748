"""Meta-device construction, `device=` placement, the `jaxmodule.device` context and `as_array`
on sharded arrays (issue 12). Differential against torch 2.13 where torch has the same thing
(meta shapes, dtypes, keys, reprs, the unchanged generator)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxmodule import nn
from jaxmodule._device import resolve_device
from jaxmodule._tensor import as_array, cell_value, is_tensor_cell
from jaxmodule.nn import Buffer, Parameter

from tests.nn.modules.module_cases import CASES


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
def _build(case, lib, arr):
    if case.build is not None:
        return case.build(lib, arr)
    args = [arr(a) if isinstance(a, np.ndarray) else a for a in case.args]
    kwargs = {k: arr(v) if isinstance(v, np.ndarray) else v for k, v in case.kwargs.items()}
    return getattr(lib, case.cls)(*args, **kwargs)


def _layout(model) -> list:
    return [(k, tuple(v.shape), jnp.dtype(v.dtype)) for k, v in model.state_dict().items()]


def _torch_layout(model) -> list:
    return [
        (k, tuple(v.shape), str(v.dtype).replace("torch.", "").replace("int64", "int32"))
        for k, v in model.state_dict().items()
    ]


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
    if (
        case.lazy
    ):  # torch cannot read an uninitialized parameter's shape: jaxmodule's own checks only
        return
    with torch.device("meta"):
        t = _build(case, torch.nn, lambda a: torch.from_numpy(np.array(a)))
    assert [(k, s) for k, s, _ in _torch_layout(t)] == [(k, s) for k, s, _ in _layout(meta)]
    # arrays given to the constructor (a loss weight) stay real in both libraries
    assert [tp.is_meta for tp in (*t.parameters(), *t.buffers())] == made


# ---- meta cells: repr, device, is_meta, errors, init, to('meta'), load_state_dict ----------------
def test_meta_parameter_and_buffer_text_device_and_flags_match_torch():
    with jaxmodule.device("meta"):
        lin, bn = nn.Linear(3, 4), nn.BatchNorm1d(3)
    with torch.device("meta"):
        tlin, tbn = torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(3)
    assert repr(lin.weight) == repr(tlin.weight)
    assert repr(bn.running_mean) == repr(tbn.running_mean)
    assert repr(bn.num_batches_tracked) == repr(tbn.num_batches_tracked).replace(
        "torch.int64", "int32"
    )
    frozen = Parameter(jaxmodule.empty(3, 4, device="meta"), requires_grad=False)
    assert repr(frozen) == repr(
        torch.nn.Parameter(torch.empty(3, 4, device="meta"), requires_grad=False)
    )
    assert lin.weight.is_meta and not nn.Linear(3, 4).weight.is_meta
    assert (
        lin.weight.device == "meta" and str(lin.weight.device) == str(tlin.weight.device) == "meta"
    )
    assert lin.weight.device.type == tlin.weight.device.type
    assert isinstance(lin.weight._value, jax.ShapeDtypeStruct)


def test_forward_on_a_meta_module_says_to_allocate_first():
    with jaxmodule.device("meta"):
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
        lin = nn.Linear(3, 4)
    for model, x in ((lin, jnp.ones((2, 3))), (net, jnp.ones((1, 3, 5, 5)))):
        with pytest.raises(RuntimeError, match=r"meta device.*to_empty"):
            model(x)
    with pytest.raises(RuntimeError, match="meta device"):
        jnp.asarray(lin.weight)


def test_init_functions_leave_meta_cells_alone_and_draw_nothing_like_torch():
    with jaxmodule.device("meta"):
        lin = nn.Linear(6, 5)
    key = jaxmodule.get_rng_state()
    for fn in (
        nn.init.kaiming_uniform_,
        nn.init.xavier_normal_,
        nn.init.orthogonal_,
        nn.init.zeros_,
        nn.init.eye_,
        lambda p: nn.init.sparse_(p, 0.5),
        nn.init.trunc_normal_,
    ):
        assert fn(lin.weight) is lin.weight and lin.weight.is_meta
    nn.init.dirac_(Parameter(jaxmodule.empty(4, 2, 3, device="meta")))
    lin.reset_parameters()
    with jaxmodule.no_grad():
        lin.weight.fill_(1.0)
    assert lin.weight.is_meta and (jaxmodule.get_rng_state() == key).all()
    with torch.device("meta"):
        t = torch.nn.Linear(6, 5)
    assert torch.nn.init.kaiming_uniform_(t.weight).is_meta  # torch: the same no-op


def test_to_meta_keeps_shapes_dtypes_shardings_and_moving_back_raises_torchs_error():
    sh = NamedSharding(_mesh(), P("x"))
    lin = nn.Linear(8, 16).to(sh)
    lin.half()
    assert lin.to("meta") is lin and lin.weight.is_meta and lin.bias.is_meta
    assert lin.weight.shape == (16, 8) and lin.weight.dtype == jnp.float16
    assert lin.weight._value.sharding == sh
    t = torch.nn.Linear(8, 16).to("meta")
    with pytest.raises(NotImplementedError) as ours:
        lin.to("cpu")
    with pytest.raises(NotImplementedError) as theirs:
        t.to("cpu")
    assert str(ours.value).replace("jaxmodule", "torch") == str(theirs.value)
    assert lin.weight.is_meta  # refused before anything moved
    with pytest.raises(NotImplementedError):
        lin.cpu()


def test_meta_modules_copy_pickle_and_flatten():
    import copy
    import pickle

    with jaxmodule.device("meta"):
        enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2)
    for other in (copy.deepcopy(enc), pickle.loads(pickle.dumps(enc))):
        assert _layout(other) == _layout(enc) and all(p.is_meta for p in other.parameters())
    leaves = jax.tree_util.tree_leaves(enc)
    assert leaves and all(isinstance(v, jax.ShapeDtypeStruct) for v in leaves)


def test_load_state_dict_into_a_meta_module_materialises_it_on_the_planned_sharding():
    src = nn.Linear(8, 16)
    with jaxmodule.device("meta"):
        lin = nn.Linear(8, 16)
    sh = NamedSharding(_mesh(), P("x"))
    lin.weight._value = jax.ShapeDtypeStruct((16, 8), jnp.float32, sharding=sh)  # a planned layout
    assert lin.load_state_dict(src.state_dict()) is not None
    assert not lin.weight.is_meta and lin.weight._value.sharding == sh
    np.testing.assert_array_equal(np.asarray(lin.weight._value), np.asarray(src.weight._value))
    np.testing.assert_array_equal(np.asarray(lin.bias._value), np.asarray(src.bias._value))
    assert lin.bias._value.devices() == {jax.devices()[0]}


def test_load_state_dict_into_a_meta_module_is_transactional():
    with jaxmodule.device("meta"):
        net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    sd = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).state_dict()
    sd["1.weight"] = np.zeros((5, 5), np.float32)
    with pytest.raises(RuntimeError, match="size mismatch for 1.weight"):
        net.load_state_dict(sd)
    assert all(p.is_meta for p in net.parameters())


def test_meta_factories():
    z = jaxmodule.zeros(2, 3, device="meta")
    assert isinstance(z, jax.ShapeDtypeStruct) and z.shape == (2, 3) and z.dtype == jnp.float32
    key = jaxmodule.get_rng_state()
    r = jaxmodule.randn(4, device="meta", dtype="bfloat16")
    assert r.dtype == jnp.bfloat16 and (jaxmodule.get_rng_state() == key).all()
    with jaxmodule.device("meta"):
        assert isinstance(jaxmodule.ones(3), jax.ShapeDtypeStruct)
    assert isinstance(jaxmodule.ones(3), jax.Array)
    assert jaxmodule.zeros(2, device="cpu:4").devices() == {jax.devices()[4]}


# ---- device= and `with jaxmodule.device(...)` place what is built ----------------------------------
def _devices(model) -> set:
    return {d for v in (*model.parameters(), *model.buffers()) for d in v._value.devices()}


def test_device_argument_places_the_module_and_its_children():
    cpus = jax.devices()
    assert _devices(nn.Linear(3, 4, device="cpu:5")) == {cpus[5]}
    assert _devices(nn.Linear(3, 4, device=cpus[6])) == {cpus[6]}
    assert _devices(nn.Linear(3, 4, device=jaxmodule.device("cpu", 2))) == {cpus[2]}
    assert _devices(nn.Linear(3, 4, device=torch.device("cpu", 3))) == {cpus[3]}
    assert _devices(nn.Transformer(8, 2, 1, 1, 16, device="cpu:7")) == {cpus[7]}
    assert _devices(nn.BatchNorm2d(3, device="cpu:1")) == {cpus[1]}
    assert _devices(nn.Linear(3, 4)) == {cpus[0]}


def test_device_context_places_modules_built_inside_and_is_restored():
    cpus = jax.devices()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 4)
            self.register_buffer("scale", jnp.ones(4))

    with jaxmodule.device("cpu:3") as d:
        assert d == cpus[3] and d.index == 3 and str(d) == "cpu:3"
        net = Net()
        explicit = nn.Linear(2, 2, device="cpu:6")  # an explicit device= wins, as in torch
    assert _devices(net) == {cpus[3]} and _devices(explicit) == {cpus[6]}
    assert _devices(Net()) == {cpus[0]}
    with jaxmodule.device("meta"):
        with jaxmodule.device("cpu:2"):
            assert _devices(Net()) == {cpus[2]}
        assert all(p.is_meta for p in Net().buffers())
    assert not any(p.is_meta for p in Net().parameters())


def test_device_context_or_argument_with_a_sharding():
    replicated = NamedSharding(_mesh(), P())
    with jaxmodule.device(replicated):
        lin = nn.Linear(3, 4)
    assert lin.weight._value.sharding == replicated and lin.bias._value.sharding == replicated
    emb = nn.Embedding(16, 4, device=NamedSharding(_mesh(), P("x")))
    assert len(emb.weight._value.addressable_shards) == 8
    assert emb.weight._value.addressable_shards[0].data.shape == (2, 4)


def test_device_object_is_torch_like_and_equal_to_the_jax_device():
    d = jaxmodule.device("cpu:3")
    assert d == jax.devices()[3] and jax.devices()[3] == d and hash(d) == hash(jax.devices()[3])
    assert repr(d) == repr(torch.device("cpu", 3)) and str(d) == str(torch.device("cpu", 3))
    assert repr(jaxmodule.device("meta")) == repr(torch.device("meta"))
    assert d.platform == "cpu" and d.jax is jax.devices()[3]
    assert jax.device_put(jnp.ones(2), d.jax).devices() == {jax.devices()[3]}
    assert nn.Linear(2, 2).to(d).weight.devices() == {jax.devices()[3]}
    with pytest.raises(RuntimeError, match="out of range"):
        jaxmodule.device("cpu:99")
    with pytest.raises(RuntimeError, match="meta device"):
        resolve_device("meta")


def test_a_100m_parameter_model_builds_under_meta_fast_and_allocates_nothing():
    import time

    def live_bytes() -> int:
        return sum(a.nbytes for a in jax.live_arrays())

    before = live_bytes()
    start = time.perf_counter()
    with jaxmodule.device("meta"):
        model = nn.Sequential(*(nn.Linear(4096, 4096) for _ in range(6)))
    took = time.perf_counter() - start
    n = sum(int(np.prod(p.shape)) for p in model.parameters())
    assert n > 100_000_000
    assert live_bytes() - before < 1_000_000, "a meta build allocated parameter memory"
    assert took < 2.0, f"meta build of {n} parameters took {took:.2f}s"


def test_the_placement_wrapper_costs_a_normal_construction_under_a_microsecond_or_so():
    import timeit

    class Bare(nn.Module):  # a constructor doing nothing, so only the wrapper's cost is measured
        def __init__(self, a, b=None):
            pass

    obj, plain = Bare.__new__(Bare), Bare.__init__.__wrapped__
    wrapped_t = min(timeit.repeat(lambda: Bare.__init__(obj, 1, b=2), number=2000, repeat=7)) / 2000
    plain_t = min(timeit.repeat(lambda: plain(obj, 1, b=2), number=2000, repeat=7)) / 2000
    assert wrapped_t - plain_t < 3e-6, (wrapped_t, plain_t)  # a Linear(8, 8) build takes ~1 ms
