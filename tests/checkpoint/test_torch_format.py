"""`jaxmodule.save(obj, 'x.pth')` writes torch's own file format, without torch (issue 14).

Differential: torch reads every file with `torch.load(path, weights_only=True)` and gets the
same values, dtypes, shapes and Python structure; a jaxmodule model's state_dict loads into the
equivalent torch model and gives the same outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections import OrderedDict

import jax.numpy as jnp
import jaxmodule
import ml_dtypes
import numpy as np
import pytest
from jaxmodule import nn
from jaxmodule.checkpoint import _torch_file, load, save

torch = pytest.importorskip("torch")

DTYPES = [
    (jnp.float16, torch.float16),
    (jnp.bfloat16, torch.bfloat16),
    (jnp.float32, torch.float32),
    (np.float64, torch.float64),
    (jnp.int8, torch.int8),
    (jnp.int16, torch.int16),
    (jnp.int32, torch.int32),
    (np.int64, torch.int64),
    (jnp.uint8, torch.uint8),
    (jnp.bool_, torch.bool),
    (np.complex64, torch.complex64),
    (np.uint16, torch.uint16),
    (np.uint32, torch.uint32),
]


def _values(dtype, shape):
    n = int(np.prod(shape))
    raw = (np.arange(n) * 37 % 11 - 5).reshape(shape)
    return np.asarray(
        raw % 2
        if np.dtype(dtype) == np.bool_
        else np.abs(raw)
        if np.dtype(dtype).kind == "u"
        else raw,
        dtype,
    )


def _as_numpy(t):
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    if t.dtype in (torch.uint16, torch.uint32):
        return (
            t.view({torch.uint16: torch.int16, torch.uint32: torch.int32}[t.dtype])
            .numpy()
            .view({torch.uint16: np.uint16, torch.uint32: np.uint32}[t.dtype])
        )
    return t.numpy()


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (5,), (2, 3, 4)])
@pytest.mark.parametrize("dtype,tdtype", DTYPES, ids=[str(t) for _, t in DTYPES])
def test_torch_reads_every_dtype_and_shape(tmp_path, dtype, tdtype, shape):
    x = _values(dtype, shape)
    f = tmp_path / "x.pth"
    save({"x": jnp.asarray(x) if np.dtype(dtype).itemsize < 8 else x}, f)
    got = torch.load(f, weights_only=True)["x"]
    assert got.dtype == tdtype and tuple(got.shape) == shape
    assert got.is_contiguous()
    np.testing.assert_array_equal(_as_numpy(got), x)
    back = load(f)["x"]
    assert back.dtype == x.dtype and back.shape == shape
    np.testing.assert_array_equal(np.asarray(back), x)


def test_non_contiguous_inputs_are_written_contiguous(tmp_path):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    views = {
        "t": base.T,
        "step": base[::2, 1::3],
        "neg": base[::-1],
        "f": np.asfortranarray(base),
        "be": base.astype(">f4"),
    }
    save(views, tmp_path / "v.pt")
    got = torch.load(tmp_path / "v.pt", weights_only=True)
    for k, v in views.items():
        assert got[k].dtype == torch.float32 and got[k].is_contiguous(), k
        np.testing.assert_array_equal(got[k].numpy(), v, err_msg=k)


def test_nested_python_structures(tmp_path):
    sd = OrderedDict(w=jnp.ones((2, 2)))
    sd._metadata = OrderedDict([("", {"version": 1})])
    obj = {
        "model": sd,
        "epoch": 3,
        "lr": 0.1,
        "name": "run ü",
        "none": None,
        "flag": True,
        "hist": [1.5, float("inf"), float("nan"), -(2**70), 2**40],
        "pair": (1, "a", (jnp.zeros(1),)),
        "opt": {
            "state": {0: {"step": jnp.asarray(4.0)}},
            "param_groups": [{"lr": 0.1, "params": [0]}],
        },
        "set": {1, 2},
        "c": 1 + 2j,
        "b": b"\x00\xff",
        "ba": bytearray(b"ab"),
    }
    save(obj, tmp_path / "o.bin")
    got = torch.load(tmp_path / "o.bin", weights_only=True)
    assert list(got) == list(obj)
    assert type(got["model"]) is OrderedDict and got["model"]._metadata == sd._metadata
    assert got["epoch"] == 3 and got["lr"] == 0.1 and got["name"] == "run ü" and got["none"] is None
    assert got["flag"] is True and got["hist"][0] == 1.5 and got["hist"][1] == float("inf")
    assert np.isnan(got["hist"][2]) and got["hist"][3:] == [-(2**70), 2**40]
    assert (
        got["pair"][:2] == (1, "a")
        and isinstance(got["pair"], tuple)
        and got["pair"][2][0].shape == (1,)
    )
    assert got["opt"]["state"][0]["step"].item() == 4.0 and got["opt"]["param_groups"] == [
        {"lr": 0.1, "params": [0]}
    ]
    assert got["set"] == {1, 2} and got["c"] == 1 + 2j
    assert (
        got["b"] == b"\x00\xff" and got["ba"] == bytearray(b"ab") and type(got["ba"]) is bytearray
    )
    back = load(tmp_path / "o.bin")
    assert (
        back["model"]._metadata == sd._metadata
        and back["pair"][:2] == (1, "a")
        and back["b"] == b"\x00\xff"
    )
    # torch's own reader without weights_only agrees, and the file passes its CRC-32 checks
    assert zipfile.ZipFile(tmp_path / "o.bin").testzip() is None
    assert torch.load(tmp_path / "o.bin", weights_only=False)["epoch"] == 3


def test_records_are_aligned_so_torch_can_mmap(tmp_path):
    save({"w": jnp.arange(100.0), "b": jnp.ones(3, jnp.bfloat16)}, tmp_path / "m.pth")
    with zipfile.ZipFile(tmp_path / "m.pth") as zf:
        names = zf.namelist()
    assert (
        "archive/data.pkl" in names and "archive/byteorder" in names and "archive/version" in names
    )
    got = torch.load(tmp_path / "m.pth", weights_only=True, mmap=True)
    np.testing.assert_array_equal(got["w"].numpy(), np.arange(100.0, dtype=np.float32))


def test_state_dict_loads_into_the_torch_model_with_the_same_outputs(tmp_path):
    jaxmodule.manual_seed(0)
    jm = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )
    jm.train()
    jm(
        jnp.asarray(np.random.default_rng(0).standard_normal((2, 3, 8, 8)), jnp.float32)
    )  # running stats move
    jm.eval()
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 5),
    ).eval()
    save(jm.state_dict(), tmp_path / "model.pth")
    tm.load_state_dict(
        torch.load(tmp_path / "model.pth", weights_only=True)
    )  # strict: same keys and shapes
    assert tm[1].num_batches_tracked.dtype == torch.int64 and tm[1].num_batches_tracked.item() == 1
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        tm(torch.from_numpy(x)).detach().numpy(),
        np.asarray(jm(jnp.asarray(x))),
        rtol=1e-5,
        atol=1e-6,
    )
    # and back: jaxmodule.load of the same file restores the model
    jm2 = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    ).eval()
    jm2.load_state_dict(load(tmp_path / "model.pth"))
    np.testing.assert_array_equal(np.asarray(jm2(jnp.asarray(x))), np.asarray(jm(jnp.asarray(x))))


def test_parameters_and_buffers_are_stored_as_their_arrays(tmp_path):
    lin = nn.Linear(2, 3)
    save({"w": lin.weight, "params": list(lin.parameters())}, tmp_path / "p.pth")
    got = torch.load(tmp_path / "p.pth", weights_only=True)
    assert type(got["w"]) is torch.Tensor and not got["w"].requires_grad
    np.testing.assert_array_equal(got["params"][1].numpy(), np.asarray(lin.bias))


@pytest.mark.parametrize(
    "obj,match",
    [
        (
            {"g": jaxmodule.Generator()},
            r"obj\['g'\] is a jaxmodule.Generator, which torch's file format cannot hold",
        ),
        ({"m": nn.Linear(2, 2)}, r"obj\['m'\] is a Linear.*state_dict"),
        ({"f": len}, r"cannot store obj\['f'\] of type builtins.builtin_function_or_method"),
        (
            {"a": [frozenset({1})]},
            r"obj\['a'\]\[0\] is a frozenset, which torch.load\(weights_only=True\) refuses",
        ),
        ({"s": np.asarray(["a"])}, r"dtype <U1, which cannot be stored"),
    ],
)
def test_what_torch_format_cannot_hold_is_refused_and_nothing_changes(tmp_path, obj, match):
    f = tmp_path / "keep.pth"
    save({"v": 1}, f)
    before = f.read_bytes()
    with pytest.raises(TypeError, match=match):
        save(obj, f)
    assert f.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["keep.pth"]


def test_an_injected_write_failure_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    f = tmp_path / "ck.pth"
    save({"v": jnp.ones(3)}, f)
    before = f.read_bytes()

    def failing(zf, name, data, size):
        if name.startswith("data/"):
            raise OSError(28, "No space left on device (injected)")
        real(zf, name, data, size)

    real = _torch_file._write_entry
    monkeypatch.setattr(_torch_file, "_write_entry", failing)
    with pytest.raises(OSError, match="injected"):
        save({"v": jnp.zeros(3)}, f)
    assert f.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["ck.pth"]
    monkeypatch.undo()
    np.testing.assert_array_equal(np.asarray(load(f)["v"]), np.ones(3))


def test_a_killed_save_leaves_the_old_file_and_the_next_save_tidies(tmp_path):
    """SIGKILL between writing the temporary file and renaming it: the old file is intact and
    the leftover temporary file goes with the next save."""
    f = tmp_path / "ck.pth"
    save({"v": 1}, f)
    code = (
        "import os, sys; from jaxmodule.checkpoint import _atomic, save; "
        "_atomic.replace_dir = lambda new, final: os.kill(os.getpid(), 9); "
        "save({'v': 2}, sys.argv[1])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(f)],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    left = sorted(os.listdir(tmp_path))
    assert "ck.pth" in left and any(n.startswith(".ck.pth.jmtmp-") for n in left), left
    assert load(f) == {"v": 1} and torch.load(f, weights_only=True) == {"v": 1}
    save({"v": 3}, f)
    assert sorted(os.listdir(tmp_path)) == ["ck.pth"] and load(f) == {"v": 3}


def test_replaces_an_old_checkpoint_directory_but_not_a_foreign_one(tmp_path):
    f = tmp_path / "old.pth"
    f.mkdir()
    save({"v": 1}, tmp_path / "x")  # a jaxmodule checkpoint directory
    os.rmdir(f)
    os.rename(tmp_path / "x", f)
    save({"v": 2}, f)
    assert f.is_file() and torch.load(f, weights_only=True) == {"v": 2}
    d = tmp_path / "data.pt"
    d.mkdir()
    (d / "keep.txt").write_text("precious")
    with pytest.raises(IsADirectoryError, match="not a jaxmodule checkpoint"):
        save({"v": 1}, d)
    assert (d / "keep.txt").read_text() == "precious"


def test_the_writer_does_not_import_torch(tmp_path):
    code = (
        "import sys, jax.numpy as jnp, jaxmodule; "
        "jaxmodule.save({'w': jnp.ones(2)}, sys.argv[1]); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "w.pth")],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert torch.load(tmp_path / "w.pth", weights_only=True)["w"].tolist() == [1.0, 1.0]


def test_other_suffixes_still_write_a_checkpoint_directory(tmp_path):
    assert _torch_file.wants_torch_file("a/MODEL.PTH") and not _torch_file.wants_torch_file(
        "a/model.ckpt"
    )
    save({"v": jnp.ones(2)}, tmp_path / "ck")
    assert (tmp_path / "ck").is_dir()
