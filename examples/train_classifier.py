"""Demo: a CNN on real handwritten digits, written as in PyTorch, each step compiled to one XLA program.

    bash scripts/demo.sh                                     # sets up .venv, then runs this file
    .venv/bin/python examples/train_classifier.py --epochs 30 --lr 0.005
    .venv/bin/python examples/train_classifier.py --resume   # continue the latest run in runs/

The data are scikit-learn's `load_digits`: 1,797 real 8x8 scans of handwritten digits (43 writers,
from the UCI collection), shipped inside scikit-learn, so nothing is downloaded. They are split
75/25, stratified by digit with a fixed seed; the held-out quarter is never trained on.

The model (`class Net(nn.Module)`), loss, AdamW, a OneCycleLR schedule stepped per batch, the
train/eval switch and the training step are written exactly as in torch; `jaxmodule.compile`
turns the step (zero_grad, backward, optimizer step) into one XLA program.

Each run gets a folder `runs/<timestamp>/`:

    config.json      the settings, read back by --resume
    checkpoints/<epoch>/  one jaxmodule.checkpoint.CheckpointManager step per epoch: model,
                     optimizer, scheduler, random generator, epoch and the curves so far
    curves.png       loss and accuracy per epoch
    metrics.json     the final numbers and the per-epoch curves

`--resume [RUN_DIR]` (default: the latest run) continues from the last saved epoch and ends with
exactly the numbers an uninterrupted run ends with: the data order of an epoch depends only on
the seed and the epoch, and everything else that changes is in the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import jaxmodule
import numpy as np
from jaxmodule import nn, optim
from jaxmodule.checkpoint import CheckpointManager

__all__ = ["Net", "load_data", "main", "make_digits"]

DEFAULTS = {"epochs": 20, "batch_size": 64, "lr": 5e-3, "seed": 0, "smoke": False}
SMOKE_TRAIN_IMAGES = (
    256  # --smoke trains on this many images (eval stays on the whole held-out set)
)
HELD_OUT_FRACTION = 0.25


class Net(nn.Module):
    """A small CNN for 1x8x8 images: three 3x3 convolutions with BatchNorm, two poolings, an MLP head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 2x2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(64 * 2 * 2, 128),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


DigitNet = Net  # the name benchmarks/warm_start.py imports


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as (x_train, y_train, x_test, y_test): float32 Nx1x8x8 images
    standardized with the training set's mean and std, int32 labels; stratified split by `seed`."""
    from sklearn.datasets import load_digits  # deferred: keeps `import train_classifier` light
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # pixel counts 0..16 -> [0, 1]
    labels = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=HELD_OUT_FRACTION, stratify=labels, random_state=seed
    )
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


