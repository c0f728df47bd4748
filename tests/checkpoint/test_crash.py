"""Crash safety of `save`: SIGKILL a process that saves repeatedly into one path, at random moments.

After every kill the path must load, completely, as one of the saves: the last one the child
reported finished, or the next one if the kill came after its final rename but before the report.
Eight children run at once (each with its own path) to share the start-up cost (importing jax
and orbax); each is killed twice, 16 kills in all.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
from jaxmodule.checkpoint import load, save

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _crash_child import make  # noqa: E402

sys.path.remove(str(HERE))

CHILDREN, ROUNDS = 8, 2


def _equal(a, b) -> bool:
    if list(a) != list(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, (jax.Array, np.ndarray)):
            x, y = np.asarray(x), np.asarray(y)
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                return False
        elif x != y:
            return False
    return True


def _start(path: Path, first: int) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.Popen(
        [sys.executable, str(HERE / "_crash_child.py"), str(path), str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_during_saves_never_damages_the_checkpoint(tmp_path):
    rng = random.Random(0)
    paths = [tmp_path / f"ckpt{c}.pth" for c in range(CHILDREN)]
    last_done: list[int | None] = [None] * CHILDREN
    kills = 0
    for rnd in range(ROUNDS):
        procs = [_start(p, 1000 * rnd + 1) for p in paths]
        done: list[list[int]] = [[] for _ in procs]
        # let each child finish 1-3 saves, then kill it a random moment into the next one(s)
        targets = [rng.randint(1, 3) for _ in procs]
        delays = [rng.uniform(0.0, 0.25) for _ in procs]
        alive = set(range(CHILDREN))
        deadline = time.monotonic() + 120
        while alive and time.monotonic() < deadline:
            for c in sorted(alive):
                line = procs[c].stdout.readline()
                if not line:
                    raise AssertionError(f"child {c} exited: {procs[c].stderr.read()[-2000:]}")
                done[c].append(int(line))
                if len(done[c]) >= targets[c]:
                    time.sleep(delays[c])
                    procs[c].send_signal(signal.SIGKILL)
                    procs[c].wait()
                    kills += 1
                    alive.discard(c)
        assert not alive, "children did not reach their kill points in time"
        for c, p in enumerate(paths):
            rest = procs[c].stdout.read().split()
            done[c].extend(int(x) for x in rest)
            procs[c].stdout.close()
            procs[c].stderr.close()
            last = done[c][-1]
            got = load(p)
            ok = [i for i in (last, last + 1) if _equal(got, make(i))]
            assert ok, (
                f"child {c} round {rnd}: {p} holds index {got.get('index')}, expected {last} or {last + 1}"
            )
            last_done[c] = ok[0]
    assert kills == CHILDREN * ROUNDS
    # a later successful save cleans up whatever the kills left beside the path
    for p in paths:
        save(make(0), p)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)
