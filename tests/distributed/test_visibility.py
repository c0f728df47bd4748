"""Seeing shardings: `Module.named_shardings()`, placements in `repr`, the summary's Sharding column.

The test process has 8 simulated CPU devices (tests/conftest.py).
"""

from __future__ import annotations

import re
import threading

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P
from jaxmodule import nn
from jaxmodule.nn.modules import _placement
from jaxmodule.utils import summary


def _mesh(n: int = 8, name: str = "data") -> Mesh:
    return Mesh(np.array(jax.devices()[:n]), (name,))


def _put(cell, sharding) -> None:
    cell._value = jax.device_put(cell._value, sharding)


def _strip_placements(text: str) -> str:
    """The repr without the notes this feature adds: what torch prints."""
    return re.sub(r"  (\[[^\n]*\])?( *# mesh: \{[^\n]*\})?$", "", text, flags=re.M)


def _layers(model, mod) -> None:
    model.fc1 = mod.Linear(64, 128)
    model.act = mod.ReLU()
    model.fc2 = mod.Linear(128, 16)


class Net(nn.Module):
    def __init__(self, mod=nn):
        super().__init__()
        _layers(self, mod)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def _torch_net() -> type:
    class Net(torch.nn.Module):
        """Net in torch, for the reference reprs and keys."""

        def __init__(self, mod=torch.nn):
            super().__init__()
            _layers(self, mod)

    return Net


TNet = _torch_net()


class Tied(nn.Module):
    """Tied embedding, a non-persistent buffer, a persistent one, extra state."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.head = nn.Linear(8, 16, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("steps", jnp.zeros((), jnp.int32))
        self.register_buffer("cache", jnp.zeros(8), persistent=False)

    def get_extra_state(self):
        return {"note": 1}

    def set_extra_state(self, state):
        pass


def _fsdp_like(model: nn.Module, mesh: Mesh) -> None:
    """Replicate everything, then shard each 2-d weight's first dimension."""
    model.to(NamedSharding(mesh, P()))
    for _, p in model.named_parameters():
        if p.ndim == 2:
            _put(p, NamedSharding(mesh, P("data", None)))


# ---- named_shardings ------------------------------------------------------------------------------


def test_named_shardings_keys_values_and_order_follow_state_dict():
    model = Net()
    mesh = _mesh()
    _fsdp_like(model, mesh)
    got = model.named_shardings()
    assert (
        list(got)
        == list(model.state_dict())
        == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    )
    assert got["fc1.weight"] == NamedSharding(mesh, P("data", None))
    assert got["fc1.bias"] == NamedSharding(mesh, P())
    assert all(s == model.state_dict()[k].sharding for k, s in got.items())
    # same keys as torch's state_dict of the same architecture
    assert list(got) == list(TNet(torch.nn).state_dict())


def test_named_shardings_tied_nonpersistent_extra_state_and_prefix():
    model = Tied()
    mesh = _mesh()
    _put(model.embed.weight, NamedSharding(mesh, P("data", None)))
    sd_keys = [k for k in model.state_dict() if not k.endswith("_extra_state")]
    got = model.named_shardings()
    # the tied weight under both keys, no 'cache' (non-persistent), no '_extra_state'
    assert list(got) == sd_keys == ["steps", "embed.weight", "head.weight"]
    assert got["embed.weight"] is got["head.weight"]
    assert isinstance(got["steps"], SingleDeviceSharding)
    assert list(model.named_shardings(prefix="model/")) == [f"model/{k}" for k in sd_keys]
    assert list(model.named_shardings("m.")) == [
        k for k in model.state_dict(prefix="m.") if "_extra" not in k
    ]


def test_named_shardings_follows_state_dict_post_hooks():
    model = Net()

    def drop_bias(module, sd, prefix, meta):
        del sd[prefix + "fc2.bias"]

    model._register_state_dict_hook(drop_bias)
    assert (
        list(model.named_shardings())
        == list(model.state_dict())
        == ["fc1.weight", "fc1.bias", "fc2.weight"]
    )


def test_named_shardings_meta_cells_give_planned_sharding_or_none():
    model = Net()
    planned = NamedSharding(_mesh(), P("data", None))
    model.fc1.weight._value = jax.ShapeDtypeStruct((128, 64), jnp.float32, sharding=planned)
    model.fc1.bias._value = jax.ShapeDtypeStruct((128,), jnp.float32)
    got = model.named_shardings()
    assert got["fc1.weight"] == planned and got["fc1.bias"] is None


