"""Fault injection: every attack of the checkpoint security review, one test (or more) each.

Findings covered, in the review's order:
1. a crafted torch pickle that poisons the process (BUILD on an allowed function or class);
2. CheckpointManager restoring flipped array bits silently;
3. `save` / `CheckpointManager` deleting the user's own files and folders;
4. concurrent writers to one path, and readers racing a writer;
5. asynchronous saves lost at interpreter exit, and a failed one losing the intact steps;
6. a failed `load_state_dict` leaving lazy modules broken;
7. silent damage elsewhere: manifest bytes, torch zip data, truncation, stride-0 expansion,
   malformed manifests, a parent that is a file.
Then a property test: random damage to random checkpoints loads exactly or fails clearly.

The process-level loops (concurrent writers, SIGKILL during saves) run a modest count by default
and a larger one under the `slow` marker (`pytest -m slow`).
"""

from __future__ import annotations

import collections
import json
import math
import os
import pickle
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jaxmodule import nn
from jaxmodule.checkpoint import CheckpointManager, load, save
from jaxmodule.nn.parameter import UninitializedParameter
from jaxmodule.utils import load_torch_state_dict

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _crash_child import make  # noqa: E402
from _fault_child import BIG_ROWS, big_state  # noqa: E402

sys.path.remove(str(HERE))

ENV = dict(os.environ, JAX_PLATFORMS="cpu")


# ---- helpers ------------------------------------------------------------------------------------


def _same(a, b) -> bool:
    """Deep equality: container types, key order, Python leaves, array dtype/shape/bits."""
    if isinstance(a, (jax.Array, np.ndarray, np.generic)) or isinstance(
        b, (jax.Array, np.ndarray, np.generic)
    ):
        if type(a) is not type(b) and not (isinstance(a, jax.Array) and isinstance(b, jax.Array)):
            return False
        x, y = np.asarray(a), np.asarray(b)
        return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _consistent(sd) -> bool:
    """A state from `_crash_child.make` whose arrays all belong to its own index."""
    return (
        isinstance(sd, OrderedDict)
        and isinstance(sd.get("index"), int)
        and _same(sd, make(sd["index"]))
    )


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _data_files(root: Path) -> list[Path]:
    return [p for p in _files(root) if p.parent.name == "d"]


