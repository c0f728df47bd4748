"""torch files and state_dicts <-> jaxmodule: load_torch_state_dict (with and without torch),
jaxmodule.checkpoint.load on .pth files, to_torch_state_dict / to_numpy_state_dict."""

from __future__ import annotations

import pickle
import sys
from collections import OrderedDict

import jax
import jax.numpy as jnp
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch
from jaxmodule import nn
from jaxmodule.checkpoint import load
from jaxmodule.utils import load_torch_state_dict, to_numpy_state_dict, to_torch_state_dict

from tests.helpers import assert_close, randn


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 5 * 5, 6)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


class JmNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 5 * 5, 6)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).reshape(x.shape[0], -1))


def _trained_torch_net():
    net = TorchNet()
    net(torch.randn(2, 3, 5, 5))  # move the BatchNorm running statistics off their init values
    return net.eval()


def _bits(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().contiguous()
        if x.dtype == torch.bfloat16:
            return "bfloat16", tuple(x.shape), x.view(torch.int16).numpy().tobytes()
        return str(x.dtype).split(".")[1], tuple(x.shape), x.numpy().tobytes()
    a = np.array(np.asarray(x), order="C", copy=True)
    return a.dtype.name, a.shape, a.tobytes()


@pytest.mark.parametrize("reader", ["jaxmodule.load", "torch", "no-torch"])
def test_torch_saved_model_loads_into_jaxmodule_model(tmp_path, reader):
    tnet = _trained_torch_net()
    torch.save(tnet.state_dict(), tmp_path / "net.pth")
    if reader == "jaxmodule.load":
        sd = load(tmp_path / "net.pth")
    else:
        sd = load_torch_state_dict(tmp_path / "net.pth", use_torch=reader == "torch")
    assert list(sd) == list(tnet.state_dict())
    assert sd._metadata == tnet.state_dict()._metadata
    jnet = JmNet().eval()
    jnet.load_state_dict(sd)
    x = randn(2, 3, 5, 5)
    assert_close(jnet(jnp.asarray(x)), tnet(torch.from_numpy(x)))


def test_no_torch_reader_is_bit_exact_on_awkward_tensors(tmp_path, monkeypatch):
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    obj = OrderedDict(
        [
            ("bf16", torch.randn(3, 4).to(torch.bfloat16)),
            ("f16", torch.randn(5).half()),
            ("i64", torch.tensor([-(2**62), 0, 2**62 + 7])),
            ("i8", torch.tensor([-128, 5, 127], dtype=torch.int8)),
            ("bool", torch.tensor([True, False])),
            ("transposed", base.t()),  # non-contiguous: stride (1, 10)
            ("sliced", base[1:5:2, 3:9:3]),  # storage offset and steps
            ("shared_view", base[2]),  # another view of the same storage
            ("expanded", torch.ones(1, 3).expand(4, 3)),  # stride 0
            ("scalar", torch.tensor(2.5, dtype=torch.float64)),
            ("empty", torch.zeros(0, 3)),
            ("param", torch.nn.Parameter(torch.ones(2))),
            ("nested", {"list": [torch.arange(3)], 7: (torch.ones(1), "s", None, 1.5)}),
            ("cplx", torch.tensor([1 + 2j], dtype=torch.complex64)),
        ]
    )
    ref = obj
    for fmt in ("zip", "legacy"):
        f = tmp_path / f"{fmt}.pth"
        torch.save(obj, f, _use_new_zipfile_serialization=fmt == "zip")
        monkeypatch.setitem(
            sys.modules, "torch", None
        )  # make `import torch` fail: the no-torch path
        try:
            out = load(f)
        finally:
            monkeypatch.undo()
        for k in ref:
            if k == "nested":
                continue
            assert _bits(out[k]) == _bits(ref[k]), (fmt, k)
        assert _bits(out["nested"]["list"][0]) == _bits(ref["nested"]["list"][0])
        assert list(out["nested"]) == ["list", 7] and out["nested"][7][1:] == ("s", None, 1.5)
        # 64-bit data stays numpy (JAX without x64 would truncate it); the rest are jax arrays
        assert isinstance(out["i64"], np.ndarray) and isinstance(out["scalar"], np.ndarray)
        assert isinstance(out["bf16"], jax.Array) and isinstance(out["transposed"], jax.Array)


def test_restricted_unpickler_refuses_code(tmp_path):
    torch.save({"w": torch.ones(2), "f": np.random.default_rng}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global numpy.random"):
        load_torch_state_dict(tmp_path / "evil.pth", use_torch=False)
    with pytest.raises(pickle.UnpicklingError):
        load_torch_state_dict(tmp_path / "evil.pth", use_torch=True)


@pytest.mark.parametrize("use_torch", [True, False])
def test_truncated_torch_file(tmp_path, use_torch):
    torch.save(TorchNet().state_dict(), tmp_path / "n.pth")
    data = (tmp_path / "n.pth").read_bytes()
    (tmp_path / "t.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="t.pth is truncated or damaged"):
        load_torch_state_dict(tmp_path / "t.pth", use_torch=use_torch)
    with pytest.raises(FileNotFoundError, match="no file at .*missing.pth"):
        load_torch_state_dict(tmp_path / "missing.pth")


def test_torch_file_map_location(tmp_path):
    torch.save({"w": torch.ones(8, 2)}, tmp_path / "w.pth")
    out = load(tmp_path / "w.pth", map_location="cpu:2")
    assert out["w"].devices() == {jax.devices()[2]}
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("x",))
    s = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
    out = load_torch_state_dict(tmp_path / "w.pth", map_location={"w": s}, use_torch=False)
    assert out["w"].sharding == s


def test_jaxmodule_model_exports_to_torch(tmp_path):
    jnet = JmNet().eval()
    tsd = to_torch_state_dict(jnet)
    assert all(isinstance(v, torch.Tensor) for v in tsd.values())
    tnet = TorchNet().eval()
    tnet.load_state_dict(tsd)
    x = randn(2, 3, 5, 5, seed=3)
    assert_close(jnet(jnp.asarray(x)), tnet(torch.from_numpy(x)))
    # and through a torch.save file
    torch.save(tsd, tmp_path / "x.pth")
    tnet2 = TorchNet().eval()
    tnet2.load_state_dict(torch.load(tmp_path / "x.pth", weights_only=True))
    assert_close(tnet2(torch.from_numpy(x)), tnet(torch.from_numpy(x)))


def test_state_dict_conversions_keep_dtypes_and_bits():
    m = nn.Linear(3, 2, dtype=jnp.bfloat16)
    np_sd = to_numpy_state_dict(m)
    assert list(np_sd) == ["weight", "bias"]
    assert all(type(v) is np.ndarray and v.dtype == jnp.bfloat16 for v in np_sd.values())
    t_sd = to_torch_state_dict(m)
    assert t_sd["weight"].dtype == torch.bfloat16
    assert _bits(t_sd["weight"]) == _bits(m.weight._value)
    sd = OrderedDict(a=np.arange(3, dtype=np.int64), b=torch.ones(2, dtype=torch.bfloat16))
    out = to_torch_state_dict(sd)
    assert out["a"].dtype == torch.int64 and out["b"].dtype == torch.bfloat16


def test_to_torch_state_dict_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(
        ImportError, match="to_torch_state_dict requires PyTorch: pip install torch"
    ):
        to_torch_state_dict(nn.Linear(2, 2))