def test_named_shardings_bad_prefix_is_a_clear_type_error():
    with pytest.raises(TypeError, match=r"Net.named_shardings: prefix must be a str, got int"):
        Net().named_shardings(prefix=3)


def test_named_shardings_is_a_map_location_for_a_flat_state_dict(tmp_path):
    mesh = _mesh()
    model = Net()
    _fsdp_like(model, mesh)
    jaxmodule.save(model.state_dict(), tmp_path / "ckpt")
    # the default restore of a sharded array would keep it sharded; ask for a different layout
    target = Net()
    _put(target.fc1.weight, NamedSharding(mesh, P(None, "data")))
    _put(target.fc2.weight, NamedSharding(_mesh(4), P("data", None)))
    restored = jaxmodule.load(tmp_path / "ckpt", map_location=target.named_shardings())
    for k, s in target.named_shardings().items():
        assert restored[k].sharding == s, k
        np.testing.assert_array_equal(np.asarray(restored[k]), np.asarray(model.state_dict()[k]))


def test_named_shardings_with_prefix_is_a_map_location_for_a_nested_object(tmp_path):
    mesh = _mesh()
    model = Net()
    jaxmodule.save({"model": model.state_dict(), "step": 3}, tmp_path / "ckpt")
    target = Net()
    _fsdp_like(target, mesh)
    restored = jaxmodule.load(
        tmp_path / "ckpt", map_location=target.named_shardings(prefix="model/")
    )
    assert restored["step"] == 3
    for k, s in target.named_shardings().items():
        assert restored["model"][k].sharding == s, k
    assert restored["model"]["fc1.weight"].sharding.spec == P("data", None)
    # loading it keeps the placement (load_state_dict puts values where the cells are)
    target.load_state_dict(restored["model"])
    assert target.fc1.weight._value.sharding == NamedSharding(mesh, P("data", None))


# ---- repr -----------------------------------------------------------------------------------------

SHARDED_NET = """\
Net(  # mesh: {'data': 8}
  (fc1): Linear(in_features=64, out_features=128, bias=True)  [weight: P('data', None), bias: P()]
  (act): ReLU()
  (fc2): Linear(in_features=128, out_features=16, bias=True)  [weight: P('data', None), bias: P()]
)"""


def test_repr_shows_placements_and_the_mesh_once():
    model = Net()
    _fsdp_like(model, _mesh())
    assert repr(model) == SHARDED_NET
    assert str(model) == SHARDED_NET
    assert _strip_placements(repr(model)) == repr(TNet(torch.nn))


def test_repr_all_same_placement_is_one_entry_and_buffers_count():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    model.to(NamedSharding(_mesh(), P()))
    assert repr(model) == (
        "Sequential(  # mesh: {'data': 8}\n"
        "  (0): Linear(in_features=4, out_features=8, bias=True)  [P()]\n"
        "  (1): BatchNorm1d(8, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)  [P()]\n"
        ")"
    )
    _put(model[1].running_var, NamedSharding(_mesh(), P("data")))
    assert (
        "[weight: P(), bias: P(), running_mean: P(), running_var: P('data',), "
        "num_batches_tracked: P()]"
    ) in repr(model)


