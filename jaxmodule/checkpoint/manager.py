"""`CheckpointManager`: periodic, asynchronous, rotating checkpoints for training loops.

A layer over `orbax.checkpoint.CheckpointManager`. Each step is a directory `<directory>/<step>/`
holding the same manifest + arrays as `save` writes (`manifest/jaxmodule.json` and `arrays/`),
committed atomically by orbax; `jaxmodule.load('<directory>/<step>')` reads one.

What this layer adds to orbax:

* integrity: every array carries a CRC32 and the manifest its own checksum, checked on restore;
* only real steps count: a directory holding anything but steps is refused, and a folder that is
  not a step (no manifest) is never listed nor deleted;
* rotation runs only after a save is committed, so a failed save never costs an intact step
  (orbax deletes the old steps even when the new one fails);
* one writer: the first save locks `<directory>/.jaxmodule.lock` until `close()`;
* pending asynchronous saves are finished at interpreter exit (see `_exit`);
* a multi-process run (`jaxmodule.distributed.init_process_group`): every process creates the
  manager and calls `save`/`restore` with the same steps; process 0 holds the lock and decides
  the rotation, which every process then carries out with orbax (a collective delete).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _multiprocess
from ._exit import PENDING
from ._format import build, ocp
from ._lock import LockedError, WriterLock, exclusive
from ._manifest import MANIFEST, seal
from .serialization import read_checkpoint

__all__ = ["CheckpointManager"]

_LOCK = ".jaxmodule.lock"
_ORBAX_TMP = re.compile(r"\d+\.orbax-checkpoint-tmp(-\d+)?")


def _is_step(path: Path) -> bool:
    """A committed step written by a CheckpointManager (not merely a folder named by a number)."""
    return (
        path.name.isdigit()
        and path.is_dir()
        and not path.is_symlink()
        and (path / "manifest" / MANIFEST).is_file()
        and (path / "_CHECKPOINT_METADATA").is_file()
    )


def _foreign_entries(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(
        c.name
        for c in directory.iterdir()
        if not (c.name == _LOCK or _ORBAX_TMP.fullmatch(c.name) or _is_step(c))
    )


class CheckpointManager:
    """Save a training state every N steps, keep the last K and the best, restore the latest.

    Args:
        directory: root directory; one subdirectory per saved step. It must be new, empty, or
            a directory this class wrote (holding only steps).
        save_interval_steps: `save(step, ...)` writes only when `step % save_interval_steps == 0`
            (or `force=True`).
        max_to_keep: keep the most recent `max_to_keep` steps (None keeps all). Older steps are
            deleted once a newer save is committed, so a crash or a failed save never leaves
            fewer intact steps.
        best_fn: `metrics -> float`; with it, the `keep_best` best steps by that score are kept
            as well as the most recent ones.
        best_mode: 'max' or 'min': whether a larger or a smaller `best_fn` value is better.
        keep_best: how many best steps to keep when `best_fn` is given.
        async_save: write in a background thread; `save` returns once the arrays are copied
            off the device. A pending save is finished by the next `save`, `restore`,
            `wait_until_finished()`, `close()`, or at interpreter exit.
        create: create `directory` if it does not exist.

    Raises:
        ValueError: `directory` holds entries that are not checkpoint steps (nothing is changed).

    Only one manager may write to a directory at a time: the first `save` takes a lock that
    `close()` releases, and a second writer's `save` raises RuntimeError. Reading (`restore`,
    `all_steps`) needs no lock. In a multi-process run every process creates its manager and
    makes the same `save`/`restore` calls; process 0 takes the lock for all of them.

    >>> import tempfile, jax.numpy as jnp
    >>> with CheckpointManager(tempfile.mkdtemp(), save_interval_steps=2, max_to_keep=2) as mgr:
    ...     for step in range(6):
    ...         _ = mgr.save(step, {'w': jnp.full(2, step)})
    ...     mgr.wait_until_finished()
    ...     mgr.all_steps(), int(mgr.restore()['w'][0])
    ([2, 4], 4)
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        save_interval_steps: int = 1,
        max_to_keep: int | None = None,
        best_fn: Callable[[Any], float] | None = None,
        best_mode: str = "max",
        keep_best: int = 1,
        async_save: bool = True,
        create: bool = True,
    ) -> None:
        if not isinstance(save_interval_steps, int) or save_interval_steps < 1:
            raise ValueError(
                f"save_interval_steps must be a positive int, got {save_interval_steps!r}"
            )
        if max_to_keep is not None and (not isinstance(max_to_keep, int) or max_to_keep < 1):
            raise ValueError(f"max_to_keep must be None or a positive int, got {max_to_keep!r}")
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
        self.directory = Path(os.path.abspath(os.fspath(directory)))
        if (self.directory / MANIFEST).is_file():
            raise ValueError(
                f"CheckpointManager: {self.directory} is a single checkpoint written by "
                "jaxmodule.save, not a CheckpointManager directory; read it with jaxmodule.load"
            )
        if os.path.lexists(self.directory) and not self.directory.is_dir():
            raise ValueError(f"CheckpointManager: {self.directory} is a file, not a directory")
        if not self.directory.exists() and not create:
            raise FileNotFoundError(
                f"CheckpointManager: {self.directory} does not exist (create=False)"
            )
        foreign = _foreign_entries(self.directory)
        if foreign:
            raise ValueError(
                f"CheckpointManager: {self.directory} holds entries that are not checkpoint "
                f"steps: {foreign[:10]}{' ...' if len(foreign) > 10 else ''}; use a new or "
                "empty directory (nothing was changed)"
            )
        self._max_to_keep, self._keep_best = max_to_keep, keep_best
        self._best_fn, self._best_mode = best_fn, best_mode
        self._async = async_save
        self._pending: int | None = None
        self._closed = False
        self._lock = WriterLock(self.directory / _LOCK)
        self._collective = _multiprocess.is_multiprocess()
        self._writing = False  # this manager has saved (holds the lock, or process 0 does for it)
        o = ocp()
        pp = o.checkpoint_managers
        # Save exactly on multiples of the interval (orbax's default also saves the first step seen).
        decision = pp.AnySavePolicy(
            [pp.FixedIntervalPolicy(save_interval_steps), pp.PreemptionCheckpointingPolicy()]
        )
        # No preservation policy: orbax keeps every step and `_rotate` deletes them after a commit.
        options = o.CheckpointManagerOptions(
            save_decision_policy=decision,
            best_fn=best_fn,
            best_mode=best_mode,
            create=create,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self._mngr = o.CheckpointManager(
            self.directory,
            options=options,
            item_names=("manifest", "arrays"),
            item_handlers={
                "manifest": o.JsonCheckpointHandler(filename=MANIFEST),
                "arrays": o.PyTreeCheckpointHandler(),
            },
        )

    # ---- writing ---------------------------------------------------------------------------------
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

        Raises:
            RuntimeError: the previous asynchronous save failed (reported once; the steps on
                disk are intact), or another manager writes to this directory.
        """
        if not force and not self.should_save(step):
            return False
        self._settle()
        self._take_lock()
        manifest, stored = build(obj, kind="step", local_as_numpy=self._collective)
        o = ocp()
        items = {"manifest": o.args.JsonSave(seal(manifest))}
        if stored:
            items["arrays"] = o.args.PyTreeSave(stored)
        try:
            wrote = bool(
                self._mngr.save(step, args=o.args.Composite(**items), metrics=metrics, force=force)
            )
        except BaseException:
            self._mngr.reload()
            raise
        if wrote:
            self._pending = step
            if self._async:
                PENDING.track(self)
            else:
                self._settle()
        return wrote

    def _take_lock(self) -> None:
        if self._writing:
            return
        if not self._collective:
            self._acquire()
        else:  # process 0 locks for every process and tells them whether it could
            rv = _multiprocess.Rendezvous("manager-lock", str(self.directory))
            if rv.primary:
                try:
                    self._acquire()
                except BaseException as e:
                    rv.publish("lock", error=e)
                    raise
                rv.publish("lock")
            else:
                rv.fetch("lock")
        self._writing = True

    def _acquire(self) -> None:
        try:
            self._lock.acquire(wait=False)
        except LockedError:
            raise RuntimeError(
                f"CheckpointManager: {self.directory} is being written by another "
                f"CheckpointManager ({self._lock.holder()}); two managers must not write "
                "to one directory"
            ) from None

    def _settle(self) -> None:
        """Wait for the pending save; check it was committed; then rotate old steps."""
        pending, self._pending = self._pending, None
        error: BaseException | None = None
        try:
            self._mngr.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - reported below with the step
            error = e
        finally:
            PENDING.untrack(self)
        if pending is not None and (
            error is not None or not _is_step(self.directory / str(pending))
        ):
            self._mngr.reload()  # orbax may still list the step it failed to commit
            self._drop_temporaries(pending)
            cause = (
                f"{type(error).__name__}: {error}"
                if error is not None
                else "orbax logged the cause"
            )
            kind = "asynchronous save" if self._async else "save"
            raise RuntimeError(
                f"CheckpointManager: the {kind} of step {pending} to {self.directory} failed "
                f"({cause}); the steps on disk are intact: {self.all_steps()}"
            ) from error
        if error is not None:
            raise error
        if self._writing:  # only the writer rotates; a manager that only reads deletes nothing
            self._rotate()

    def _drop_temporaries(self, step: int) -> None:
        """Remove orbax's temporary directory of a step whose save failed (we hold the lock)."""
        if not self._lock.held:
            return
        for child in self.directory.iterdir():
            if _ORBAX_TMP.fullmatch(child.name) and child.name.split(".", 1)[0] == str(step):
                shutil.rmtree(child, ignore_errors=True)

    def _scored(self, steps: list[int]) -> list[tuple[float, int]]:
        """(score, step) of the steps with metrics, best first."""
        scored = []
        for s in steps:
            m = self._mngr.metrics(s)
            if m is not None:
                scored.append((float(self._best_fn(m)), s))  # type: ignore[misc]
        return sorted(scored, reverse=self._best_mode == "max")

    def _doomed(self) -> list[int]:
        """The committed steps the keep rules no longer keep."""
        steps = self.all_steps()
        keep = set(steps if self._max_to_keep is None else steps[-self._max_to_keep :])
        if self._best_fn is not None:
            keep.update(s for _, s in self._scored(steps)[: self._keep_best])
        return [s for s in steps if s not in keep]

    def _rotate(self) -> None:
        if self._collective:
            self._rotate_collective()
            return
        doomed = self._doomed()
        if doomed and not set(doomed) <= set(self._mngr.all_steps()):
            self._mngr.reload()
        for s in doomed:
            with exclusive(self.directory / str(s)) as readers_done:
                if readers_done:  # else a reader still holds it: the next rotation deletes it
                    self._mngr.delete(s)

    def _rotate_collective(self) -> None:
        """`_rotate` in a multi-process run: process 0 decides which steps go (and waits for its
        readers of each); every process calls orbax's delete, which is collective."""
        rv = _multiprocess.Rendezvous("rotate", str(self.directory))
        if rv.primary:
            try:
                doomed = self._doomed()
            except BaseException as e:
                rv.publish("doomed", error=e)
                raise
            rv.publish("doomed", json.dumps(doomed))
        else:
            doomed = json.loads(rv.fetch("doomed"))
        if doomed and not set(doomed) <= set(self._mngr.all_steps()):
            self._mngr.reload()
        for s in doomed:
            if rv.primary:
                with exclusive(self.directory / str(s)) as readers_done:
                    rv.publish(f"delete/{s}", "yes" if readers_done else "")
                    if readers_done:
                        self._mngr.delete(s)
            elif rv.fetch(f"delete/{s}"):
                self._mngr.delete(s)

    # ---- reading ---------------------------------------------------------------------------------
    def restore(self, step: int | None = None, map_location: Any = None) -> Any:
        """The object saved at `step` (the latest step when None); see `jaxmodule.load` for
        `map_location`. Every array and the manifest are checked against their checksums.

        Raises:
            FileNotFoundError: no step saved yet, or `step` is not one of `all_steps()`.
            RuntimeError: the step is damaged (or the pending asynchronous save failed).
        """
        self._settle()
        steps = self.all_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(
                    f"CheckpointManager: no checkpoint saved in {self.directory} yet"
                )
            step = steps[-1]
        elif step not in steps:
            raise FileNotFoundError(
                f"CheckpointManager: no checkpoint for step {step} in "
                f"{self.directory}; saved steps: {steps}"
            )
        return read_checkpoint(self.directory / str(step), map_location, verify=True)

    def all_steps(self) -> list[int]:
        """The committed steps on disk, oldest first (folders that are not steps never count)."""
        if not self.directory.is_dir():
            return []
        return sorted(int(c.name) for c in self.directory.iterdir() if _is_step(c))

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """The best step by `best_fn` (the latest step when no `best_fn` was given)."""
        if self._best_fn is None:
            return self.latest_step()
        scored = self._scored(self.all_steps())
        return scored[0][1] if scored else None

    def metrics(self, step: int) -> Any:
        return self._mngr.metrics(step)

    def is_saving_in_progress(self) -> bool:
        """Whether an asynchronous save is still being written."""
        return self._mngr.is_saving_in_progress()

    def wait_until_finished(self) -> None:
        """Block until the pending asynchronous save is on disk (and old steps are removed).

        Raises:
            RuntimeError: that save failed (the steps on disk are intact).
        """
        self._settle()

    def close(self) -> None:
        """Finish the pending save, release the directory and the background resources."""
        if self._closed:
            return
        try:
            self._settle()
        finally:
            self._closed = True
            try:
                self._mngr.close()
            finally:
                self._lock.release()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointManager({str(self.directory)!r}, steps={self.all_steps()})"
