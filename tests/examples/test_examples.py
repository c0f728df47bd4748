"""Smoke tests: every example runs end to end (small settings) and says what it should."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def completed(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )


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
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints",
        "config.json",
        "curves.png",
        "metrics.json",
    ]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == [
        "1",
        "2",
    ]
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    straight = json.loads((run_dir / "metrics.json").read_text())
    losses = straight["per_epoch"]["train_loss"]
    assert straight["epochs_done"] == 2 and losses[1] < losses[0]
    assert (
        straight["held_out_images"] == 450 and straight["held_out_accuracy"] > 0.3
    )  # chance 0.1; about 0.58
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
    straight = run(
        "examples/checkpoint_resume.py",
        "--dir",
        str(tmp_path / "a"),
        "--steps",
        "40",
        "--save-every",
        "10",
    )
    first = run(
        "examples/checkpoint_resume.py",
        "--dir",
        str(tmp_path / "b"),
        "--steps",
        "20",
        "--save-every",
        "10",
    )
    resumed = run(
        "examples/checkpoint_resume.py",
        "--dir",
        str(tmp_path / "b"),
        "--steps",
        "40",
        "--save-every",
        "10",
    )
    assert "resumed from step 20" in resumed
    assert "resumed" not in first
    final = [line for line in straight.splitlines() if line.startswith("final")]
    assert final and final == [line for line in resumed.splitlines() if line.startswith("final")]


def numbers_after(text, marker):
    """The number right after each `marker` in `text` (thousands separators allowed)."""
    return [
        float(part.split()[0].rstrip(",;)").replace(",", "")) for part in text.split(marker)[1:]
    ]


def test_seed_examples_print_every_section_as_torch_would(tmp_path):
    out = run("examples/seed_examples.py", "--smoke", "--dir", str(tmp_path))
    assert out.count("\n=== ") == 11
    assert "state_dict keys: ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']" in out
    assert (
        "state_dict keys: ['param_reg', 'param_buf', 'param_nn.conv.weight', 'param_nn.fc.weight']"
        in out
    )
    assert "named_buffers: ['param_buf']" in out and "param_attr in state_dict: False" in out
    assert (
        out.count("Parameter containing:") == 4
    )  # two from parameters(), two from apply(init_weights)
    assert out.count("Array([[1., 1.],") == 2
    assert f"saved and loaded '{tmp_path / 'my_model.pth'}'" in out and "max abs diff 0.0" in out
    first, last = (
        float(v) for v in out.split("SGD + MSELoss(): loss ")[1].split(" in ")[0].split(" -> ")
    )
    assert last < first
    assert "after eval(): training=False, [False, False, False], same output twice: True" in out
    assert (
        "pre fc1 (3, 10)\npost fc2 (3, 2)\nbackward fc1 grad_output (3, 5)\nafter handle.remove(): 0 hook calls"
        in out
    )
    assert "get_extra_state in state_dict: {'extra._extra_state': {'calls': 7}}" in out
    assert (
        "half(): ['float16']" in out
        and "bfloat16(): ['bfloat16']" in out
        and "float(): ['float32']" in out
    )


def test_char_gpt_learns_the_sonnets_and_samples_with_two_programs():
    out = run("examples/char_gpt.py", "--smoke")
    assert "examples/data/sonnets.txt, 5637 characters, vocabulary 63" in out
    first, last = (float(v) for v in out.split("train loss ")[-1].split(",")[0].split(" -> "))
    assert first > 4.0 and last < first - 0.7  # from ln(63) = 4.14 towards character frequencies
    assert numbers_after(out, "validation loss ")[-1] < 3.5
    assert "Shall I compare thee" in out.split("sampled (")[1]
    assert "KV-cached greedy == recomputed without cache (2 tokens): True" in out
    assert "compiled programs: prefill 2, decode 2" in out


def test_resnet_batchnorm_tracks_running_statistics_and_switches_modes():
    out = run("examples/resnet_batchnorm.py", "--smoke")
    before = out.split("before training  ")[1].splitlines()[0]
    assert (
        "num_batches_tracked=0, running_mean[:4]=[0.000, 0.000, 0.000, 0.000], running_var[:4]=[1.000"
        in before
    )
    after = out.split("after training   ")[1].splitlines()[0]
    assert "num_batches_tracked=63," in after and "[0.000, 0.000, 0.000, 0.000]" not in after
    assert "63 == 3 epochs x 21 steps" in out
    train_gap, eval_gap = numbers_after(out, "(max diff ")
    assert train_gap > 0.1 and eval_gap < 1e-5
    assert "num_batches_tracked 63 (the copy's: 65)" in out
    losses = numbers_after(out, "train loss ")
    assert losses[-1] < losses[0]
    assert (
        numbers_after(out, "final held-out accuracy (eval mode): ")[0] > 0.5
    )  # chance 0.1; about 0.8


def test_port_torch_model_round_trip_agrees_within_1e_5():
    out = run("examples/port_torch_model.py", "--smoke")
    assert "<All keys matched successfully>; 18 entries, keys equal: True" in out
    diffs = numbers_after(out, "max abs diff ")
    assert len(diffs) == 3 and max(diffs) < 1e-5 and out.count("(< 1e-05: True)") == 3
    torch_loss, jax_loss = (
        numbers_after(out, "loss torch ")[0],
        numbers_after(out, ", jaxmodule ")[0],
    )
    assert abs(torch_loss - jax_loss) < 1e-5
    first, last = (
        float(v) for v in out.split("(Dropout on): loss ")[1].splitlines()[0].split(" -> ")
    )
    assert last < first
    assert "torch's bn2.num_batches_tracked: 4" in out


def test_port_torch_model_without_torch_says_what_to_install():
    proc = completed(
        "-c",
        "import runpy, sys; sys.modules['torch'] = None; "
        "runpy.run_path('examples/port_torch_model.py', run_name='__main__')",
    )
    assert proc.returncode == 1
    assert (
        "port_torch_model.py needs PyTorch, which is in the test extra: pip install 'jaxmodule[test]'"
        in proc.stderr
    )


def test_hooks_example_extracts_features_and_inspects_gradients():
    out = run("examples/hooks.py", "--smoke")
    assert "pre-hook fc1: input (8, 16)" in out
    assert "activation features.4  ReLU              shape (8, 16, 8, 8)" in out
    assert "after handle.remove(): 0 activations collected" in out
    fired = out.split("hooks fired in backward order:\n")[1].splitlines()[:3]
    assert [line.split(":")[0].strip() for line in fired] == ["fc2 pre-hook", "fc2", "fc1"]
    total, clipped = (
        numbers_after(out, "total grad norm ")[0],
        numbers_after(out, "returns the same: ")[0],
    )
    assert total > 0 and total == clipped
    norms = out.split("with real values): [")[1].split("]")[0].split(", ")
    assert len(norms) == 3 and all(0 < float(v) < 10 for v in norms)
    assert (
        "after handle.remove(): 3 hook calls (the step retraced without the hook: 2 traces)" in out
    )


def test_mixed_precision_reports_the_unscaled_loss_and_the_scale():
    out = run("examples/mixed_precision.py", "--smoke")
    fp16 = out.split("=== float32 reference ===")[0]
    steps = [line for line in fp16.splitlines() if line.startswith("step")]
    assert len(steps) >= 10
    for line in steps:
        loss, scale = numbers_after(line, "loss ")[0], numbers_after(line, ", scale ")[0]
        scaled = numbers_after(line, "scaled loss ")[0]
        assert 0 < loss < 5 and abs(scaled - loss * scale) <= 1e-3 * scaled
    assert numbers_after(steps[0], ", scale ")[0] == 65536.0
    assert "20 finite steps: scale grows to 131072" in fp16
    first, last = numbers_after(steps[0], "loss ")[0], numbers_after(steps[-1], "loss ")[0]
    assert last < first - 0.3
    assert "master weights stay float32; under autocast Linear computes in float16" in out
    assert numbers_after(out, "differ by at most ")[0] < 1e-2


def test_data_parallel_fsdp_matches_one_device():
    out = run("examples/data_parallel.py", "--smoke", "--fsdp")
    assert out.startswith("8 cpu devices")
    assert "=== FSDP (fully_shard) on mesh {'data': 8} ===" in out
    assert "  fc1.weight   P('data',)" in out and "head.weight  P()  (dimension 0 of size 10" in out
    per_device = numbers_after(out, "parameter bytes per device: ")[0]
    whole = numbers_after(out, "(the whole model: ")[0]
    assert per_device < whole / 4
    assert "compiled once for all 10 steps: 1 trace(s)" in out
    assert numbers_after(out, "relative difference ")[0] < 1e-5


@pytest.mark.slow
def test_data_parallel_ddp_matches_one_device():
    out = run("examples/data_parallel.py", "--smoke")
    assert (
        "parameter bytes per device: 36,392 on each of 8 devices (the whole model: 36,392)" in out
    )
    assert numbers_after(out, "relative difference ")[0] < 1e-5
