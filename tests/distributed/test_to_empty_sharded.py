"""`to_empty` onto shardings, and initialisation after it, never put a whole array on one device
(issue 12). 8 simulated CPU devices (tests/conftest.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxmodule import nn


def _mesh(shape=(8,), names=("x",)) -> Mesh:
    return Mesh(np.array(jax.devices()[:8]).reshape(shape), names)


def _shard_sized(arr: jax.Array) -> None:
    """Every device holds exactly its shard, never the whole array (unless replicated)."""
    sh = arr.sharding
    for shard in arr.addressable_shards:
        assert shard.data.shape == sh.shard_shape(arr.shape)
        assert shard.data.devices() == {shard.device}


class Block(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.up = nn.Linear(d, 4 * d)
        self.down = nn.Linear(4 * d, d)
        self.norm = nn.LayerNorm(d)


def _plan(model, mesh) -> None:
    """What the sharding API does: give each meta cell a planned NamedSharding."""
    for p in model.parameters():
        spec = P("x") if p.shape[0] % 8 == 0 else P()
        p._value = jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=NamedSharding(mesh, spec))


def test_to_empty_onto_a_sharding_makes_each_shard_in_place():
    mesh = _mesh()
    sh = NamedSharding(mesh, P("x"))
    with jaxmodule.device("meta"):
        m = nn.Sequential(nn.Linear(16, 64), nn.Linear(64, 32))
    with jax.transfer_guard("disallow"):
        m.to_empty(device=sh)
    for p in m.parameters():
        assert not p.is_meta and p._value.sharding == sh and float(jnp.abs(p._value).sum()) == 0
        _shard_sized(p._value)


def test_a_planned_sharding_wins_over_a_device_name_like_fsdp2():
    mesh = _mesh()
    with jaxmodule.device("meta"):
        m = Block()
    _plan(m, mesh)
    m.norm.bias._value = jax.ShapeDtypeStruct(
        (16,), jnp.float32
    )  # no plan: goes to the device named
    with jax.transfer_guard("disallow"):
        m.to_empty(device="cpu:3")
    assert m.up.weight._value.sharding == NamedSharding(mesh, P("x"))
    assert len(m.up.weight._value.sharding.device_set) == 8
    _shard_sized(m.up.weight._value)
    assert m.norm.bias._value.devices() == {jax.devices()[3]}


def test_to_empty_from_real_arrays_onto_a_sharding_and_onto_meta():
    m = nn.Linear(16, 8)
    sh = NamedSharding(_mesh((4, 2), ("a", "b")), P("a"))
    m.to_empty(device=sh)
    assert m.weight._value.sharding == sh and m.bias._value.sharding == sh
    _shard_sized(m.weight._value)
    m.to_empty(device="meta")
    assert m.weight.is_meta and m.weight._value.sharding == sh  # the layout is kept as a plan
    m.to_empty(device="cpu")  # multi-device plan: kept
    assert m.weight._value.sharding == sh


def test_to_empty_grads_follow_and_recurse_false_stays_local():
    m = nn.Sequential(nn.Linear(8, 8))
    m[0].weight.grad = jnp.ones((8, 8))
    m[0].to_empty(device="cpu:2")
    assert m[0].weight.grad.devices() == {jax.devices()[2]} and float(m[0].weight.grad.sum()) == 0
    outer = nn.Sequential(nn.Linear(2, 2))
    outer.register_buffer("b", jnp.ones(2))
    outer.to_empty(device="cpu:4", recurse=False)
    assert outer.b.devices() == {jax.devices()[4]} and outer[0].weight.devices() == {
        jax.devices()[0]
    }


def test_to_empty_is_transactional_and_names_the_array_that_failed():
    with jaxmodule.device("meta"):
        m = nn.Sequential(nn.Linear(16, 64), nn.Linear(64, 3))  # 3 rows do not split 8 ways
    sh = NamedSharding(_mesh(), P("x"))
    with pytest.raises(ValueError, match=r"to_empty: cannot make '1.weight' \(shape \(3, 64\)"):
        m.to_empty(device=sh)
    assert all(p.is_meta for p in m.parameters())
    with pytest.raises(RuntimeError, match="out of range"):
        m.to_empty(device="cpu:42")
    assert all(p.is_meta for p in m.parameters())


def test_init_after_to_empty_runs_sharded_and_keeps_the_layout():
    mesh = _mesh()
    with jaxmodule.device("meta"):
        m = Block()
    _plan(m, mesh)
    m.to_empty(device="cpu")
    shardings = {n: p._value.sharding for n, p in m.named_parameters()}
    # the 8-byte generator key is copied to every device; nothing comes back to the host
    with jax.transfer_guard_device_to_host("disallow"):
        m.up.reset_parameters()
        m.down.reset_parameters()
        m.norm.reset_parameters()
        m.apply(
            lambda mod: (
                nn.init.trunc_normal_(mod.weight, std=0.02) if isinstance(mod, nn.Linear) else None
            )
        )
        for fn in (
            nn.init.xavier_uniform_,
            nn.init.kaiming_normal_,
            nn.init.zeros_,
            nn.init.ones_,
            lambda p: nn.init.constant_(p, 0.5),
            nn.init.normal_,
            nn.init.uniform_,
        ):
            fn(m.up.weight)
            assert m.up.weight._value.sharding == shardings["up.weight"]
    assert {n: p._value.sharding for n, p in m.named_parameters()} == shardings
    for p in m.parameters():
        _shard_sized(p._value)
    w = np.asarray(m.down.weight._value)
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002  # trunc_normal_(std=0.02) applied
    assert (np.asarray(m.norm.weight._value) == 1).all()
    b = np.asarray(m.up.bias._value)  # Linear's reset: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(b).max() <= 1 / np.sqrt(16) and b.std() > 0.05


def test_sharded_draw_has_the_right_distribution():
    sh = NamedSharding(_mesh(), P("x"))
    p = nn.Parameter(jax.device_put(jnp.zeros((512, 256)), sh))
    nn.init.normal_(p, 1.0, 2.0)
    v = np.asarray(p._value)
    assert p._value.sharding == sh
    assert abs(v.mean() - 1.0) < 0.02 and abs(v.std() - 2.0) < 0.02
    nn.init.uniform_(p, -1, 3)
    v = np.asarray(p._value)
    assert v.min() >= -1 and v.max() < 3 and abs(v.mean() - 1.0) < 0.02
    q = nn.Parameter(jax.device_put(jnp.zeros((64, 32)), sh))
    nn.init.orthogonal_(q)
    np.testing.assert_allclose(np.asarray(q._value).T @ np.asarray(q._value), np.eye(32), atol=1e-5)
    d = nn.Parameter(jax.device_put(jnp.zeros((8, 4, 3)), sh))
    nn.init.dirac_(d)
    assert d._value.sharding == sh and float(d._value.sum()) == 4


def test_meta_build_then_to_empty_then_load_state_dict_round_trip():
    src = Block()
    with jaxmodule.device("meta"):
        m = Block()
    _plan(m, _mesh())
    m.to_empty(device="cpu")
    m.load_state_dict(src.state_dict())
    x = jnp.ones((2, 16))
    np.testing.assert_allclose(
        np.asarray(m.down(m.up(x))), np.asarray(src.down(src.up(x))), rtol=1e-5, atol=1e-6
    )
    assert m.up.weight._value.sharding == NamedSharding(_mesh(), P("x"))


def test_meta_shard_allocate_init_gives_the_values_of_an_eager_build_bit_for_bit():
    def make():
        return nn.Sequential(
            nn.Linear(16, 64), nn.Linear(64, 16), nn.LayerNorm(16), nn.Embedding(32, 8)
        )

    jaxmodule.manual_seed(0)
    ref = make()
    with jaxmodule.device("meta"):
        m = make()
    _plan(m, _mesh())
    m.to_empty(device="cpu")
    jaxmodule.manual_seed(0)
    for mod in m.modules():
        if hasattr(mod, "reset_parameters"):
            mod.reset_parameters()
    for (name, a), (_, b) in zip(ref.named_parameters(), m.named_parameters()):
        assert b._value.sharding.spec == P("x"), name
        np.testing.assert_array_equal(np.asarray(b._value), np.asarray(a._value), err_msg=name)
