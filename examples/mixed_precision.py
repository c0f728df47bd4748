"""Mixed precision: `jaxmodule.autocast` and `GradScaler`, reporting the real (unscaled) loss.

torch's AMP recipe, in a compiled step: float32 master weights; the forward runs under
`jaxmodule.autocast("cpu", dtype=jnp.float16)` (Linear layers compute in float16, the loss in
float32); `scaler.scale(loss)` multiplies the loss by the scale factor before the backward pass
so small float16 gradients do not underflow; `scaler.step(optimizer)` unscales the gradients and
skips the step when any is inf/NaN; `scaler.update()` grows or backs off the scale.

What to print: `scaler.scale(loss)` is the loss times the scale (65536 at the start, so a loss of
2.1113 shows as 138,369). The step below returns the unscaled loss for logging and reads the scale
with `scaler.get_scale()`; a step whose scale went down was skipped (inf/NaN gradients).

    .venv/bin/python examples/mixed_precision.py
    .venv/bin/python examples/mixed_precision.py --dtype bfloat16   # bfloat16 needs no scaler
    .venv/bin/python examples/mixed_precision.py --init-scale 1e9   # see skipped steps and back-off
    .venv/bin/python examples/mixed_precision.py --smoke            # the CI smoke test
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import jaxmodule
import numpy as np
from jaxmodule import nn, optim

__all__ = ["make_model", "train", "main"]


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(32, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 10)
    )


def data(n: int, seed: int = 0) -> tuple[jnp.ndarray, jnp.ndarray]:
    """A learnable 10-class problem: the label is the argmax of a fixed random projection."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 32)).astype(np.float32)
    y = (x @ rng.standard_normal((32, 10))).argmax(1).astype(np.int32)
    return jnp.asarray(x), jnp.asarray(y)


def train(
    dtype, steps: int, batch_size: int, lr: float, init_scale: float, log_every: int
) -> list[float]:
    """Train a fresh model (seed 0) with autocast to `dtype` (None: float32); the unscaled losses."""
    jaxmodule.manual_seed(0)
    model = make_model()
    optimizer = optim.AdamW(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    # float16 needs loss scaling; bfloat16 (float32's exponent range) and float32 do not
    growth_interval = 20  # torch's default is 2000; short here to show the growth
    scaler = jaxmodule.amp.GradScaler(
        init_scale=init_scale, growth_interval=growth_interval, enabled=dtype == jnp.float16
    )
    autocast_on = dtype is not None
    x_all, y_all = data(steps * batch_size)

    @jaxmodule.compile
    def train_step(x, y):
        optimizer.zero_grad()

        def loss_fn():
            with jaxmodule.autocast("cpu", dtype=dtype or jnp.bfloat16, enabled=autocast_on):
                logits = model(x)  # float16 matmuls under autocast
            loss = criterion(logits.astype(jnp.float32), y)
            return scaler.scale(loss), loss  # backward the scaled loss, keep the real one

        _, loss = jaxmodule.backward(loss_fn, has_aux=True)
        scaler.step(optimizer)  # unscales; skips the step on inf/NaN
        scaler.update()
        return loss, logits_dtype(x)

    @jaxmodule.compile
    def logits_dtype(x):
        with jaxmodule.autocast("cpu", dtype=dtype or jnp.bfloat16, enabled=autocast_on):
            return model[0](x[:1])

    losses = []
    for step in range(steps):
        scale_before = float(scaler.get_scale())
        loss, probe = train_step(
            x_all[step * batch_size : (step + 1) * batch_size],
            y_all[step * batch_size : (step + 1) * batch_size],
        )
        losses.append(float(loss))
        scale = float(scaler.get_scale())
        if step % log_every == 0 or step == steps - 1 or scale != scale_before:
            text = f"step {step:3d}: loss {losses[-1]:.4f} (unscaled)"
            if scaler.is_enabled():
                text += f", scale {scale_before:g}, scaled loss {losses[-1] * scale_before:,.1f}"
            if scale < scale_before:
                text += f"; inf/NaN gradients: step skipped, scale backed off to {scale:g}"
            elif scale > scale_before:
                text += f"; {growth_interval} finite steps: scale grows to {scale:g}"
            print(text)
    print(
        f"master weights stay {model[0].weight.dtype}; under autocast Linear computes in {probe.dtype}"
    )
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--init-scale", type=float, default=2.0**16, help="GradScaler's initial scale"
    )
    parser.add_argument("--smoke", action="store_true", help="30 steps (the CI smoke test)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = 30
    log_every = max(1, args.steps // 10)
    print(
        f"=== autocast to {args.dtype}"
        + (" with GradScaler ===" if args.dtype == "float16" else " ===")
    )
    mixed = train(
        getattr(jnp, args.dtype), args.steps, args.batch_size, args.lr, args.init_scale, log_every
    )
    print("=== float32 reference ===")
    full = train(None, args.steps, args.batch_size, args.lr, args.init_scale, args.steps)
    gap = float(np.abs(np.asarray(mixed) - np.asarray(full)).max())
    print(
        f"final loss: {args.dtype} {mixed[-1]:.4f}, float32 {full[-1]:.4f} (first {mixed[0]:.4f}); "
        f"the loss curves differ by at most {gap:.1e}"
    )


if __name__ == "__main__":
    main()