def _flip(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def _reseal(manifest: dict) -> dict:
    """The manifest checksum as the format defines it: CRC32 of the canonical JSON of the rest."""
    body = {k: v for k, v in manifest.items() if k != "manifest_crc32"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return dict(body, manifest_crc32=zlib.crc32(canonical.encode("ascii")) & 0xFFFFFFFF)


def _run(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "_fault_child.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


# ---- 1. process poisoning through the torch reader without torch -----------------------------


def _op_str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _poison(target: tuple[str, str], attr: str, value: bytes) -> bytes:
    """A pickle that BUILDs `setattr(target, attr, value)` through slot state, then returns {}."""
    return b"\x80\x02" + _op_global(*target) + b"N}" + _op_str(attr) + value + b"s\x86b0}."


POISONS = {
    # _rebuild_tensor_v2.__defaults__ = (False, None, {'neg': True}): later tensors load negated
    "rebuild_defaults": _poison(
        ("torch._utils", "_rebuild_tensor_v2"),
        "__defaults__",
        b"(\x89N}" + _op_str("neg") + b"\x88st",
    ),
    # collections.Counter.update = set: every Counter in the process comes out empty
    "counter_update": _poison(("collections", "Counter"), "update", _op_global("builtins", "set")),
}


@pytest.fixture
def _restore_poisoned_globals():
    from jaxmodule.utils import _torch_pickle

    defaults = _torch_pickle._rebuild_tensor_v2.__defaults__
    update = collections.Counter.__dict__["update"]
    yield
    _torch_pickle._rebuild_tensor_v2.__defaults__ = defaults
    collections.Counter.update = update


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_poisoning_pickle_is_refused_and_later_loads_stay_clean(
    tmp_path, poison, _restore_poisoned_globals
):
    bad = tmp_path / "bad.pth"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("archive/data.pkl", POISONS[poison])
        zf.writestr("archive/version", "3\n")
    torch.save({"w": torch.arange(4, dtype=torch.float32)}, tmp_path / "clean.pth")
    with pytest.raises(pickle.UnpicklingError, match=r"bad.pth.*BUILD") as info:
        load_torch_state_dict(bad, use_torch=False)
    assert isinstance(info.value, RuntimeError)
    clean = load_torch_state_dict(tmp_path / "clean.pth", use_torch=False)
    np.testing.assert_array_equal(np.asarray(clean["w"]), [0.0, 1.0, 2.0, 3.0])
    assert collections.Counter("aab") == {"a": 2, "b": 1}


def test_a_pickle_cannot_allocate_unbounded_memory(tmp_path):
    f = tmp_path / "alloc.pth"
    with zipfile.ZipFile(f, "w") as zf:  # bytearray(2**44): 16 TB from a 100-byte file
        zf.writestr(
            "archive/data.pkl",
            b"\x80\x02"
            + _op_global("builtins", "bytearray")
            + b"\x8a\x06"
            + (2**44).to_bytes(6, "little")
            + b"\x85R.",
        )
    with pytest.raises(RuntimeError, match=r"alloc\.pth .*bytearray"):
        load_torch_state_dict(f, use_torch=False)


def test_build_on_the_readers_own_ordered_dict_still_works(tmp_path):
    sd = torch.nn.Linear(2, 3).state_dict()  # an OrderedDict carrying _metadata (set by BUILD)
    torch.save(sd, tmp_path / "m.pth")
    out = load_torch_state_dict(tmp_path / "m.pth", use_torch=False)
    assert out._metadata == sd._metadata and list(out) == ["weight", "bias"]


# ---- 2. CheckpointManager integrity -------------------------------------------------------------


def test_manager_restore_detects_flipped_array_bits(tmp_path):
    w = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    with CheckpointManager(tmp_path / "run", async_save=False) as mgr:
        mgr.save(1, {"w": jnp.asarray(w)})
    f = max(_data_files(tmp_path / "run" / "1"), key=lambda p: p.stat().st_size)
    original = f.read_bytes()
    rng = random.Random(0)
    for _ in range(8):
        _flip(f, rng.randrange(len(original) // 4, len(original)), rng.randrange(8))
        with CheckpointManager(tmp_path / "run") as mgr:
            try:
                out = mgr.restore(1)
            except RuntimeError as e:
                assert re.search(r"1 is damaged", str(e)), e
            else:
                np.testing.assert_array_equal(np.asarray(out["w"]), w)  # a flip in unused bytes
        f.write_bytes(original)


@pytest.mark.parametrize("where", ["save", "manager"])
def test_one_byte_flip_in_the_manifest_is_detected(tmp_path, where):
    obj = {"step": 7, "name": "abc", "w": jnp.ones(3)}
    if where == "save":
        save(obj, tmp_path / "ck")
        manifest, read = tmp_path / "ck" / "jaxmodule.json", lambda: load(tmp_path / "ck")
    else:
        with CheckpointManager(tmp_path / "run", async_save=False) as mgr:
            mgr.save(1, obj)
        manifest = tmp_path / "run" / "1" / "manifest" / "jaxmodule.json"

        def read():
            with CheckpointManager(tmp_path / "run") as m:
                return m.restore(1)

    original = manifest.read_bytes()
    assert _same(read(), obj)
    for pattern, repl in (
        (rb'("step"\s*,\s*)7', rb"\g<1>8"),
        (rb'"name"', rb'"nbme"'),
    ):  # a value, a key
        text = re.sub(pattern, repl, original, count=1)
        assert text != original and len(text) == len(original)
        manifest.write_bytes(text)
        with pytest.raises(RuntimeError, match="manifest"):
            read()
    manifest.write_bytes(original)
    assert _same(read(), obj)


# ---- 3. save and CheckpointManager never delete the user's data ------------------------------


def test_save_refuses_a_directory_with_user_files_beside_a_manifest(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "jaxmodule.json").write_text(json.dumps({"format": "jaxmodule.checkpoint", "version": 1}))
    (d / "thesis.tex").write_text("years of work")
    with pytest.raises(IsADirectoryError, match=r"d .*refusing to replace it.*thesis\.tex"):
        save({"a": 1}, d)
    assert (d / "thesis.tex").read_text() == "years of work"
    save({"a": 1}, tmp_path / "ck")
    (tmp_path / "ck" / "notes.txt").write_text("mine")
    with pytest.raises(IsADirectoryError, match=r"ck .*refusing to replace it.*notes\.txt"):
        save({"a": 2}, tmp_path / "ck")
    assert (tmp_path / "ck" / "notes.txt").read_text() == "mine"
    assert load(tmp_path / "ck") == {"a": 1}


def _plant(root: Path, names: list[str]) -> dict[Path, str]:
    planted = {}
    for name in names:
        (root / name).mkdir()
        (root / name / "mine.txt").write_text(f"user data in {name}")
        planted[root / name / "mine.txt"] = f"user data in {name}"
    return planted


def _intact(planted: dict[Path, str]) -> bool:
    return all(p.is_file() and p.read_text() == text for p, text in planted.items())


def test_save_keeps_user_directories_named_like_its_temporaries(tmp_path):
    planted = _plant(
        tmp_path, [".ck.jmtmp-mine", ".ck.jmold-0123456789ab", ".ck.jmtmp-0123456789ab"]
    )
    fake = tmp_path / ".ck.jmtmp-abcdefabcdef"  # even one holding a manifest next to user files
    fake.mkdir()
    (fake / "jaxmodule.json").write_text(
        json.dumps({"format": "jaxmodule.checkpoint", "version": 1})
    )
    planted.update(_plant(fake, ["arrays"]))
    save({"a": 1}, tmp_path / "ck")
    save({"a": 2}, tmp_path / "ck")
    assert load(tmp_path / "ck") == {"a": 2}
    assert _intact(planted)


def test_save_removes_exactly_what_dead_writers_left(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process
    host = socket.gethostname()

    def leftover(
        token: str, marker: str | None = None, pid: int = dead.pid, text: str | None = None
    ) -> Path:
        d = tmp_path / f".ck.jmtmp-{token}"
        d.mkdir()
        if marker:
            (d / marker).write_text(
                text if text is not None else json.dumps({"token": token, "pid": pid, "host": host})
            )
        return d

    save({"v": 1}, tmp_path / "ck")
    gone = [leftover("a" * 12)]  # empty: killed right after mkdir
    gone.append(leftover("b" * 12, ".jaxmodule-writing", text='{"tok'))  # killed writing its marker
    d = leftover("c" * 12, ".jaxmodule-writing")  # killed while orbax wrote its arrays
    (d / "arrays.orbax-checkpoint-tmp").mkdir()
    (d / "arrays.orbax-checkpoint-tmp" / "_METADATA").write_text("{")
    gone.append(d)
    d = leftover("d" * 12, ".jaxmodule-discard")  # killed while deleting a replaced checkpoint
    (d / "arrays").mkdir()
    gone.append(d)
    d = tmp_path / ".ck.jmold-eeeeeeeeeeee"  # a complete copy (the fallback rename's old one)
    shutil.copytree(tmp_path / "ck", d)
    gone.append(d)
    kept = [leftover("f" * 12), leftover("0" * 12, ".jaxmodule-writing", pid=os.getppid())]
    (kept[0] / "mine.txt").write_text("user file, no marker")
    (kept[1] / "partial").write_text("a live writer's file (its process is alive)")
    d = tmp_path / ".ck.jmold-111111111111"  # a complete copy with a user file added
    shutil.copytree(tmp_path / "ck", d)
    (d / "notes.txt").write_text("mine")
    kept.append(d)
    save({"v": 2}, tmp_path / "ck")
    assert load(tmp_path / "ck") == {"v": 2}
    assert [p.name for p in gone if p.exists()] == []
    assert all(p.is_dir() and any(p.iterdir()) for p in kept)


def test_manager_refuses_a_foreign_directory_and_counts_only_real_steps(tmp_path):
    run = tmp_path / "run"
    (run / "1").mkdir(parents=True)
    (run / "1" / "data.csv").write_text("x")
    with pytest.raises(ValueError, match=r"run .*not checkpoint steps.*'1'"):
        CheckpointManager(run, max_to_keep=1)
    assert (run / "1" / "data.csv").read_text() == "x"
    run2 = tmp_path / "run2"
    with CheckpointManager(run2, max_to_keep=1, async_save=False) as mgr:
        mgr.save(1, {"v": 1})
        (run2 / "7").mkdir()  # the user adds a folder while the run goes on
        (run2 / "7" / "mine.txt").write_text("x")
        mgr.save(2, {"v": 2})
        assert mgr.all_steps() == [2] and mgr.latest_step() == 2
    assert (run2 / "7" / "mine.txt").read_text() == "x"


# ---- 4. concurrent writers and readers ---------------------------------------------------------


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


@pytest.mark.parametrize("verify", [True, False])
def test_a_reader_racing_a_writer_gets_one_whole_checkpoint(tmp_path, monkeypatch, verify):
    from jaxmodule.checkpoint import serialization

    p = tmp_path / "ck"
    save(make(1), p)
    first = (p / "jaxmodule.json").read_bytes()
    writer = threading.Thread(target=save, args=(make(2), p))

    class RacingPlacer(serialization.Placer):
        def __init__(self, *args, **kwargs):
            if (
                writer.ident is None
            ):  # between the reader's manifest and its arrays, `p` is replaced
                writer.start()
                deadline = time.monotonic() + 60
                while (
                    _read_or_none(p / "jaxmodule.json") in (first, None)
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.005)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(serialization, "Placer", RacingPlacer)
    got = load(p, verify=verify)
    writer.join(120)
    assert writer.ident is not None and not writer.is_alive()
    assert _consistent(got) and got["index"] in (1, 2)
    assert _same(load(p), make(2))
    assert sorted(os.listdir(tmp_path)) == ["ck"]


def _concurrent_writers(tmp_path: Path, saves: int) -> None:
    p = tmp_path / "ck.pth"
    planted = _plant(tmp_path, [".ck.pth.jmtmp-0123456789ab", ".ck.pth.jmold-userdata"])
    save(make(0), p)
    go = tmp_path / "go"
    procs = [_run("write", str(p), str(start), str(saves), str(go)) for start in (1000, 2000)]
    for proc in procs:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()[-3000:]
    go.touch()
    reads = 0
    while any(proc.poll() is None for proc in procs):
        got = load(p, verify=reads % 2 == 0)  # a reader racing both writers
        assert _consistent(got), f"read {reads} mixes checkpoints: index {got.get('index')}"
        reads += 1
    finished = []
    for proc, start in zip(procs, (1000, 2000)):
        out, err = proc.communicate()
        assert proc.returncode == 0, err[-3000:]
        assert [int(x) for x in out.split()] == list(range(start, start + saves))
        finished.append(start + saves - 1)
    got = load(p)
    assert _consistent(got) and got["index"] in finished
    assert _intact(planted)
    expected = {"ck.pth", "ck.pth.warmup", "go", *(q.parent.name for q in planted)}
    assert set(os.listdir(tmp_path)) == expected


def test_concurrent_writers_serialise(tmp_path):
    _concurrent_writers(tmp_path, saves=6)


@pytest.mark.slow
@pytest.mark.parametrize("run", range(5))
def test_concurrent_writers_serialise_long(tmp_path, run):
    _concurrent_writers(tmp_path, saves=30)


def _kill_during_saves(tmp_path: Path, paths: int, rounds: int, seed: int) -> None:
    """Two writers per path, SIGKILLed at random moments; every kill leaves a loadable path."""
    rng = random.Random(seed)
    targets = [tmp_path / f"ck{i}.pth" for i in range(paths)]
    planted = {}
    for p in targets:
        planted.update(_plant(tmp_path, [f".{p.name}.jmtmp-userfolder"]))
    kills = 0
    for rnd in range(rounds):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "_crash_child.py"),
                    str(p),
                    str(10_000 * rnd + 1000 * w),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=ENV,
            )
            for p in targets
            for w in (1, 2)
        ]
        for proc in procs:
            for _ in range(rng.randint(1, 3)):
                line = proc.stdout.readline()
                assert line, f"writer exited: {proc.stderr.read()[-2000:]}"
            time.sleep(rng.uniform(0.0, 0.1))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            kills += 1
        for p in targets:
            got = load(p)
            assert _consistent(got), f"round {rnd}: {p} does not hold one whole checkpoint"
        assert _intact(planted)
    assert kills == 2 * paths * rounds
    for p in targets:  # the next save tidies what the kills left (stale locks and temporaries)
        save(make(0), p)
    assert _intact(planted)
    assert set(os.listdir(tmp_path)) == {p.name for p in targets} | {q.parent.name for q in planted}


def test_sigkill_during_concurrent_saves(tmp_path):
    _kill_during_saves(tmp_path, paths=4, rounds=2, seed=0)  # 16 kills


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_sigkill_during_concurrent_saves_long(tmp_path, seed):
    _kill_during_saves(tmp_path, paths=4, rounds=6, seed=seed + 1)  # 48 kills each


# ---- 5. asynchronous saves at exit and after a failure -----------------------------------------


def test_async_saves_are_finished_at_interpreter_exit(tmp_path):
    hows = {"end": 0, "sys_exit": 3, "raise": 1}
    procs = {how: _run("exit", str(tmp_path / how), how) for how in hows}
    for how, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == hows[how], f"{how}: rc {proc.returncode}\n{err[-3000:]}"
        if how == "raise":
            assert "KeyError: 'uncaught on purpose'" in err
        got = load(tmp_path / how / "1")
        assert got["step"] == 1 and len(got["rows"]) == BIG_ROWS, how
        assert _same(got, big_state()), how


def test_a_failed_async_save_at_exit_exits_nonzero_with_a_message(tmp_path):
    proc = _run("exit", str(tmp_path / "run"), "fail")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert re.search(r"asynchronous save of step 1 to .*run failed", err), err[-3000:]


def test_a_failed_async_save_keeps_the_intact_steps(tmp_path, monkeypatch):
    from orbax.checkpoint._src.path import async_path

    real = async_path.rename

    async def rename(src, dst):
        if Path(dst).name == "2":
            raise OSError(28, "No space left on device (injected)")
        return await real(src, dst)

    with CheckpointManager(tmp_path / "run", max_to_keep=1) as mgr:
        mgr.save(1, {"w": jnp.ones(3)})
        mgr.wait_until_finished()
        monkeypatch.setattr(async_path, "rename", rename)
        mgr.save(2, {"w": jnp.full(3, 2.0)})
        with pytest.raises(
            RuntimeError, match=r"asynchronous save of step 2 to .*run failed.*intact: \[1\]"
        ):
            mgr.wait_until_finished()
        assert mgr.all_steps() == [1] and mgr.latest_step() == 1
        np.testing.assert_array_equal(np.asarray(mgr.restore()["w"]), np.ones(3))
        monkeypatch.undo()
        mgr.save(3, {"w": jnp.full(3, 3.0)})
        mgr.wait_until_finished()
        assert mgr.all_steps() == [3]
    assert sorted(os.listdir(tmp_path / "run")) == ["3"]


def test_two_managers_never_write_one_directory(tmp_path):
    with (
        CheckpointManager(tmp_path / "run", async_save=False) as a,
        CheckpointManager(tmp_path / "run", async_save=False) as b,
    ):
        a.save(1, {"v": 1})
        with pytest.raises(
            RuntimeError, match=r"run is being written by another CheckpointManager"
        ):
            b.save(2, {"v": 2})
        assert b.all_steps() == [1] and b.restore(1) == {"v": 1}  # reading is fine


# ---- 6. a failed load_state_dict leaves lazy modules lazy -------------------------------------


def test_failed_load_state_dict_restores_lazy_parameters():
    model = nn.Sequential(nn.LazyLinear(3), nn.Linear(3, 2))
    sd = {
        "0.weight": jnp.ones((3, 4)),
        "0.bias": jnp.ones(3),
        "1.weight": jnp.ones((5, 5)),
        "1.bias": jnp.ones(2),
    }
    with pytest.raises(RuntimeError, match="size mismatch for 1.weight"):
        model.load_state_dict(sd)
    assert type(model[0].weight) is UninitializedParameter and model[0].weight.shape == (0,)
    assert model(jnp.ones((2, 6))).shape == (2, 2)  # the lazy layer still initialises itself
    assert model[0].weight.shape == (3, 6)


# ---- 7. silent damage elsewhere -----------------------------------------------------------------


def _zip_member_offset(path: Path, suffix: str) -> tuple[int, int]:
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(suffix))
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        head = fh.read(30)
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


@pytest.mark.parametrize("use_torch", [True, False])
def test_bit_flips_in_torch_zip_tensor_data_are_detected(tmp_path, use_torch):
    f = tmp_path / "w.pth"
    torch.save({"w": torch.arange(256, dtype=torch.float32)}, f)
    start, size = _zip_member_offset(f, "data/0")
    original = f.read_bytes()
    for k in range(4):
        _flip(f, start + (k * size) // 4 + 1, k)
        with pytest.raises(RuntimeError, match=r"w\.pth .*(CRC|damaged)"):
            load_torch_state_dict(f, use_torch=use_torch)
        f.write_bytes(original)
    np.testing.assert_array_equal(
        np.asarray(load_torch_state_dict(f, use_torch=use_torch)["w"]), np.arange(256.0)
    )


@pytest.mark.parametrize("use_torch", [True, False])
def test_every_truncation_of_a_torch_file_raises_a_named_runtime_error(tmp_path, use_torch):
    torch.save(
        {"w": torch.arange(1000, dtype=torch.float32), "b": torch.ones(10)}, tmp_path / "n.pth"
    )
    data = (tmp_path / "n.pth").read_bytes()
    t = tmp_path / "cut.pth"
    for n in range(0, len(data), 41):
        t.write_bytes(data[:n])
        with pytest.raises(RuntimeError, match=r"cut\.pth"):
            load_torch_state_dict(t, use_torch=use_torch)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_torch_state_dict(tmp_path, use_torch=use_torch)


@pytest.mark.parametrize("use_torch", [True, False])
def test_stride_zero_tensor_cannot_expand_far_beyond_its_stored_bytes(tmp_path, use_torch):
    f = tmp_path / "bomb.pth"
    torch.save({"x": torch.ones(1).expand(1 << 24)}, f)  # 1.5 KB on disk, 64 MB once materialised
    assert f.stat().st_size < 4096
    with pytest.raises(RuntimeError, match=r"bomb\.pth.*'x'.*expand"):
        load_torch_state_dict(f, use_torch=use_torch)


def _malformed(m: dict) -> list[dict]:
    """Manifests that parse and carry a valid checksum, but are not what save writes."""
    cases = []

    def case(fn):
        c = json.loads(json.dumps(m))
        fn(c)
        cases.append(c)

    case(lambda c: c.update(arrays="x"))
    case(lambda c: c.update(arrays=[None]))
    case(lambda c: c["arrays"][0].update(shape="abc"))
    case(lambda c: c["arrays"][0].update(shape=[-1]))
    case(lambda c: c["arrays"][0].update(dtype=5))
    case(lambda c: c["arrays"][0].update(dtype="object"))
    case(lambda c: c["arrays"][0].update(kind=[]))
    case(lambda c: c["arrays"][0].update(stored=False, shape=[10**12]))
    case(lambda c: c.update(tree={"O": [["a", {"A": 0}]], "attrs": [1]}))
    case(lambda c: c.update(tree={"O": [["a", {"A": 0}]], "attrs": {"D": [["__class__", 1]]}}))
    case(lambda c: c.update(tree={"A": "0"}))
    case(lambda c: c.update(tree={"D": [[{"D": []}, 1]]}))  # an unhashable key
    case(lambda c: c.update(tree={"C": [1]}))
    case(lambda c: c.update(tree={"G": {"seed": "x", "key": 1}}))
    case(lambda c: c.update(tree=[{"L": []}]))
    return cases


def test_malformed_manifests_raise_a_runtime_error_naming_the_file(tmp_path):
    p = tmp_path / "ck"
    save(OrderedDict(a=jnp.ones(3)), p)
    original = json.loads((p / "jaxmodule.json").read_text())
    for bad in _malformed(original):
        (p / "jaxmodule.json").write_text(json.dumps(_reseal(bad)))
        with pytest.raises(RuntimeError, match=re.escape(str(p))):
            load(p)
    (p / "jaxmodule.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RuntimeError, match=re.escape(str(p)) + ".*manifest"):
        load(p)
    with CheckpointManager(tmp_path / "run", async_save=False) as mgr:
        mgr.save(1, OrderedDict(a=jnp.ones(3)))
    step_manifest = tmp_path / "run" / "1" / "manifest" / "jaxmodule.json"
    step = json.loads(step_manifest.read_text())
    for bad in _malformed(step)[:3]:
        step_manifest.write_text(json.dumps(_reseal(bad)))
        with CheckpointManager(tmp_path / "run") as mgr, pytest.raises(RuntimeError, match="run/1"):
            mgr.restore(1)


def test_save_when_the_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RuntimeError, match=r"parent .*file is a file, not a directory"):
        save({"a": 1}, tmp_path / "file" / "ck")
    with pytest.raises(FileNotFoundError, match=r"file is a file"):
        load(tmp_path / "file" / "ck")
    assert (tmp_path / "file").read_text() == "x"


# ---- property: random damage to random checkpoints --------------------------------------------

_layer = st.one_of(
    st.builds(
        lambda i, o, b: ("linear", i, o, b),
        st.sampled_from([1, 3, 40]),
        st.sampled_from([2, 33]),
        st.booleans(),
    ),
    st.builds(lambda n: ("batchnorm", n), st.integers(1, 4)),
    st.builds(lambda n, d: ("embedding", n, d), st.integers(1, 5), st.integers(1, 3)),
)
_tree = st.recursive(
    st.lists(_layer, min_size=1, max_size=3),
    lambda inner: st.lists(st.one_of(_layer, inner), min_size=1, max_size=3),
    max_leaves=6,
)


def _module(spec) -> nn.Module:
    if isinstance(spec, list):
        return nn.Sequential(*(_module(s) for s in spec))
    kind, *args = spec
    if kind == "linear":
        return nn.Linear(args[0], args[1], bias=args[2])
    if kind == "batchnorm":
        return nn.BatchNorm1d(args[0])
    return nn.Embedding(args[0], args[1])


_damage = st.tuples(
    st.sampled_from(["truncate", "flip", "delete", "extra"]),
    st.sampled_from(["largest data file", "manifest", "any file"]),
    st.integers(0, 10**6),
    st.floats(0.0, 1.0),
    st.integers(0, 7),
)


def _apply(root: Path, damage: tuple) -> str:
    kind, target, which, where, bit = damage
    files = _files(root)
    f = files[which % len(files)]
    if target == "manifest":
        f = next(p for p in files if p.name == "jaxmodule.json")
    elif target == "largest data file" and _data_files(root):
        f = max(_data_files(root), key=lambda p: p.stat().st_size)
    if kind == "extra":
        dirs = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
        target = dirs[which % len(dirs)] / f"extra{bit}"
        target.write_bytes(b"\x00stray" * (bit + 1))
        return f"extra file {target.relative_to(root)}"
    size = f.stat().st_size
    if kind == "delete":
        f.unlink()
    elif kind == "truncate":
        with open(f, "r+b") as fh:
            fh.truncate(int(size * where) if size else 0)
    elif size:
        _flip(f, min(int(size * where), size - 1), bit)
    return f"{kind} {f.relative_to(root)}"


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=_tree, damage=_damage, step=st.integers(0, 2**40), manager=st.booleans())
def test_random_damage_loads_exactly_or_raises_clearly(spec, damage, step, manager):
    model = _module(spec)
    obj = {"model": model.state_dict(), "step": step, "lr": [0.1, 1e-3], "name": "run-α"}
    base = Path(tempfile.mkdtemp(prefix="jmfault"))
    try:
        if manager:
            with CheckpointManager(base / "run", async_save=False) as mgr:
                mgr.save(step, obj)
            root = base / "run" / str(step)
        else:
            root = base / "ck"
            save(obj, root)
        what = _apply(root, damage)
        try:
            got = load(root)
        except (RuntimeError, FileNotFoundError) as e:
            assert str(root) in str(e), (what, e)
        else:
            assert _same(got, obj), what
    finally:
        shutil.rmtree(base, ignore_errors=True)
