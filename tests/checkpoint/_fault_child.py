"""Child processes for test_fault_injection (run as scripts, never imported by pytest).

python _fault_child.py write PATH START COUNT GO_FILE
    import everything, print "ready", wait until GO_FILE exists, then save make(START),
    make(START + 1), ... (COUNT saves) into PATH, printing each index once its save returned.
python _fault_child.py exit DIR HOW
    start an asynchronous CheckpointManager save of step 1 (about 20 MB), then leave the
    interpreter at once: HOW is 'end' (the script ends), 'sys_exit' (sys.exit(3)), 'raise'
    (an uncaught exception) or 'fail' (the script ends, but the save's commit fails).
"""

from __future__ import annotations

import os
import sys
import time

import jax.numpy as jnp

BIG_ROWS = 16


def big_state() -> dict:
    """The payload of the exit children (large enough that the write is still running at exit)."""
    return {
        "w": jnp.ones((1024, 1024)),
        "rows": [jnp.full((512, 512), float(i)) for i in range(BIG_ROWS)],
        "step": 1,
    }


def _write(path: str, start: int, count: int, go: str) -> None:
    from _crash_child import make
    from jaxmodule.checkpoint import save

    save(make(start), path + ".warmup")  # load orbax and compile before the race starts
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.005)
    for i in range(start, start + count):
        save(make(i), path)
        print(i, flush=True)


def _exit(directory: str, how: str) -> None:
    from jaxmodule.checkpoint import CheckpointManager

    if how == "fail":
        from orbax.checkpoint._src.path import async_path

        async def broken_rename(*args, **kwargs):
            raise OSError(28, "No space left on device (injected)")

        async_path.rename = broken_rename
    mgr = CheckpointManager(directory, async_save=True)
    mgr.save(1, big_state())
    print("saving" if mgr.is_saving_in_progress() else "saved", flush=True)
    if how == "sys_exit":
        sys.exit(3)
    if how == "raise":
        raise KeyError("uncaught on purpose")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        _write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        _exit(sys.argv[2], sys.argv[3])