def test_repr_single_leaf_and_own_arrays_of_a_container():
    lin = nn.Linear(8, 8)
    _put(lin.weight, NamedSharding(_mesh(), P("data", None)))
    assert repr(lin) == (
        "Linear(in_features=8, out_features=8, bias=True)  "
        "[weight: P('data', None), bias: cpu:0]  # mesh: {'data': 8}"
    )

    class WithScale(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(jnp.ones(8))
            self.fc = nn.Linear(8, 8)

    m = WithScale()
    m.to(NamedSharding(_mesh(), P()))
    assert repr(m).split("\n")[0] == "WithScale(  [P()]  # mesh: {'data': 8}"


def test_repr_layers_on_different_single_devices_and_other_meshes():
    model = Net()
    model.fc2.to(jax.devices()[1])
    assert repr(model) == (
        "Net(\n"
        "  (fc1): Linear(in_features=64, out_features=128, bias=True)  [cpu:0]\n"
        "  (act): ReLU()\n"
        "  (fc2): Linear(in_features=128, out_features=16, bias=True)  [cpu:1]\n"
        ")"
    )
    # two meshes: the header names the one most arrays use; the other is written out
    model = Net()
    _fsdp_like(model, _mesh())
    _put(model.fc2.bias, NamedSharding(_mesh(4, "x"), P("x")))
    assert "[weight: P('data', None), bias: P('x',) on {'x': 4}]" in repr(model)
    assert repr(model).startswith("Net(  # mesh: {'data': 8}\n")


def test_repr_module_list_root_and_compression():
    layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
    layers.to(NamedSharding(_mesh(), P()))
    assert repr(layers) == (
        "ModuleList(  # mesh: {'data': 8}\n"
        "  (0-2): 3 x Linear(in_features=8, out_features=8, bias=True)  [P()]\n"
        ")"
    )
    _put(layers[1].weight, NamedSharding(_mesh(), P("data", None)))
    assert repr(layers) == (
        "ModuleList(  # mesh: {'data': 8}\n"
        "  (0): Linear(in_features=8, out_features=8, bias=True)  [P()]\n"
        "  (1): Linear(in_features=8, out_features=8, bias=True)  [weight: P('data', None), bias: P()]\n"
        "  (2): Linear(in_features=8, out_features=8, bias=True)  [P()]\n"
        ")"
    )


def test_repr_meta_cells():
    model = Net()
    _fsdp_like(model, _mesh())
    planned = NamedSharding(_mesh(), P(None, "data"))
    model.fc2.weight._value = jax.ShapeDtypeStruct((16, 128), jnp.float32, sharding=planned)
    model.fc2.bias._value = jax.ShapeDtypeStruct((16,), jnp.float32)
    assert (
        "(fc2): Linear(in_features=128, out_features=16, bias=True)  "
        "[weight: meta P(None, 'data'), bias: meta]" in repr(model)
    )
    # a fully meta model without planned shardings prints as torch does
    meta = Net()
    for p in meta.parameters():
        p._value = jax.ShapeDtypeStruct(p.shape, p.dtype)
    assert repr(meta) == repr(TNet(torch.nn))
    # planned on an abstract mesh: spread, shown
    meta.fc1.weight._value = jax.ShapeDtypeStruct(
        (128, 64), jnp.float32, sharding=NamedSharding(_mesh().abstract_mesh, P("data", None))
    )
    assert repr(meta).startswith(
        "Net(  # mesh: {'data': 8}\n  (fc1): Linear(in_features=64, "
        "out_features=128, bias=True)  [weight: meta P('data', None), bias: meta]"
    )


def test_repr_user_override_is_annotated():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(jnp.ones((8, 2)))

        def __repr__(self):
            return "Custom<w>"

    c = Custom()
    _put(c.w, NamedSharding(_mesh(), P("data", None)))
    assert repr(c) == "Custom<w>  [P('data', None)]  # mesh: {'data': 8}"
    assert repr(Custom()) == "Custom<w>"


@pytest.mark.parametrize(
    "build",
    [
        lambda mod: (Net if mod is nn else TNet)(mod),
        lambda mod: mod.Sequential(
            mod.Conv2d(3, 8, 3),
            mod.BatchNorm2d(8),
            mod.ReLU(),
            mod.Flatten(),
            mod.ModuleList([mod.Linear(4, 4) for _ in range(3)]),
        ),
        lambda mod: mod.TransformerEncoderLayer(16, 2, dim_feedforward=32),
        lambda mod: mod.LSTM(4, 8, num_layers=2),
        lambda mod: mod.ModuleDict({"a": mod.Embedding(5, 3), "b": mod.LayerNorm(3)}),
    ],
)
def test_single_device_repr_is_torchs(build):
    model, tmodel = build(nn), build(torch.nn)
    assert repr(model) == repr(tmodel)
    model.to(jax.devices()[3])  # one device, not the default one: still torch's text
    assert repr(model) == repr(tmodel)


def test_repr_that_raises_leaves_no_state_behind():
    class Bad(nn.Linear):
        def extra_repr(self):
            raise ValueError("boom")

    model = nn.Sequential(Bad(8, 8), nn.Linear(8, 8))
    model.to(NamedSharding(_mesh(), P()))
    with pytest.raises(ValueError, match="boom"):
        repr(model)
    assert getattr(_placement._printing, "view", None) is None
    single = nn.Sequential(nn.Linear(8, 8))
    assert repr(single) == repr(torch.nn.Sequential(torch.nn.Linear(8, 8)))


def test_repr_placement_state_is_per_thread():
    model = Net()
    _fsdp_like(model, _mesh())
    single = Net()
    out = {}

    def other():
        out["single"] = repr(single)

    # a plain model printed on another thread while a sharded one prints here
    orig = nn.ReLU.extra_repr

    def slow_extra(self):
        if self is model.act:
            t = threading.Thread(target=other)
            t.start()
            t.join()
        return orig(self)

    nn.ReLU.extra_repr = slow_extra
    try:
        assert repr(model) == SHARDED_NET
    finally:
        nn.ReLU.extra_repr = orig
    assert out["single"] == repr(TNet(torch.nn))


# ---- summary --------------------------------------------------------------------------------------

SHARDED_SUMMARY = """\
========================================================================================
Layer (type:depth-idx)                  Output Shape             Param #        Sharding
========================================================================================
Net                                     [64, 16]                 --             --
├─Linear: 1-1                           [64, 128]                8,320          mixed
├─ReLU: 1-2                             [64, 128]                --             --
├─Linear: 1-3                           [64, 16]                 2,064          P()
========================================================================================
Total params: 10,384
Trainable params: 10,384
Non-trainable params: 0
========================================================================================
Input size (MB): 0.02
Params size (MB): 0.04
Params size per device (MB): 0.01
Buffers size (MB): 0.00
Estimated Total Size (MB): 0.06
========================================================================================
Mesh: {'data': 8}
========================================================================================"""


def test_summary_sharding_column_and_per_device_footer():
    model = Net()
    _fsdp_like(model, _mesh())
    model.fc2.to(NamedSharding(_mesh(), P()))
    s = summary(model, jnp.ones((64, 64)))
    assert str(s) == SHARDED_SUMMARY
    assert s.sharded and s.mesh == "{'data': 8}"
    assert [layer.sharding for layer in s.layers] == [None, "mixed", None, "P()"]
    # per device: fc1's weight split 8 ways, its bias everywhere; fc2 whole everywhere
    fc1 = (128 * 64 // 8 + 128) * 4
    fc2 = (16 * 128 + 16) * 4
    assert s.param_bytes_per_device == {f"cpu:{i}": fc1 + fc2 for i in range(8)}
    assert list(s.param_bytes_per_device) == [f"cpu:{i}" for i in range(8)]
    assert s.total_params == 10384 and s.param_bytes == 10384 * 4


def test_summary_column_text_matches_repr_and_single_device_is_unchanged():
    model = Net()
    model.to(NamedSharding(_mesh(), P()))
    _put(model.fc1.weight, NamedSharding(_mesh(), P("data", None)))
    _put(model.fc1.bias, NamedSharding(_mesh(), P("data")))
    s = summary(model, jnp.ones((8, 64)))
    assert [layer.sharding for layer in s.layers] == [None, "mixed", None, "P()"]
    assert "(fc2): Linear(in_features=128, out_features=16, bias=True)  [P()]" in repr(model)
    # layers on different single devices: their devices, no mesh line
    model = Net()
    model.fc2.to(jax.devices()[1])
    s = summary(model, jnp.ones((8, 64)))
    assert [layer.sharding for layer in s.layers] == [None, "cpu:0", None, "cpu:1"]
    assert s.mesh is None and "Mesh" not in str(s)
    assert s.param_bytes_per_device == {"cpu:0": 8320 * 4, "cpu:1": 2064 * 4}
    # one device (even a non-default one): torchinfo's table, no column, no extra footer
    plain = Net()
    want = str(summary(plain, jnp.ones((8, 64))))
    plain.to(jax.devices()[2])
    got = summary(plain, jnp.ones((8, 64)))
    assert str(got) == want and not got.sharded and got.param_bytes_per_device == {}
    assert "Sharding" not in want and "per device" not in want and "Mesh" not in want


def test_fully_shard_model_is_visible_everywhere():
    from jaxmodule.distributed import fully_shard, init_device_mesh

    mesh = init_device_mesh("cpu", (4, 2), mesh_dim_names=("dp", "tp"))
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    fully_shard(model, mesh=mesh)
    shardings = model.named_shardings()
    assert list(shardings) == list(model.state_dict())
    assert all(s == model.state_dict()[k].sharding for k, s in shardings.items())
    lines = repr(model).split("\n")
    assert lines[0] == "Sequential(  # mesh: {'dp': 4, 'tp': 2}"
    specs = {k: repr(s.spec) for k, s in shardings.items()}
    assert lines[1].endswith(
        f"[{specs['0.weight']}]"
        if specs["0.weight"] == specs["0.bias"]
        else f"[weight: {specs['0.weight']}, bias: {specs['0.bias']}]"
    )
    s = summary(model, jnp.ones((8, 16)))
    assert s.sharded and s.mesh == "{'dp': 4, 'tp': 2}"
    assert _strip_placements(repr(model)) == repr(
        torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    )
