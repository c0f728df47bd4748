"""`CheckpointManager`: periodic, asynchronous, rotating checkpoints for training loops.

A thin layer over `orbax.checkpoint.CheckpointManager`. Each step is a directory
`<directory>/<step>/` holding the same manifest + arrays as `save` writes (`manifest/jaxmodule.json`
and `arrays/`), committed atomically by orbax; `jaxmodule.load('<directory>/<step>')` reads one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _atomic
from ._format import build, ocp
from .serialization import _load_dir

__all__ = ["CheckpointManager"]


class CheckpointManager:
    """Save a training state every N steps, keep the last K and the best, restore the latest.

    Args:
        directory: root directory; one subdirectory per saved step.
        save_interval_steps: `save(step, ...)` writes only when `step % save_interval_steps == 0`
            (or `force=True`).
        max_to_keep: keep the most recent `max_to_keep` steps (None keeps all).
        best_fn: `metrics -> float`; with it, the `keep_best` best steps by that score are kept
            as well as the most recent ones.
        best_mode: 'max' or 'min': whether a larger or a smaller `best_fn` value is better.
        keep_best: how many best steps to keep when `best_fn` is given.
        async_save: write in a background thread; `save` returns once the arrays are copied
            off the device. Call `wait_until_finished()` or `close()` before exiting.
        create: create `directory` if it does not exist.

    >>> import tempfile, jax.numpy as jnp
    >>> with CheckpointManager(tempfile.mkdtemp(), save_interval_steps=2, max_to_keep=2) as mgr:
    ...     for step in range(6):
    ...         _ = mgr.save(step, {'w': jnp.full(2, step)})
    ...     mgr.wait_until_finished()
    ...     mgr.all_steps(), int(mgr.restore()['w'][0])
    ([2, 4], 4)
    """

    def __init__(self, directory: str | os.PathLike, *, save_interval_steps: int = 1,
                 max_to_keep: int | None = None, best_fn: Callable[[Any], float] | None = None,
                 best_mode: str = "max", keep_best: int = 1, async_save: bool = True,
                 create: bool = True) -> None:
        if not isinstance(save_interval_steps, int) or save_interval_steps < 1:
            raise ValueError(f"save_interval_steps must be a positive int, got {save_interval_steps!r}")
        if max_to_keep is not None and (not isinstance(max_to_keep, int) or max_to_keep < 1):
            raise ValueError(f"max_to_keep must be None or a positive int, got {max_to_keep!r}")
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
        self.directory = Path(os.path.abspath(os.fspath(directory)))
        if (self.directory / _atomic.MANIFEST).is_file():
            raise ValueError(f"CheckpointManager: {self.directory} is a single checkpoint written by "
                             "jaxmodule.save, not a CheckpointManager directory; read it with jaxmodule.load")
        if not self.directory.exists() and not create:
            raise FileNotFoundError(f"CheckpointManager: {self.directory} does not exist (create=False)")
        o = ocp()
        pp = o.checkpoint_managers
        policies = [pp.LatestN(n=max_to_keep)]
        if best_fn is not None:
            policies.append(pp.BestN(get_metric_fn=best_fn, reverse=(best_mode == "min"), n=keep_best,
                                     keep_checkpoints_without_metrics=False))
        # Save exactly on multiples of the interval (orbax's default also saves the first step seen).
        decision = pp.AnySavePolicy([pp.FixedIntervalPolicy(save_interval_steps),
                                     pp.PreemptionCheckpointingPolicy()])
        options = o.CheckpointManagerOptions(
            save_decision_policy=decision, best_fn=best_fn, best_mode=best_mode,
            preservation_policy=pp.AnyPreservationPolicy(policies), create=create,
            enable_async_checkpointing=async_save, cleanup_tmp_directories=True)
        self._mngr = o.CheckpointManager(
            self.directory, options=options, item_names=("manifest", "arrays"),
            item_handlers={"manifest": o.JsonCheckpointHandler(filename=_atomic.MANIFEST),
                           "arrays": o.PyTreeCheckpointHandler()})

    def should_save(self, step: int) -> bool:
        """Whether `save(step, ...)` would write (interval reached and step not saved yet)."""
        return self._mngr.should_save(step)

    def save(self, step: int, obj: Any, *, metrics: Any = None, force: bool = False) -> bool:
        """Save `obj` (anything `jaxmodule.save` accepts) as `step`. Returns whether it wrote.

        Args:
            step: the training step.
            obj: the state, e.g. `{'model': model.state_dict(), 'optimizer': opt.state_dict(),
                'step': step, 'rng': jaxmodule.default_generator.get_state()}`.
            metrics: a dict of numbers for `best_fn` (required when `best_fn` was given).
            force: save even when the interval says not to.
        """
        if not force and not self.should_save(step):
            return False
        manifest, stored = build(obj, kind="step", checksums=False)
        o = ocp()
        items = {"manifest": o.args.JsonSave(manifest)}
        if stored:
            items["arrays"] = o.args.PyTreeSave(stored)
        return bool(self._mngr.save(step, args=o.args.Composite(**items), metrics=metrics, force=force))

    def restore(self, step: int | None = None, map_location: Any = None) -> Any:
        """The object saved at `step` (the latest step when None); see `jaxmodule.load` for
        `map_location`.

        Raises:
            FileNotFoundError: no step saved yet, or `step` is not one of `all_steps()`.
        """
        self._mngr.wait_until_finished()
        steps = self.all_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"CheckpointManager: no checkpoint saved in {self.directory} yet")
            step = steps[-1]
        elif step not in steps:
            raise FileNotFoundError(f"CheckpointManager: no checkpoint for step {step} in "
                                    f"{self.directory}; saved steps: {steps}")
        step_dir = self.directory / str(step)
        return _load_dir(step_dir, step_dir, map_location, verify=True)

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def best_step(self) -> int | None:
        """The best step by `best_fn` (the latest step when no `best_fn` was given)."""
        return self._mngr.best_step()

    def all_steps(self) -> list[int]:
        return sorted(self._mngr.all_steps())

    def metrics(self, step: int) -> Any:
        return self._mngr.metrics(step)

    def is_saving_in_progress(self) -> bool:
        """Whether an asynchronous save is still being written."""
        return self._mngr.is_saving_in_progress()

    def wait_until_finished(self) -> None:
        """Block until every pending asynchronous save is on disk (and old steps are removed)."""
        self._mngr.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release the background resources."""
        self._mngr.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointManager({str(self.directory)!r}, steps={self.all_steps()})"
