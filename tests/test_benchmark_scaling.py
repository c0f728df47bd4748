"""Smoke test of benchmarks/scaling.py: a tiny run over 2 simulated devices (its own process,
as the benchmark runs it) prints the table's rows, each strategy's losses match the
single-device run, FSDP and TP halve the bytes per device and DP does not; the loss check and
the table are checked on made-up rows (a mismatch must make the script fail)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "scaling.py")
_spec = importlib.util.spec_from_file_location("scaling_bench", SCRIPT)
scaling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scaling)


def _row(strategy, devices, losses, param_bytes=4 * 2**20, opt_bytes=8 * 2**20, step_s=0.01):
    return {
        "strategy": strategy,
        "devices": devices,
        "mesh": "-" if devices == 1 else f"data={devices}",
        "params": 10,
        "step_s": step_s,
        "cpu_s": 2 * step_s,
        "first_call_s": 1.5,
        "param_bytes": param_bytes,
        "opt_bytes": opt_bytes,
        "losses": losses,
        "traces": 1,
    }


def test_quick_run_two_devices():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--quick",
            "--devices",
            "2",
            "--strategies",
            "dp",
            "fsdp",
            "--steps",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    table = [ln for ln in lines if ln.startswith("| ")]
    assert [ln.split(" | ")[:3] for ln in table[1:]] == [
        ["| single", "1", "-"],
        ["| dp", "2", "data=2"],
        ["| fsdp", "2", "data=2"],
    ]
    rows = {r["strategy"]: r for r in json.loads(lines[-1])}
    base = rows["single"]
    assert len(base["losses"]) == scaling.WARMUP + 3
    for name in ("dp", "fsdp"):
        r = rows[name]
        assert r["traces"] == 1, name  # the step compiled once
        assert scaling.max_rel_diff(r["losses"], base["losses"]) < 1e-5, (
            name,
            r["losses"],
            base["losses"],
        )
    total = {k: r["param_bytes"] + r["opt_bytes"] for k, r in rows.items()}
    assert total["dp"] == total["single"]  # replicated: every device holds everything
    # FSDP: every array of the quick model divides by 2 (the optimizer's replicated scalars are a few bytes)
    assert rows["fsdp"]["param_bytes"] * 2 == base["param_bytes"]
    assert rows["fsdp"]["opt_bytes"] * 2 == pytest.approx(base["opt_bytes"], rel=1e-3)


def test_table_and_loss_check_on_made_up_rows(monkeypatch, capsys):
    rows = [_row("single", 1, [2.0, 1.0]), _row("fsdp", 4, [2.0, 1.0 + 1e-7], 2**20, 2**21, 0.02)]
    text = scaling.table(rows)
    assert (
        text.splitlines()[3]
        == "| fsdp | 4 | data=4 | 20.0 ms | 2.00x | 40.0 ms | 1.50 s | 1.0 MB | 2.0 MB | 0.25x | 1.0e-07 |"
    )
    monkeypatch.setattr(scaling, "_spawn", lambda n, strategies, size, steps: rows)
    assert scaling.main(["--devices", "4"]) == 0
    rows[1]["losses"] = [2.0, 1.01]
    assert scaling.main(["--devices", "4"]) == 1
    assert "fsdp x4" in capsys.readouterr().out
