"""Smoke test of benchmarks/scheduler_step.py: its three steps train the same way (the
scheduled jaxmodule step's learning rate follows OneCycleLR and stays on the fast path), and a
tiny run prints a row for every step."""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "scheduler_step.py")
_spec = importlib.util.spec_from_file_location("scheduler_bench", SCRIPT)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize("opt", ["sgd_momentum", "adam"])
def test_the_scheduled_step_follows_onecycle_on_the_fast_path(opt):
    step, batch = bench.build_scheduled(opt, sched=True)
    losses = [float(step(*batch)) for _ in range(4)]
    assert step._fast is not None and step.trace_count == 1
    assert all(b < a for a, b in zip(losses, losses[1:]))  # it trains
    cls, kwargs, _ = bench.OPTIMIZERS[opt]
    reference = getattr(torch.optim, cls)([torch.zeros(1, requires_grad=True)], **kwargs)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        reference, max_lr=kwargs["lr"], total_steps=bench.TOTAL
    )
    for _ in range(4):
        reference.step()
        sched.step()
    cells = step.fn.__closure__  # the step's optimizer is one of its closure variables
    optimizer = next(c.cell_contents for c in cells if hasattr(c.cell_contents, "param_groups"))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(sched.get_last_lr()[0], rel=1e-6)


def test_quick_run_prints_every_row():
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--steps", "3", "--opts", "adam"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| adam |")]
    assert len(rows) == 3 and all(line.rstrip().endswith("x |") for line in rows)
