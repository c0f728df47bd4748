"""Two processes over loopback: `init_process_group`, data-parallel and FSDP training compiled
across processes, `jaxmodule.save`/`load` and `CheckpointManager` called by every process.

Each worker (`_mp_worker.py`) has 2 simulated CPU devices, so the mesh spans 4 devices in 2
processes. Its results, gathered from both processes, are compared with the same training run
in this process on one device over the whole batch (float32, 1e-5 relative: the sums of the
gradient all-reduce are ordered differently from one device's, nothing else differs).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from tests.distributed import _mp_worker as worker

WORLD = 2
TIMEOUT_S = 120
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_workers(workdir: Path) -> list[dict[str, np.ndarray]]:
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(ROOT),
    )
    port = _free_port()
    procs, logs = [], []
    try:
        for rank in range(WORLD):
            log = open(workdir / f"stderr{rank}.txt", "w+")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.distributed._mp_worker",
                        str(rank),
                        str(WORLD),
                        str(port),
                        str(workdir),
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + TIMEOUT_S
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                time.sleep(1.0)  # let the peer report too, then stop waiting for it
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for log in logs:
            log.close()
    outputs = [(workdir / f"stderr{r}.txt").read_text()[-3000:] for r in range(WORLD)]
    failed = [r for r, p in enumerate(procs) if p.returncode != 0]
    assert not failed, "worker(s) failed: " + "\n".join(
        f"--- rank {r} (exit {procs[r].returncode}) ---\n{outputs[r]}" for r in failed
    )
    return [dict(np.load(workdir / f"rank{r}.npz")) for r in range(WORLD)]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return _run_workers(tmp_path_factory.mktemp("multiprocess"))


def _reference(mode: str) -> tuple[dict[str, np.ndarray], list[float]]:
    """The same training in this process, on one device, over the whole batch."""
    model = worker.make_model()
    x, y = worker.make_data()
    optimizer, losses = worker.train(mode, model, jnp.asarray(x), jnp.asarray(y))
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": worker.STEPS}
    return {
        k: np.asarray(worker.array_of(v))
        for k, v in worker.flatten(state).items()
        if v is not None and not isinstance(v, (str, bool))
    }, losses


def _section(result: dict[str, np.ndarray], tag: str) -> dict[str, np.ndarray]:
    return {k[len(tag) + 1 :]: v for k, v in result.items() if k.startswith(tag + "/")}


def test_both_processes_joined_the_group(results):
    assert [int(r["rank"]) for r in results] == [0, 1]
    assert [int(r["world"]) for r in results] == [WORLD, WORLD]


@pytest.mark.parametrize("mode", ["dp", "fsdp"])
def test_training_across_processes_matches_one_process(results, mode):
    expected, losses = _reference(mode)
    for rank, result in enumerate(results):
        np.testing.assert_allclose(
            result[f"{mode}/losses"], losses, rtol=1e-5, err_msg=f"rank {rank}"
        )
        saved = _section(result, f"{mode}/saved")
        assert sorted(saved) == sorted(expected), f"rank {rank}"
        for key, want in expected.items():
            np.testing.assert_allclose(
                saved[key], want, rtol=1e-5, atol=1e-7, err_msg=f"rank {rank} {key}"
            )
    # training moved the parameters (the comparison above is not between two initial states)
    assert not np.allclose(
        _section(results[0], f"{mode}/saved")["model/0.weight"],
        worker.make_model().state_dict()["0.weight"],
    )


def test_fsdp_parameters_are_sharded_over_both_processes(results):
    for result in results:
        for key in ("0.weight", "0.bias", "2.weight", "2.bias"):
            assert str(result[f"spec:fsdp/saved/model/{key}"]) == "('data',)", key
            assert str(result[f"spec:dp/saved/model/{key}"]) == "()", key


@pytest.mark.parametrize("mode", ["dp", "fsdp"])
def test_checkpoint_saved_by_every_process_loads_back_equal(results, mode):
    for rank, result in enumerate(results):
        saved, loaded = _section(result, f"{mode}/saved"), _section(result, f"{mode}/loaded")
        assert sorted(loaded) == sorted(saved), f"rank {rank}"
        for key in saved:
            np.testing.assert_array_equal(loaded[key], saved[key], err_msg=f"rank {rank} {key}")
            # a sharded array comes back with the sharding it was saved with
            assert str(result[f"spec:{mode}/loaded/{key}"]) == str(
                result[f"spec:{mode}/saved/{key}"]
            ), key


@pytest.mark.parametrize("mode", ["dp", "fsdp"])
def test_checkpoint_manager_from_every_process_rotates_and_restores(results, mode):
    for rank, result in enumerate(results):
        assert list(result[f"{mode}/manager_steps"]) == [worker.STEPS - 1, worker.STEPS], (
            f"rank {rank}"
        )
        restored = _section(result, f"{mode}/manager")
        saved = _section(result, f"{mode}/saved")
        assert int(restored["step"]) == worker.STEPS
        for key in (k for k in saved if k.startswith("model/")):
            np.testing.assert_array_equal(restored[key], saved[key], err_msg=f"rank {rank} {key}")


# ---- the process group's own behaviour ---------------------------------------------------------

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _torch_error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the differential reference
        return type(e), str(e)
    raise AssertionError("torch did not raise")


@pytest.mark.parametrize(
    "init_method, env",
    [
        ("env://", {}),
        ("env://", {"RANK": "0"}),
        ("env://", {"RANK": "0", "WORLD_SIZE": "2"}),
        ("env://", {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}),
        ("tcp://127.0.0.1:29500", {}),
        ("tcp://127.0.0.1:29500?rank=0", {}),
        ("tcp://127.0.0.1", {}),
    ],
)
def test_missing_rendezvous_information_raises_torchs_error(monkeypatch, init_method, env):
    import jaxmodule.distributed as dist
    import torch.distributed as tdist

    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    kind, message = _torch_error(lambda: next(tdist.rendezvous(init_method)))
    with pytest.raises(kind) as got:
        dist.init_process_group("gloo", init_method=init_method)
    assert str(got.value) == message
    assert not dist.is_initialized()


def test_queries_before_init_raise_torchs_error():
    import jaxmodule.distributed as dist
    import torch.distributed as tdist

    for ours, theirs in [
        (dist.get_rank, tdist.get_rank),
        (dist.get_world_size, tdist.get_world_size),
        (dist.barrier, tdist.barrier),
        (dist.destroy_process_group, tdist.destroy_process_group),
    ]:
        kind, message = _torch_error(theirs)
        with pytest.raises(kind) as got:
            ours()
        assert str(got.value) == message, ours.__name__
    assert dist.is_available() and not dist.is_initialized()


def test_bad_arguments_are_refused_before_anything_starts():
    import datetime

    import jaxmodule.distributed as dist

    tcp = "tcp://127.0.0.1:29500"
    with pytest.raises(
        ValueError, match=r"unknown backend 'glooo'; expected one of \['gloo', 'mpi', 'nccl'"
    ):
        dist.init_process_group("glooo", init_method=tcp, world_size=1, rank=0)
    with pytest.raises(
        TypeError, match=r"timeout argument to be of type datetime.timedelta, got int"
    ):
        dist.init_process_group("gloo", init_method=tcp, world_size=1, rank=0, timeout=30)
    with pytest.raises(
        ValueError, match=r"rank must be in \[0, world_size\).*got rank=2, world_size=2"
    ):
        dist.init_process_group("gloo", init_method=tcp, world_size=2, rank=2)
    with pytest.raises(NotImplementedError, match=r"file:// rendezvous is not supported"):
        dist.init_process_group("gloo", init_method="file:///tmp/x", world_size=1, rank=0)
    with pytest.raises(ValueError, match=r"Port out of range 0-65535"):  # urlparse, as in torch
        dist.init_process_group(
            "gloo",
            init_method="tcp://127.0.0.1:70000",
            world_size=1,
            rank=0,
            timeout=datetime.timedelta(seconds=5),
        )
    assert not dist.is_initialized()


def test_init_after_jax_has_computed_is_refused_and_changes_nothing():
    import jaxmodule
    import jaxmodule.distributed as dist

    keep = jnp.ones(3)  # a live array: JAX has computed in this process
    key = np.asarray(jaxmodule.default_generator.get_state())
    with pytest.raises(
        RuntimeError,
        match=r"init_process_group must be called before any JAX computation: "
        r"\d+ array\(s\) already exist",
    ):
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:1", world_size=1, rank=0)
    assert not dist.is_initialized()
    np.testing.assert_array_equal(np.asarray(jaxmodule.default_generator.get_state()), key)
    assert float(keep.sum()) == 3.0  # the backend still works


_SOLO = """
import os, numpy as np, jaxmodule, jax
import jaxmodule.distributed as dist
jaxmodule.manual_seed(5)
before = np.asarray(jaxmodule.default_generator.get_state())
dist.init_process_group()  # env://
after = np.asarray(jaxmodule.default_generator.get_state())
assert (before == after).all(), (before, after)
print(dist.is_initialized(), dist.get_rank(), dist.get_world_size(), dist.get_backend(), jax.process_count())
dist.barrier(); dist.barrier()
try:
    dist.init_process_group()
except ValueError as e:
    print(e)
x = jaxmodule.randn(2, 3)
jaxmodule.save({"x": x}, os.environ["CKPT"])
print(bool((np.asarray(jaxmodule.load(os.environ["CKPT"])["x"]) == np.asarray(x)).all()))
dist.destroy_process_group()
print(dist.is_initialized())
"""


def test_a_world_of_one_process_from_the_environment(tmp_path):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(ROOT),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        WORLD_SIZE="1",
        RANK="0",
        CKPT=str(tmp_path / "x.pth"),
    )
    out = subprocess.run(
        [sys.executable, "-c", _SOLO],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == [
        "True 0 1 gloo 1",
        "trying to initialize the default process group twice!",
        "True",
        "False",
    ]
