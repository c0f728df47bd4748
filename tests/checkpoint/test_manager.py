"""jaxmodule.checkpoint.CheckpointManager: intervals, rotation, best-by-metric, async, resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from jaxmodule.checkpoint import CheckpointManager, load

HERE = Path(__file__).parent


def _state(step):
    return {
        "w": jnp.full((3,), float(step)),
        "step": step,
        "opt": {"state": {0: {"m": jnp.ones(2)}}},
    }


def test_interval_rotation_and_restore(tmp_path):
    with CheckpointManager(tmp_path / "run", save_interval_steps=2, max_to_keep=2) as mgr:
        assert mgr.latest_step() is None and mgr.all_steps() == []
        assert [mgr.should_save(s) for s in range(5)] == [True, False, True, False, True]
        saved = [mgr.save(s, _state(s)) for s in range(7)]
        assert saved == [True, False, True, False, True, False, True]
        mgr.wait_until_finished()
        assert mgr.all_steps() == [4, 6] and mgr.latest_step() == 6
        out = mgr.restore()
        assert out["step"] == 6 and list(out["opt"]["state"]) == [0]
        np.testing.assert_array_equal(np.asarray(out["w"]), np.full(3, 6.0))
        assert mgr.restore(4)["step"] == 4
        assert mgr.save(7, _state(7), force=True) is True
        assert not mgr.should_save(6)  # already saved
        with pytest.raises(
            FileNotFoundError, match=r"no checkpoint for step 2 in .*run; saved steps: \[6, 7\]"
        ):
            mgr.restore(2)
    assert sorted(os.listdir(tmp_path / "run")) == ["6", "7"]
    # a new manager over the same directory sees the steps; one step also loads with jaxmodule.load
    with CheckpointManager(tmp_path / "run") as again:
        assert again.all_steps() == [6, 7]
    assert load(tmp_path / "run" / "7")["step"] == 7


def test_keeps_last_k_and_best_by_metric(tmp_path):
    losses = {1: 0.9, 2: 0.2, 3: 0.5, 4: 0.7, 5: 0.6, 6: 0.8}
    with CheckpointManager(
        tmp_path / "run", max_to_keep=2, best_fn=lambda m: m["loss"], best_mode="min"
    ) as mgr:
        for s, loss in losses.items():
            mgr.save(s, _state(s), metrics={"loss": loss})
        mgr.wait_until_finished()
        assert mgr.all_steps() == [2, 5, 6]  # the best (2) and the last two
        assert mgr.best_step() == 2
        assert mgr.restore(mgr.best_step())["step"] == 2
        assert mgr.metrics(5) == {"loss": 0.6}
    with CheckpointManager(
        tmp_path / "max", max_to_keep=1, best_fn=lambda m: m["acc"], best_mode="max", keep_best=2
    ) as mgr:
        for s, acc in {1: 0.5, 2: 0.9, 3: 0.1, 4: 0.7, 5: 0.2}.items():
            mgr.save(s, _state(s), metrics={"acc": acc})
        mgr.wait_until_finished()
        assert mgr.all_steps() == [2, 4, 5]


def test_async_save_returns_before_the_write_finishes(tmp_path):
    big = {
        "w": jnp.ones((1024, 1024)),
        "b": [jnp.full((512, 512), float(i)) for i in range(16)],
    }  # 20 MB
    with CheckpointManager(tmp_path / "a", async_save=True) as mgr:
        assert mgr.save(0, big)
        assert mgr.is_saving_in_progress()  # save() returned while the write goes on
        mgr.wait_until_finished()
        assert not mgr.is_saving_in_progress()
        assert mgr.all_steps() == [0]
        out = mgr.restore(0)
        np.testing.assert_array_equal(np.asarray(out["b"][7]), np.full((512, 512), 7.0))


def test_sync_mode_and_empty_and_errors(tmp_path):
    with CheckpointManager(tmp_path / "s", async_save=False) as mgr:
        with pytest.raises(FileNotFoundError, match="no checkpoint saved in .*s yet"):
            mgr.restore()
        mgr.save(0, {"only": "python", "n": [1, 2]})
        assert mgr.restore() == {"only": "python", "n": [1, 2]}
        assert "steps=[0]" in repr(mgr)
    with pytest.raises(ValueError, match="save_interval_steps must be a positive int, got 0"):
        CheckpointManager(tmp_path / "x", save_interval_steps=0)
    with pytest.raises(ValueError, match="best_mode must be 'max' or 'min', got 'best'"):
        CheckpointManager(tmp_path / "x", best_mode="best")
    with pytest.raises(FileNotFoundError, match="does not exist \\(create=False\\)"):
        CheckpointManager(tmp_path / "nope", create=False)


def test_damaged_step_is_reported(tmp_path):
    with CheckpointManager(tmp_path / "d", async_save=False) as mgr:
        mgr.save(3, {"w": jnp.arange(100.0)})
    for d, _, files in os.walk(tmp_path / "d" / "3" / "arrays"):
        for f in files:
            if os.sep + "d" + os.sep in os.path.join(d, f):
                os.remove(os.path.join(d, f))
    with (
        CheckpointManager(tmp_path / "d") as mgr,
        pytest.raises(RuntimeError, match="3 is damaged"),
    ):
        mgr.restore(3)


def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    """Train N steps straight (saving at step k on the way) vs restore step k in a fresh
    process and train the remaining steps: same losses and parameters, bit for bit (dropout
    RNG, momentum, LR schedule and data order all resume)."""
    sys.path.insert(0, str(HERE))
    try:
        import _resume_train as rt
    finally:
        sys.path.remove(str(HERE))
    n, k = 5, 2
    model, opt, sched = rt.make()
    with CheckpointManager(tmp_path / "run") as mgr:
        straight = rt.train(model, opt, sched, 0, n, mgr=mgr, save_at=k)
    out = tmp_path / "resumed.npz"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, str(HERE / "_resume_train.py"), str(tmp_path / "run"), str(n), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = np.load(out)
    np.testing.assert_array_equal(resumed["losses"], np.array(straight[k:], np.float64))
    for name, value in rt.params(model).items():
        assert resumed[name].tobytes() == value.tobytes(), name
    assert len(set(straight)) == n  # the losses change every step: the comparison is not vacuous


def test_async_save_is_safe_when_the_next_compiled_step_donates_the_arrays(tmp_path):
    """jaxmodule.compile donates the arrays a step replaces; a pending async save must already
    hold its own copy of the state it was given."""
    import jaxmodule
    from jaxmodule import nn, optim

    model = nn.Linear(64, 64)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    @jaxmodule.compile
    def step(model, opt, x):
        opt.zero_grad()
        loss = jaxmodule.backward(lambda m: (m(x) ** 2).mean(), model)
        opt.step()
        return loss

    x = jnp.ones((4, 64))
    snapshots = {}
    with CheckpointManager(tmp_path / "run") as mgr:
        for i in range(4):
            step(model, opt, x)
            sd = {"model": model.state_dict(), "optimizer": opt.state_dict()}
            snapshots[i] = (
                np.asarray(sd["model"]["weight"]).copy(),
                np.asarray(sd["optimizer"]["state"][0]["momentum_buffer"]).copy(),
            )
            mgr.save(i, sd)  # the next step() donates these very arrays
        mgr.wait_until_finished()
        for i in range(4):
            out = mgr.restore(i)
            np.testing.assert_array_equal(np.asarray(out["model"]["weight"]), snapshots[i][0])
            np.testing.assert_array_equal(
                np.asarray(out["optimizer"]["state"][0]["momentum_buffer"]), snapshots[i][1]
            )
    assert not np.array_equal(snapshots[0][0], snapshots[3][0])
