"""A per-batch LR scheduler inside the compiled step: jaxmodule against raw JAX, paired.

    .venv/bin/python benchmarks/scheduler_step.py [--steps 1500] [--opts sgd_momentum,adam]

torch code steps a per-batch scheduler (OneCycleLR) right after `optimizer.step()`, inside the
training step. The learning rate then changes on every call. Three steps on the tiny MLP
(`workloads.py`, MLP 32-64-64-10, batch 32), alternated call by call in one process (who goes
first rotates), median time per synced step:

- raw JAX: optax with the schedule as a function of its step count (`optax.cosine_onecycle_schedule`),
  computed inside the jitted program, what a JAX user writes;
- jaxmodule: the README's compiled step, no scheduler;
- jaxmodule + OneCycleLR: the same step with `sched.step()` after `opt.step()`. The new learning
  rate is set on the param group after each call (the deferred host call of the program); the
  next call packs the changed options and stays on the generated fast path.

Ratios are to raw JAX. This is a measurement, not a test; the numbers are in `RESULTS.md`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import OPTIMIZERS, build_raw, data  # noqa: E402

WORKLOAD = "mlp_tiny"
TOTAL = 10**7  # a schedule longer than any run: OneCycleLR refuses to step past its end


def build_scheduled(opt: str, sched: bool) -> tuple[Any, tuple]:
    """The README-style compiled step, with a OneCycleLR stepped inside it when `sched`."""
    import jax.numpy as jnp
    import jaxmodule
    from jaxmodule import nn, optim
    from jaxmodule.nn import functional as F

    model = nn.Sequential(
        nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )
    cls, kwargs, _ = OPTIMIZERS[opt]
    optimizer = getattr(optim, cls)(model.parameters(), **kwargs)
    scheduler = (
        optim.lr_scheduler.OneCycleLR(optimizer, max_lr=kwargs["lr"], total_steps=TOTAL)
        if sched
        else None
    )

    @jaxmodule.compile
    def step(x: Any, y: Any) -> Any:
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda: F.cross_entropy(model(x), y))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return loss

    x, y = data(WORKLOAD)
    return step, (jnp.asarray(x), jnp.asarray(y))


def build_raw_scheduled(opt: str) -> tuple[Any, tuple]:
    """Raw JAX with the optax schedule of the same shape (count-based, inside the program)."""
    import optax

    kwargs = OPTIMIZERS[opt][1]
    schedule = optax.cosine_onecycle_schedule(TOTAL, kwargs["lr"])
    lr_of = {"sgd_momentum": lambda s: optax.sgd(s, momentum=0.9), "adam": optax.adam}
    if opt not in lr_of:
        raise SystemExit(f"--opts: {opt} has no scheduled raw-JAX form here (sgd_momentum, adam)")
    return build_raw(WORKLOAD, opt=opt, tx=lr_of[opt](schedule))


def paired(opt: str, steps: int) -> dict[str, float]:
    impls = {
        "raw JAX + optax schedule": build_raw_scheduled(opt),
        "jaxmodule": build_scheduled(opt, sched=False),
        "jaxmodule + OneCycleLR": build_scheduled(opt, sched=True),
    }
    for _ in range(3):
        for f, b in impls.values():
            f(*b).block_until_ready()
    times: dict[str, list[float]] = {k: [] for k in impls}
    order = list(impls)
    for _ in range(steps):
        order = order[1:] + order[:1]
        for k in order:
            f, b = impls[k]
            t = time.perf_counter()
            f(*b).block_until_ready()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--opts", default="sgd_momentum,adam")
    args = ap.parse_args()
    print("| optimizer | step | median/step | ratio to raw JAX |")
    print("|---|---|---|---|")
    for opt in args.opts.split(","):
        medians = paired(opt, args.steps)
        raw = medians["raw JAX + optax schedule"]
        for k, m in medians.items():
            print(f"| {opt} | {k} | {m * 1e6:.1f} us | {m / raw:.2f}x |")


if __name__ == "__main__":
    main()
