"""jaxmodule.checkpoint.save / load: round trips, atomic replace, placement, damaged inputs."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import OrderedDict
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding
from jaxmodule import nn
from jaxmodule.checkpoint import CheckpointManager, load, save


def _bits(x):
    """Raw bytes of an array (bit-exact comparison for every dtype, bfloat16 and NaN included)."""
    a = np.array(np.asarray(x), order="C", copy=True)
    return a.dtype.name, a.shape, a.reshape(-1).view(np.uint8).tobytes()


def assert_same(a, b):
    """Deep equality: same container types, key order, Python leaves and array bits."""
    assert type(a) is type(b), f"{type(a)} != {type(b)}"
    if isinstance(a, (jax.Array, np.ndarray, np.generic)):
        assert _bits(a) == _bits(b)
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            assert type(k) is type(next(kk for kk in b if kk == k))
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_state_dict_round_trip_keeps_keys_order_dtypes_bits(tmp_path):
    sd = OrderedDict(
        [
            (
                "layers.0.weight",
                jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)), jnp.float32),
            ),
            ("layers.0.bias", jnp.asarray([1.5, -2.25, 3.0, np.nan], jnp.bfloat16)),
            ("bn.running_mean", jnp.arange(4, dtype=jnp.float16)),
            ("bn.num_batches_tracked", np.array(7, np.int64)),
            ("a.int", jnp.asarray([-3, 2**31 - 1], jnp.int32)),
            ("z.first_in_alphabet_last_in_order", jnp.asarray([True, False])),
            ("u8", np.arange(250, 256, dtype=np.uint8)),
            ("empty", jnp.zeros((0, 5), jnp.bfloat16)),
        ]
    )
    sd._metadata = OrderedDict([("", {"version": 1}), ("layers.0", {"version": 1})])
    save(
        sd, tmp_path / "m"
    )  # a checkpoint directory keeps numpy vs jax (a .pth file is torch's format)
    out = load(tmp_path / "m")
    assert_same(out, sd)
    assert out._metadata == sd._metadata
    assert isinstance(out["layers.0.weight"], jax.Array)
    assert isinstance(out["u8"], np.ndarray)


def test_python_leaves_and_nested_containers_round_trip(tmp_path):
    obj = {
        "none": None,
        "t": True,
        "f": False,
        "i": -3,
        "big": 2**80,
        "x": 0.1,
        "inf": -math.inf,
        "nan": math.nan,
        "s": "dotted.key/ünïcode",
        "b": b"\x00\xff",
        "ba": bytearray(b"ab"),
        "c": 1.5 - 2j,
        "np_scalar": np.float32(2.5),
        "np_int": np.int64(-4),
        "nested": [1, (2, [3, {"k": (jnp.ones(2), np.zeros(3, np.int16))}]), set(), {4, 5}],
        "frozen": frozenset({"a"}),
        7: "int key",
        (1, "a"): "tuple key",
        None: "none key",
        2.5: "float key",
        False: "bool key",
        "odict": OrderedDict([("b", 1), ("a", 2)]),
    }
    save(obj, tmp_path / "o")
    assert_same(load(tmp_path / "o"), obj)


def test_scalar_and_bare_array_objects(tmp_path):
    for i, obj in enumerate([3, "x", None, jnp.arange(3), np.float64(1.25), [], {}]):
        save(obj, tmp_path / f"s{i}")
        assert_same(load(tmp_path / f"s{i}"), obj)


def test_torch_optimizer_state_dict_layout_int_keys(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    save(sd, tmp_path / "opt")
    out = load(tmp_path / "opt")
    assert list(out["state"]) == [0, 1] and all(type(k) is int for k in out["state"])
    assert out["param_groups"] == sd["param_groups"]
    for k, st in sd["state"].items():
        assert list(out["state"][k]) == list(st)
        for name, v in st.items():
            np.testing.assert_array_equal(np.asarray(out["state"][k][name]), v.numpy())
            assert isinstance(out["state"][k][name], jax.Array)


def test_training_state_with_generator_parameter_and_buffer(tmp_path):
    jaxmodule.manual_seed(3)
    gen = jaxmodule.Generator().manual_seed(11)
    gen.next_key()
    state = {
        "model": OrderedDict(w=jnp.ones((2, 2))),
        "optimizer": {
            "state": {0: {"momentum_buffer": jnp.full((2, 2), 0.5)}},
            "param_groups": [
                {"lr": 0.1, "momentum": 0.9, "params": [0], "nesterov": False, "foreach": None}
            ],
        },
        "scheduler": {"last_epoch": 4, "base_lrs": [0.1], "_last_lr": [0.05]},
        "step": 4,
        "rng": jaxmodule.default_generator.get_state(),
        "gen": gen,
        "p": nn.Parameter(jnp.arange(3.0), requires_grad=False),
        "buf": nn.Buffer(jnp.ones(2), persistent=False),
    }
    save(state, tmp_path / "train")
    out = load(tmp_path / "train")
    assert_same(
        {k: v for k, v in out.items() if k not in ("gen", "p", "buf")},
        {k: v for k, v in state.items() if k not in ("gen", "p", "buf")},
    )
    assert isinstance(out["gen"], jaxmodule.Generator)
    assert out["gen"].initial_seed() == 11
    assert _bits(out["gen"].next_key()) == _bits(gen.next_key())
    assert type(out["p"]) is nn.Parameter and out["p"].requires_grad is False
    assert _bits(out["p"]._value) == _bits(state["p"]._value)
    assert type(out["buf"]) is nn.Buffer and out["buf"].persistent is False


class MyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 5)

    def forward(self, x):
        return self.fc(x)


def test_seed_document_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = MyModel()
    save(model.state_dict(), "my_model.pth")
    loaded_model = MyModel()
    loaded_model.load_state_dict(load("my_model.pth"))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((3, 10)), jnp.float32)
    assert _bits(loaded_model(x)) == _bits(model(x))
    assert list(loaded_model.state_dict()) == ["fc.weight", "fc.bias"]


class WithExtra(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.counter = 0
        self.table = {"a": [1, 2]}

    def get_extra_state(self):
        return {"counter": self.counter, "table": self.table, "arr": jnp.full(3, self.counter)}

    def set_extra_state(self, state):
        self.counter = state["counter"]
        self.table = state["table"]


def test_module_extra_state_round_trip(tmp_path):
    m = WithExtra()
    m.counter = 5
    m.table = {"b": (3, None)}
    save(m.state_dict(), tmp_path / "e")
    sd = load(tmp_path / "e")
    assert list(sd) == ["_extra_state", "lin.weight", "lin.bias"]  # torch's order: own state first
    m2 = WithExtra()
    m2.load_state_dict(sd)
    assert m2.counter == 5 and m2.table == {"b": (3, None)}
    assert _bits(m2.lin.weight._value) == _bits(m.lin.weight._value)


def test_overwrite_replaces_atomically_and_leaves_no_siblings(tmp_path):
    p = tmp_path / "ck"
    save({"v": jnp.zeros(3)}, p)
    save({"v": jnp.ones(3), "w": 2}, p)
    assert_same(load(p), {"v": jnp.ones(3), "w": 2})
    assert sorted(os.listdir(tmp_path)) == ["ck"]


def test_overwrite_without_exchange_syscall(tmp_path, monkeypatch):
    from jaxmodule.checkpoint import _atomic

    monkeypatch.setattr(_atomic, "_exchange", lambda a, b: False)
    p = tmp_path / "ck"
    save([1], p)
    save([2], p)
    assert load(p) == [2]
    assert sorted(os.listdir(tmp_path)) == ["ck"]


def test_overwrites_a_file_but_not_a_foreign_directory(tmp_path):
    f = tmp_path / "model.pth"
    f.write_bytes(b"old torch file")
    save({"a": 1}, f)
    assert load(f) == {"a": 1}
    d = tmp_path / "data"
    d.mkdir()
    (d / "keep.txt").write_text("precious")
    with pytest.raises(IsADirectoryError, match="not a jaxmodule checkpoint; refusing to replace"):
        save({"a": 1}, d)
    assert (d / "keep.txt").read_text() == "precious"


def test_load_recovers_when_killed_between_fallback_renames(tmp_path):
    from jaxmodule.checkpoint import _atomic

    p = tmp_path / "ck"
    save({"v": 1}, p)
    old = _atomic.temp_sibling(p, _atomic._OLD)
    os.rename(p, old)  # first rename of the fallback swap done, second one not
    assert load(p) == {"v": 1}
    new = tmp_path / "new"
    save({"v": 2}, new)
    os.rename(new, _atomic.temp_sibling(p))  # the new, complete copy not yet renamed into place
    assert load(p) == {"v": 2}
    save({"v": 3}, p)
    assert load(p) == {"v": 3} and sorted(os.listdir(tmp_path)) == ["ck"]


def test_incomplete_temporary_sibling_is_never_loaded(tmp_path):
    from jaxmodule.checkpoint import _atomic

    p = tmp_path / "ck"
    save({"v": jnp.ones(2)}, p)
    tmp = _atomic.temp_sibling(p)
    shutil.copytree(p, tmp)
    os.remove(tmp / _atomic.MANIFEST)  # a save killed before its manifest was written
    shutil.rmtree(p)
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*ck: the path does not exist"):
        load(p)


# ---- map_location -------------------------------------------------------------------------------


def _sd():
    return OrderedDict(
        [
            ("a.w", jnp.arange(8.0).reshape(4, 2)),
            ("a.b", jnp.arange(4, dtype=jnp.int32)),
            ("n", np.ones(2, np.float32)),
        ]
    )


@pytest.mark.parametrize("spec", ["cpu", "cpu:3", "torch_device", "jax_device"])
def test_map_location_device(tmp_path, spec):
    save(_sd(), tmp_path / "m")
    dev = jax.devices()[0] if spec == "cpu" else jax.devices()[3]
    spec = {"torch_device": torch.device("cpu", 3), "jax_device": dev}.get(spec, spec)
    out = load(tmp_path / "m", map_location=spec)
    assert out["a.w"].sharding == SingleDeviceSharding(dev)
    assert out["a.b"].devices() == {dev}
    assert isinstance(out["n"], np.ndarray)  # host data stays numpy


def test_map_location_none_restores_saved_device(tmp_path):
    sd = OrderedDict(w=jax.device_put(jnp.ones(3), jax.devices()[5]))
    save(sd, tmp_path / "m")
    assert load(tmp_path / "m")["w"].devices() == {jax.devices()[5]}


def test_map_location_remap_dict_and_callable(tmp_path):
    sd = OrderedDict(
        w=jax.device_put(jnp.ones(3), jax.devices()[1]),
        v=jax.device_put(jnp.ones(2), jax.devices()[2]),
    )
    save(sd, tmp_path / "m")
    out = load(tmp_path / "m", map_location={"cpu:1": "cpu:6"})
    assert out["w"].devices() == {jax.devices()[6]} and out["v"].devices() == {jax.devices()[2]}
    seen = []

    def fn(meta, location):
        seen.append((meta.shape, location))
        return "cpu:4"

    out = load(tmp_path / "m", map_location=fn)
    assert seen == [((3,), "cpu:1"), ((2,), "cpu:2")]
    assert out["v"].devices() == {jax.devices()[4]}
    out = load(tmp_path / "m", map_location=lambda storage, loc: storage)
    assert out["w"].devices() == {jax.devices("cpu")[0]}


def test_map_location_errors(tmp_path):
    save(_sd(), tmp_path / "m")
    with pytest.raises(ValueError, match=r"names keys that are not arrays in .*m: \['a.x'\]"):
        load(tmp_path / "m", map_location={"a.x": "cpu"})
    with pytest.raises(RuntimeError, match="device index 99 is out of range"):
        load(tmp_path / "m", map_location="cpu:99")
    mesh = Mesh(np.array(jax.devices()).reshape(8), ("x",))
    with pytest.raises(
        ValueError, match=r"the sharding for array 'a.w' of shape \(4, 2\) in .*m does not fit it"
    ):
        load(tmp_path / "m", map_location=NamedSharding(mesh, PartitionSpec("x")))


# ---- sharded checkpoints ------------------------------------------------------------------------


def test_sharded_save_and_restore_into_target_shardings(tmp_path):
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
    row = NamedSharding(mesh, PartitionSpec("data", "model"))
    w = jax.device_put(jnp.arange(64.0).reshape(8, 8), row)
    b = jax.device_put(
        jnp.arange(8.0, dtype=jnp.bfloat16), NamedSharding(mesh, PartitionSpec("model"))
    )
    sd = OrderedDict([("fc.weight", w), ("fc.bias", b)])
    save(sd, tmp_path / "sh")
    # orbax wrote each shard; the saved shardings come back when the devices exist
    out = load(tmp_path / "sh")
    assert out["fc.weight"].sharding == row
    assert_same(out, sd)
    # one target sharding for all arrays
    rep = NamedSharding(mesh, PartitionSpec())
    out = load(tmp_path / "sh", map_location=rep)
    assert out["fc.weight"].sharding == rep and out["fc.bias"].sharding == rep
    assert_same(out, sd)
    # per-key shardings
    col = NamedSharding(Mesh(np.array(jax.devices()), ("x",)), PartitionSpec(None, "x"))
    out = load(tmp_path / "sh", map_location={"fc.weight": col})
    assert out["fc.weight"].sharding == col
    assert [s.data.shape for s in out["fc.weight"].addressable_shards] == [(8, 1)] * 8
    assert out["fc.bias"].sharding.spec == PartitionSpec("model")
    assert_same(out, sd)


def test_sharded_model_state_dict(tmp_path):
    mesh = Mesh(np.array(jax.devices()), ("x",))
    model = nn.Linear(4, 8)
    for p in model.parameters():
        p._value = jax.device_put(p._value, NamedSharding(mesh, PartitionSpec("x")))
    save(model.state_dict(), tmp_path / "m")
    target = {k: NamedSharding(mesh, PartitionSpec("x")) for k in ("weight", "bias")}
    sd = load(tmp_path / "m", map_location=target)
    assert sd["weight"].sharding == target["weight"]
    fresh = nn.Linear(4, 8)
    fresh.load_state_dict(sd)
    x = jnp.ones((2, 4))
    np.testing.assert_array_equal(np.asarray(fresh(x)), np.asarray(model(x)))


# ---- errors -------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no checkpoint at {tmp_path}/nope"):
        load(tmp_path / "nope")


def test_directory_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(
        ValueError, match=r"d is not a jaxmodule checkpoint: it is an empty directory"
    ):
        load(tmp_path / "d")
    (tmp_path / "d" / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="without a jaxmodule.json manifest"):
        load(tmp_path / "d")


def test_wrong_kind_of_checkpoint(tmp_path):
    with CheckpointManager(tmp_path / "run", async_save=False) as mgr:
        mgr.save(1, {"a": jnp.ones(2)})
    with pytest.raises(
        ValueError,
        match="run is not a jaxmodule checkpoint: it is a jaxmodule.checkpoint.CheckpointManager directory",
    ):
        load(tmp_path / "run")
    assert load(tmp_path / "run" / "1")["a"].shape == (2,)  # one step loads fine
    save({"a": 1}, tmp_path / "single")
    with pytest.raises(ValueError, match="single checkpoint written by jaxmodule.save"):
        CheckpointManager(tmp_path / "single")


def test_unknown_file(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(ValueError, match="f.bin is not a jaxmodule checkpoint"):
        load(tmp_path / "f.bin")


def test_truncated_or_corrupt_manifest(tmp_path):
    p = tmp_path / "c"
    save({"a": jnp.ones(3)}, p)
    text = (p / "jaxmodule.json").read_text()
    (p / "jaxmodule.json").write_text(text[: len(text) // 2])
    with pytest.raises(
        RuntimeError, match=r"c has a damaged manifest \(jaxmodule.json is not valid JSON"
    ):
        load(p)
    (p / "jaxmodule.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(RuntimeError, match="c has a damaged manifest"):
        load(p)
    m = json.loads(text)
    m["version"] = 99
    (p / "jaxmodule.json").write_text(json.dumps(m))
    with pytest.raises(RuntimeError, match="format version 99"):
        load(p)


def _data_files(p):
    return [
        os.path.join(d, f)
        for d, _, fs in os.walk(p / "arrays")
        for f in fs
        if os.sep + "d" + os.sep in os.path.join(d, f)
    ]


def test_deleted_array_files(tmp_path):
    p = tmp_path / "c"
    save(OrderedDict(a=jnp.arange(100.0), b=jnp.ones((3, 3))), p)
    files = _data_files(p)
    assert files
    for f in files:
        os.remove(f)
    with pytest.raises(RuntimeError, match="c is damaged: reading its arrays failed"):
        load(p)
    shutil.rmtree(p / "arrays")
    with pytest.raises(RuntimeError, match=r"c is damaged: its array data \(arrays/\) is missing"):
        load(p)


def test_truncated_and_corrupted_array_data(tmp_path):
    p = tmp_path / "c"
    save(OrderedDict(a=jnp.arange(1000.0)), p)
    f = Path(max(_data_files(p), key=os.path.getsize))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="c is damaged"):
        load(p)
    corrupted = bytearray(data)
    corrupted[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(corrupted))
    with pytest.raises(RuntimeError, match="c is damaged"):
        load(p)


def test_manifest_and_data_disagree(tmp_path):
    p = tmp_path / "c"
    save(OrderedDict(a=jnp.ones(3)), p)
    m = json.loads((p / "jaxmodule.json").read_text())
    m["arrays"].append(dict(m["arrays"][0], key="extra"))
    m["tree"]["O"].append(["extra", {"A": 1}])
    (p / "jaxmodule.json").write_text(json.dumps(m))
    with pytest.raises(RuntimeError, match="c is damaged"):
        load(p)
    m = json.loads((p / "jaxmodule.json").read_text())
    m["arrays"] = m["arrays"][:1]
    m["arrays"][0]["shape"] = [4]
    (p / "jaxmodule.json").write_text(json.dumps(m))
    with pytest.raises(RuntimeError, match="c is damaged"):
        load(p)


def test_save_errors(tmp_path):
    with pytest.raises(RuntimeError, match="Parent directory .*missing does not exist"):
        save({}, tmp_path / "missing" / "x")
    with pytest.raises(TypeError, match=r"cannot store obj\['f'\] of type builtins.function"):
        save({"f": lambda: 0}, tmp_path / "x")
    with pytest.raises(TypeError, match=r"obj\['s'\] is a numpy array of dtype <U1"):
        save({"s": np.array(["a"])}, tmp_path / "x")
    with (
        open(tmp_path / "fh", "wb") as fh,
        pytest.raises(NotImplementedError, match="file objects"),
    ):
        save({}, fh)
    assert not os.path.exists(tmp_path / "x")
    assert sorted(os.listdir(tmp_path)) == ["fh"]
    with pytest.raises(NotImplementedError, match="mmap=True"):
        load(tmp_path / "fh", mmap=True)
