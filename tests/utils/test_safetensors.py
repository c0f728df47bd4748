"""safetensors files: load_safetensors / save_safetensors and jaxmodule.checkpoint.load."""

from __future__ import annotations

import sys
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.torch
import torch
from jaxmodule import nn
from jaxmodule.checkpoint import load
from jaxmodule.utils import load_safetensors, save_safetensors

from tests.helpers import assert_close, randn


def test_torch_safetensors_file_loads_into_jaxmodule(tmp_path):
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    safetensors.torch.save_file(tnet.state_dict(), tmp_path / "m.safetensors")
    for sd in (load(tmp_path / "m.safetensors"), load_safetensors(tmp_path / "m.safetensors")):
        assert sorted(sd) == sorted(tnet.state_dict())
        lin1, lin2 = nn.Linear(4, 3), nn.Linear(3, 2)
        lin1.load_state_dict({k[2:]: v for k, v in sd.items() if k.startswith("0.")})
        lin2.load_state_dict({k[2:]: v for k, v in sd.items() if k.startswith("2.")})
        x = randn(5, 4)
        assert_close(lin2(jnp.tanh(lin1(jnp.asarray(x)))), tnet(torch.from_numpy(x)))


def test_save_safetensors_round_trip_bits_and_order(tmp_path):
    sd = OrderedDict(
        [
            ("z.weight", jnp.asarray(randn(3, 2), jnp.bfloat16)),
            ("a.bias", jnp.arange(4, dtype=jnp.int32)),
            ("m.count", np.array([2**40], np.int64)),
            ("b.mask", jnp.asarray([True, False])),
            ("h", jnp.ones(3, jnp.float16)),
        ]
    )
    save_safetensors(sd, tmp_path / "s.safetensors", metadata={"note": "hi"})
    out = load_safetensors(tmp_path / "s.safetensors")
    assert list(out) == list(sd)  # saved order, not the file's sorted order
    for k in sd:
        a, b = np.asarray(out[k]), np.asarray(sd[k])
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), k
    assert isinstance(out["m.count"], np.ndarray) and isinstance(out["z.weight"], jax.Array)
    t = safetensors.torch.load_file(tmp_path / "s.safetensors")
    assert t["z.weight"].dtype == torch.bfloat16
    assert t["z.weight"].view(torch.int16).numpy().tobytes() == np.asarray(sd["z.weight"]).tobytes()
    with safetensors.safe_open(tmp_path / "s.safetensors", "np") as fh:
        assert fh.metadata()["note"] == "hi"


def test_jaxmodule_model_to_torch_via_safetensors(tmp_path):
    m = nn.Linear(4, 3)
    save_safetensors(m, tmp_path / "lin.safetensors")
    t = torch.nn.Linear(4, 3)
    t.load_state_dict(safetensors.torch.load_file(tmp_path / "lin.safetensors"))
    x = randn(2, 4)
    assert_close(m(jnp.asarray(x)), t(torch.from_numpy(x)))


def test_map_location_and_errors(tmp_path, monkeypatch):
    save_safetensors({"w": jnp.ones(2)}, tmp_path / "w.safetensors")
    assert load_safetensors(tmp_path / "w.safetensors", map_location="cpu:1")["w"].devices() == {
        jax.devices()[1]
    }
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[:-4])
    with pytest.raises(RuntimeError, match="t.safetensors is truncated or damaged"):
        load_safetensors(tmp_path / "t.safetensors")
    with pytest.raises(FileNotFoundError, match="no file at .*nope.safetensors"):
        load_safetensors(tmp_path / "nope.safetensors")
    with pytest.raises(TypeError, match="keys must be str, got int 0"):
        save_safetensors({0: jnp.ones(1)}, tmp_path / "k.safetensors")
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match="needs the safetensors package: pip install safetensors"):
        load_safetensors(tmp_path / "w.safetensors")
    with pytest.raises(ImportError, match="pip install safetensors"):
        save_safetensors({"w": jnp.ones(2)}, tmp_path / "w2.safetensors")