def make_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` training images and their labels (a batch for benchmarks such as warm_start.py)."""
    x_train, y_train, _, _ = load_data(seed)
    return x_train[:n], y_train[:n]


# ---- the run folder --------------------------------------------------------------------------------
def new_run_dir(runs_dir: Path, config: dict[str, Any]) -> Path:
    """A new `runs_dir/<timestamp>` folder holding `config` as config.json (a suffix keeps two
    runs started in one second apart)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = runs_dir / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        (path / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        return path
    raise RuntimeError(f"train_classifier: cannot create a new run folder in {runs_dir}")


def latest_run_dir(runs_dir: Path) -> Path:
    """The newest folder of `runs_dir` that holds a run (a config.json)."""
    runs = (
        sorted(p for p in runs_dir.glob("*") if (p / "config.json").is_file())
        if runs_dir.is_dir()
        else []
    )
    if not runs:
        raise SystemExit(
            f"train_classifier: --resume: no run folder in {runs_dir} to continue "
            "(start one without --resume)"
        )
    return runs[-1]


def shown(path: Path) -> str:
    """`path` relative to the working directory where it lies inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def save_plot(history: dict[str, list[float]], path: Path) -> None:
    """Loss (train and held-out) and held-out accuracy per epoch, as a PNG."""
    import matplotlib  # deferred: only needed once, at the end

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, history["held_out_loss"], "o-", label="held-out")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * a for a in history["held_out_accuracy"]], "o-", color="tab:green")
    ax_acc.set(
        xlabel="epoch",
        ylabel="accuracy (%)",
        title=f"held-out accuracy (final {100 * history['held_out_accuracy'][-1]:.1f}%)",
    )
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle("jaxmodule demo: CNN on scikit-learn's handwritten digits")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_metrics(
    path: Path,
    config: dict[str, Any],
    history: dict[str, list[float]],
    n_test: int,
    seconds: dict[str, float],
) -> dict[str, Any]:
    accuracy = history["held_out_accuracy"]
    metrics = {
        "epochs_done": len(accuracy),
        "epochs": config["epochs"],
        "held_out_accuracy": accuracy[-1],
        "held_out_correct": round(accuracy[-1] * n_test),
        "held_out_images": n_test,
        "held_out_loss": history["held_out_loss"][-1],
        "train_loss": history["train_loss"][-1],
        "best_held_out_accuracy": max(accuracy),
        "best_epoch": accuracy.index(max(accuracy)) + 1,
        "seconds_this_process": seconds,
        "per_epoch": history,
    }
    path.write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


# ---- training --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--epochs", type=int, help=f"epochs to train (default {DEFAULTS['epochs']}; 2 with --smoke)"
    )
    ap.add_argument(
        "--batch-size", type=int, help=f"images per step (default {DEFAULTS['batch_size']})"
    )
    ap.add_argument(
        "--lr", type=float, help=f"OneCycleLR's peak learning rate (default {DEFAULTS['lr']})"
    )
    ap.add_argument(
        "--seed",
        type=int,
        help="seed of the split, the initialization, dropout and the "
        f"data order (default {DEFAULTS['seed']})",
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        default=None,
        help=f"a quick check: {SMOKE_TRAIN_IMAGES} training images, 2 epochs",
    )
    ap.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")
    ap.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN_DIR",
        help="continue a run from its last checkpoint (default: the latest in --runs-dir), "
        "with the settings it was started with",
    )
    ap.add_argument(
        "--stop-after",
        type=int,
        metavar="EPOCH",
        help="stop after this epoch, as if interrupted (continue later with --resume)",
    )
    args = ap.parse_args(argv)
    given = [name for name in DEFAULTS if getattr(args, name) is not None]
    if args.resume and given:
        ap.error(
            f"--resume continues a run with the settings in its config.json; "
            f"drop {', '.join('--' + g.replace('_', '-') for g in given)}"
        )
    for name in ("epochs", "batch_size", "stop_after"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.lr is not None and not args.lr > 0:
        ap.error(f"--lr must be positive, got {args.lr}")
    return args


def settings(args: argparse.Namespace) -> tuple[Path | None, dict[str, Any]]:
    """The run folder --resume names (or the latest) and its settings, or None and the settings
    of a new run (its folder is made once the settings are known to work: `new_run_dir`)."""
    runs_dir = Path(args.runs_dir)
    if args.resume:
        run_dir = latest_run_dir(runs_dir) if args.resume == "latest" else Path(args.resume)
        if not (run_dir / "config.json").is_file():
            raise SystemExit(
                f"train_classifier: --resume {args.resume}: {run_dir} is not a run folder "
                "(it has no config.json)"
            )
        return run_dir, json.loads((run_dir / "config.json").read_text())
    config = {
        name: default if getattr(args, name) is None else getattr(args, name)
        for name, default in DEFAULTS.items()
    }
    if args.smoke and args.epochs is None:
        config["epochs"] = 2
    return None, config


def report(
    run_dir: Path,
    config: dict[str, Any],
    history: dict[str, list[float]],
    n_test: int,
    seconds: dict[str, float],
) -> None:
    """Write metrics.json and curves.png; the last lines say where everything is."""
    done, epochs = len(history["train_loss"]), config["epochs"]
    metrics = write_metrics(run_dir / "metrics.json", config, history, n_test, seconds)
    save_plot(history, run_dir / "curves.png")
    print(
        f"held-out accuracy {100 * metrics['held_out_accuracy']:.1f}% "
        f"({metrics['held_out_correct']}/{n_test} images) after epoch {done}/{epochs}; "
        f"{seconds['total']:.1f} s in this process"
    )
    if done < epochs:
        print(
            f"stopped after epoch {done}; continue with: python {sys.argv[0]} --resume {shown(run_dir)}"
        )
    print(
        f"checkpoints: {shown(run_dir / 'checkpoints')}/<epoch> (epochs 1-{done}; "
        "jaxmodule.checkpoint.CheckpointManager)"
    )
    print(f"curves:      {shown(run_dir / 'curves.png')}")
    print(f"metrics:     {shown(run_dir / 'metrics.json')}")


def main(argv: list[str] | None = None) -> None:
    from tqdm import tqdm  # deferred: an `examples` extra, not needed by `import train_classifier`

    started = time.perf_counter()
    args = parse_args(argv)
    run_dir, config = settings(args)

    # -- data, model, loss, optimizer, schedule: as in torch
    x_train, y_train, x_test, y_test = load_data(config["seed"])
    if config["smoke"]:
        x_train, y_train = x_train[:SMOKE_TRAIN_IMAGES], y_train[:SMOKE_TRAIN_IMAGES]
    batch_size, epochs = config["batch_size"], config["epochs"]
    steps_per_epoch = (
        len(x_train) // batch_size
    )  # the last partial batch is dropped (drop_last=True)
    if steps_per_epoch == 0:
        raise SystemExit(
            f"train_classifier: --batch-size {batch_size} is larger than the "
            f"{len(x_train)} training images"
        )
    if run_dir is None:
        run_dir = new_run_dir(Path(args.runs_dir), config)
    print(
        f"data: {len(x_train) + len(x_test):,} real 8x8 handwritten digits (scikit-learn load_digits): "
        f"{len(x_train):,} train / {len(x_test):,} held-out, stratified, seed {config['seed']}"
    )

    jaxmodule.manual_seed(config["seed"])
    model = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=1e-2)
    scheduler = optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config["lr"], total_steps=epochs * steps_per_epoch
    )
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: Net, {n_params:,} parameters; AdamW + OneCycleLR (peak lr {config['lr']}) "
        f"over {epochs} epochs x {steps_per_epoch} steps of {batch_size}"
    )

    @jaxmodule.compile
    def train_step(x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda: criterion(model(x), y))  # = loss.backward()
        optimizer.step()
        return loss

    @jaxmodule.compile
    def evaluate(x, y):
        logits = model(x)
        return criterion(logits, y), (logits.argmax(-1) == y).sum()

    x_test_dev, y_test_dev = jnp.asarray(x_test), jnp.asarray(y_test)
    history: dict[str, list[float]] = {
        "train_loss": [],
        "held_out_loss": [],
        "held_out_accuracy": [],
        "lr": [],
    }

    with CheckpointManager(run_dir / "checkpoints") as manager:
        start = 0
        if manager.latest_step() is not None:
            state = manager.restore()
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            jaxmodule.default_generator.set_state(state["rng"])
            history, start = state["history"], state["epoch"]
            print(
                f"resumed {shown(run_dir)} from epoch {start} (held-out accuracy "
                f"{100 * history['held_out_accuracy'][-1]:.1f}%)"
            )
            if start >= epochs:
                print(f"this run has finished all its {epochs} epochs: nothing left to train")
        else:
            print(f"run folder: {shown(run_dir)}")
        stop = min(epochs, args.stop_after or epochs)
        compile_s, first_epoch = 0.0, start + 1  # this process compiles during its first epoch
        epoch, bar = start, None
        try:
            for epoch in range(first_epoch, stop + 1):
                model.train()
                order = np.random.default_rng([config["seed"], epoch]).permutation(len(x_train))
                bar = tqdm(
                    total=steps_per_epoch * batch_size,
                    desc=f"epoch {epoch}/{epochs}",
                    unit="img",
                    leave=False,
                    disable=None,
                    dynamic_ncols=True,
                )
                t0 = time.perf_counter()
                losses = []
                for step in range(steps_per_epoch):
                    idx = order[step * batch_size : (step + 1) * batch_size]
                    first = epoch == first_epoch and step == 0
                    if first and not bar.disable:
                        bar.set_postfix_str("tracing + XLA compile ...")
                    t_step = time.perf_counter()
                    loss = train_step(jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]))
                    scheduler.step()  # per batch; a new learning rate is a traced float: no recompile
                    losses.append(loss)
                    if (
                        first
                    ):  # trace + XLA compile (or a load from the persistent cache) + one step
                        loss.block_until_ready()
                        compile_s += time.perf_counter() - t_step
                    if not bar.disable:
                        bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
                    bar.update(batch_size)
                bar.close()
                train_loss = float(jnp.stack(losses).mean())
                model.eval()
                t_eval = time.perf_counter()
                with jaxmodule.no_grad():
                    test_loss, correct = evaluate(x_test_dev, y_test_dev)
                test_loss, correct = float(test_loss), int(correct)
                if epoch == first_epoch:
                    compile_s += time.perf_counter() - t_eval
                seconds = time.perf_counter() - t0
                for key, value in (
                    ("train_loss", train_loss),
                    ("held_out_loss", test_loss),
                    ("held_out_accuracy", correct / len(x_test)),
                    ("lr", scheduler.get_last_lr()[0]),
                ):
                    history[key].append(value)
                manager.save(
                    epoch,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "epoch": epoch,
                        "history": history,
                        "rng": jaxmodule.default_generator.get_state(),
                    },
                )
                compiling = compile_s if epoch == first_epoch else 0.0
                rate = steps_per_epoch * batch_size / max(seconds - compiling, 1e-9)
                note = f" (includes XLA compile: {compile_s:.1f} s)" if compiling else ""
                print(
                    f"epoch {epoch:>2}/{epochs}  train loss {train_loss:.4f}  held-out loss {test_loss:.4f}"
                    f"  accuracy {100 * correct / len(x_test):5.1f}%  {rate:,.0f} img/s  {seconds:.1f} s{note}",
                    flush=True,
                )
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            print(f"\ninterrupted during epoch {epoch}")
    if not history["train_loss"]:
        print(
            f"no epoch finished; start again with: python {sys.argv[0]} --resume {shown(run_dir)}"
        )
        return
    report(
        run_dir,
        config,
        history,
        len(x_test),
        {"total": round(time.perf_counter() - started, 2), "compile": round(compile_s, 2)},
    )


if __name__ == "__main__":
    main()
