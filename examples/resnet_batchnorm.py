"""A small ResNet with BatchNorm2d on real handwritten digits: train() / eval() and running stats.

The model is torch's ResNet recipe at a small size (a 3x3 stem, BasicBlocks with two
conv-BatchNorm pairs and an identity or 1x1-conv shortcut, global average pooling, a Linear head)
on scikit-learn's 1,797 8x8 digits (shipped with scikit-learn, no download; `pip install
'jaxmodule[examples]'`). It shows what BatchNorm does in each mode, as in torch:

- `model.train()`: each batch is normalized with its own statistics, and the compiled training
  step updates the `running_mean`, `running_var` and `num_batches_tracked` buffers in place
  (printed before and after training);
- `model.eval()`: the running statistics are used, so a sample's output no longer depends on
  the rest of its batch; held-out accuracy is measured in this mode.

    .venv/bin/python examples/resnet_batchnorm.py                 # 15 epochs, about 99.8% held-out accuracy
    .venv/bin/python examples/resnet_batchnorm.py --epochs 30 --width 32
    .venv/bin/python examples/resnet_batchnorm.py --smoke         # seconds: the CI smoke test
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import jax
import jax.numpy as jnp
import jaxmodule
import jaxmodule.nn.functional as F
import numpy as np
from jaxmodule import nn, optim

__all__ = ["BasicBlock", "ResNet", "load_digits_split", "main"]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BatchNorm pairs and a shortcut (a 1x1 conv-BatchNorm when the shape changes)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet for small single-channel images.

    >>> model = ResNet(width=8)
    >>> model(jnp.zeros((2, 1, 8, 8))).shape
    (2, 10)
    """

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(
            BasicBlock(width, 2 * width, stride=2), BasicBlock(2 * width, 2 * width)
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2 * width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(jaxmodule.flatten(self.avgpool(x), 1))


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as `(N, 1, 8, 8)` float32 in [0, 1]; a shuffled 75/25 split."""
    try:
        from sklearn.datasets import load_digits  # deferred: optional (examples extra)
    except ImportError:
        sys.exit("resnet_batchnorm.py needs scikit-learn: pip install 'jaxmodule[examples]'")
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.75 * len(x))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def describe_bn(name: str, bn: nn.BatchNorm2d) -> str:
    mean, var = np.asarray(bn.running_mean), np.asarray(bn.running_var)

    def first4(a: np.ndarray) -> str:
        return "[" + ", ".join(f"{v:.3f}" for v in a[:4]) + "]"

    return (
        f"{name}: num_batches_tracked={int(bn.num_batches_tracked)}, "
        f"running_mean[:4]={first4(mean)}, running_var[:4]={first4(var)}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="a narrow model, 3 epochs (the CI smoke test)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.width = 3, 8
    jaxmodule.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = load_digits_split(args.seed)
    print(f"digits: {len(x_train)} training and {len(x_test)} held-out 8x8 images")

    model = ResNet(width=args.width)
    print(model.layer2[0])
    print(
        f"{sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{sum(1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))} BatchNorm2d layers; "
        f"buffers of bn1: {[n for n, _ in model.bn1.named_buffers()]}"
    )
    print("before training ", describe_bn("bn1", model.bn1))

    steps_per_epoch = len(x_train) // args.batch_size  # drop the last partial batch, one shape
    optimizer = optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True
    )
    scheduler = optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch
    )
    criterion = nn.CrossEntropyLoss()

    @jaxmodule.compile
    def train_step(x: jax.Array, y: jax.Array) -> jax.Array:
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda: criterion(model(x), y))
        optimizer.step()
        scheduler.step()
        return loss

    @jaxmodule.compile
    def predict(x: jax.Array) -> jax.Array:
        return model(x).argmax(-1)

    def accuracy() -> float:
        model.eval()  # running statistics, no batch dependence
        with jaxmodule.no_grad():
            correct = int((predict(jnp.asarray(x_test)) == jnp.asarray(y_test)).sum())
        model.train()
        return correct / len(x_test)

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            losses.append(train_step(jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx])))
        print(
            f"epoch {epoch}/{args.epochs}: train loss {float(np.mean([float(v) for v in losses])):.4f}, "
            f"held-out accuracy {accuracy():.3f} ({time.perf_counter() - t0:.1f} s)"
        )

    print("after training  ", describe_bn("bn1", model.bn1))
    print(
        f"num_batches_tracked counts the training steps: {int(model.bn1.num_batches_tracked)} == "
        f"{args.epochs} epochs x {steps_per_epoch} steps"
    )

    sample = jnp.asarray(x_test[:1])
    batch = jnp.asarray(np.concatenate([x_test[:1], x_test[1:32]]))
    probe = copy.deepcopy(model)  # a forward in train() mode updates the running statistics
    with jaxmodule.no_grad():
        probe.train()
        alone, in_batch = probe(jnp.concatenate([sample, sample])), probe(batch)
        train_gap = float(jnp.abs(alone[0] - in_batch[0]).max())
        model.eval()
        alone, in_batch = model(sample), model(batch)
        eval_gap = float(jnp.abs(alone[0] - in_batch[0]).max())
    print(
        f"train() mode: one sample's logits depend on its batch (max diff {train_gap:.3f}); "
        f"eval() mode: they do not (max diff {eval_gap:.1e})"
    )
    print(
        f"the train() forwards of a deepcopy left the model's statistics alone: "
        f"num_batches_tracked {int(model.bn1.num_batches_tracked)} (the copy's: {int(probe.bn1.num_batches_tracked)})"
    )
    print(f"final held-out accuracy (eval mode): {accuracy():.3f}")


if __name__ == "__main__":
    main()
