"""Smoke tests: every example runs end to end (small settings) and says what it should."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def completed(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def run(*args):
    proc = completed(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def demo(*args):
    return run("examples/train_classifier.py", "--smoke", *args)


def test_demo_trains_writes_its_run_folder_and_resumes_identically(tmp_path):
    """Two --smoke epochs straight vs one epoch, stopped, then --resume (the latest run): the
    same curves; the run folder holds a checkpoint per epoch, the PNG and metrics.json."""
    out = demo("--runs-dir", str(tmp_path / "a"))
    lines = [line for line in out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "(includes XLA compile: " in lines[0] and "compile" not in lines[1]
    (run_dir,) = (tmp_path / "a").iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "config.json", "curves.png", "metrics.json"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2"]
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    straight = json.loads((run_dir / "metrics.json").read_text())
    losses = straight["per_epoch"]["train_loss"]
    assert straight["epochs_done"] == 2 and losses[1] < losses[0]
    assert straight["held_out_images"] == 450 and straight["held_out_accuracy"] > 0.3  # chance 0.1; about 0.58
    assert out.splitlines()[-1] == f"metrics:     {run_dir / 'metrics.json'}"

    first = demo("--runs-dir", str(tmp_path / "b"), "--stop-after", "1")
    assert "stopped after epoch 1; continue with" in first
    resumed = run("examples/train_classifier.py", "--runs-dir", str(tmp_path / "b"), "--resume")
    assert "from epoch 1" in resumed
    assert [line.split()[1] for line in resumed.splitlines() if line.startswith("epoch")] == ["2/2"]
    (run_b,) = (tmp_path / "b").iterdir()
    assert json.loads((run_b / "metrics.json").read_text())["per_epoch"] == straight["per_epoch"]


def test_demo_refuses_bad_resume_requests(tmp_path):
    proc = completed("examples/train_classifier.py", "--resume", "--epochs", "3")
    assert proc.returncode == 2 and "drop --epochs" in proc.stderr
    proc = completed("examples/train_classifier.py", "--runs-dir", str(tmp_path), "--resume")
    assert proc.returncode == 1 and f"no run folder in {tmp_path}" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_resume_example_is_bit_identical(tmp_path):
    straight = run("examples/checkpoint_resume.py", "--dir", str(tmp_path / "a"), "--steps", "40", "--save-every", "10")
    first = run("examples/checkpoint_resume.py", "--dir", str(tmp_path / "b"), "--steps", "20", "--save-every", "10")
    resumed = run("examples/checkpoint_resume.py", "--dir", str(tmp_path / "b"), "--steps", "40", "--save-every", "10")
    assert "resumed from step 20" in resumed
    assert "resumed" not in first
    final = [line for line in straight.splitlines() if line.startswith("final")]
    assert final and final == [line for line in resumed.splitlines() if line.startswith("final")]
