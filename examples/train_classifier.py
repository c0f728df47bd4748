"""Demo: train a small CNN digit classifier the PyTorch way, compiled to one XLA program.

    bash scripts/demo.sh            # sets up .venv, then runs this file
    .venv/bin/python examples/train_classifier.py --epochs 3

The data are 16x16 images of the digits 0-9 drawn from a 5x7 pixel font with random shifts,
scaling, stroke noise and pixel noise (generated here, so the demo needs no download). The model,
loss, optimizer, scheduler, train/eval switching, checkpointing and the step are written exactly
as in torch; `jaxmodule.compile` turns the step into one compiled program.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax.numpy as jnp
import numpy as np

import jaxmodule
from jaxmodule import nn, optim

FONT = {  # 5x7 bitmaps, one string per row
    0: ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    1: ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    2: ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    3: ["11110", "00001", "00001", "01110", "00001", "00001", "11110"],
    4: ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    5: ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    6: ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    7: ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    8: ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    9: ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
}


def make_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n noisy 1x16x16 digit images and their labels."""
    rng = np.random.default_rng(seed)
    glyphs = {d: np.array([[c == "1" for c in row] for row in rows], np.float32) for d, rows in FONT.items()}
    images = np.zeros((n, 1, 16, 16), np.float32)
    labels = rng.integers(0, 10, n)
    for i, d in enumerate(labels):
        g = glyphs[int(d)]
        if rng.random() < 0.5:  # thicker strokes
            g = np.clip(g + np.roll(g, 1, axis=1), 0, 1)
        scale = rng.integers(1, 3)
        g = np.kron(g, np.ones((scale, scale), np.float32))[:14, :14]
        g = g * (rng.random(g.shape) > 0.05)  # stroke dropouts
        top = rng.integers(0, 17 - g.shape[0])
        left = rng.integers(0, 17 - g.shape[1])
        images[i, 0, top:top + g.shape[0], left:left + g.shape[1]] = g
    images += 0.15 * rng.standard_normal(images.shape).astype(np.float32)
    return images, labels.astype(np.int32)


class DigitNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 4 * 4, 64),
                                        nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-size", type=int, default=4096)
    args = ap.parse_args()

    jaxmodule.manual_seed(0)
    x_train, y_train = make_digits(args.train_size, seed=0)
    x_test, y_test = make_digits(1024, seed=1)
    model = DigitNet()
    print(model)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    steps_per_epoch = args.train_size // args.batch_size
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps_per_epoch)

    @jaxmodule.compile
    def train_step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda m: criterion(m(x), y), model)
        optimizer.step()
        return loss

    @jaxmodule.compile
    def predict(model, x):
        return model(x).argmax(-1)

    def accuracy() -> float:
        model.eval()
        hits = sum(int((predict(model, jnp.asarray(x_test[i:i + 256])) == y_test[i:i + 256]).sum())
                   for i in range(0, len(x_test), 256))
        model.train()
        return hits / len(x_test)

    rng = np.random.default_rng(0)
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        order = rng.permutation(args.train_size)
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * args.batch_size:(s + 1) * args.batch_size]
            losses.append(train_step(model, optimizer, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx])))
            scheduler.step()
        mean_loss = float(jnp.stack(losses).mean())
        print(f"epoch {epoch + 1}: loss {mean_loss:.4f}  test accuracy {accuracy():.3f}  "
              f"lr {scheduler.get_last_lr()[0]:.5f}  ({time.perf_counter() - t0:.1f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits.pth")
        jaxmodule.save(model.state_dict(), path)
        restored = DigitNet()
        restored.load_state_dict(jaxmodule.load(path))
        restored.eval()
        model.eval()
        same = bool(jnp.allclose(restored(jnp.asarray(x_test[:64])), model(jnp.asarray(x_test[:64])), atol=1e-6))
        print(f"checkpoint round trip through {os.path.basename(path)}: outputs equal = {same}")


if __name__ == "__main__":
    main()
