"""Smoke tests: every example runs end to end (small settings) and says what it should."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_demo_trains_and_round_trips_its_checkpoint():
    out = run("examples/train_classifier.py", "--epochs", "2", "--train-size", "2048")
    lines = [line for line in out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines]
    accuracy = float(lines[-1].split("test accuracy ")[1].split()[0])
    assert losses[1] < losses[0]
    assert accuracy > 0.3  # 10 classes: chance is 0.1; two short epochs reach about 0.47
    assert "outputs equal = True" in out


def test_checkpoint_resume_example_is_bit_identical(tmp_path):
    straight = run("examples/checkpoint_resume.py", "--dir", str(tmp_path / "a"), "--steps", "40", "--save-every", "10")
    first = run("examples/checkpoint_resume.py", "--dir", str(tmp_path / "b"), "--steps", "20", "--save-every", "10")
    resumed = run("examples/checkpoint_resume.py", "--dir", str(tmp_path / "b"), "--steps", "40", "--save-every", "10")
    assert "resumed from step 20" in resumed
    assert "resumed" not in first
    final = [line for line in straight.splitlines() if line.startswith("final")]
    assert final and final == [line for line in resumed.splitlines() if line.startswith("final")]
