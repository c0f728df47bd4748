"""Warm restarts: the first compiled training step with an empty vs a filled XLA cache.

    .venv/bin/python benchmarks/warm_start.py [--repeat 3]

Each repeat makes a fresh temporary `JAXMODULE_CACHE_DIR` and runs one child process twice in it
(`JAX_COMPILATION_CACHE_DIR` removed, so jaxmodule's default cache is the one in use): the first
("cold") compiles and writes the cache, the second ("warm") reads it. The child builds the model
of `examples/train_classifier.py` (a small CNN with BatchNorm and Dropout, Adam) and times its
first `jaxmodule.compile`d training step, trace + compile + run, blocking on the loss. It also
reports the whole child's wall time and the persistent-cache hits and writes JAX recorded. The
table shows the medians over the repeats and warm / cold.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child() -> None:
    """Run one first training step and print its timings as one JSON line."""
    start = time.perf_counter()
    import jax

    events: list[str] = []
    jax.monitoring.register_event_listener(lambda name, **_: events.append(name))
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import jax.numpy as jnp
    import jaxmodule
    from jaxmodule import nn, optim

    from train_classifier import DigitNet, make_digits

    jaxmodule.manual_seed(0)
    model = DigitNet()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)

    @jaxmodule.compile
    def train_step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda m: criterion(m(x), y), model)
        optimizer.step()
        return loss

    images, labels = make_digits(64, seed=0)
    x, y = jnp.asarray(images), jnp.asarray(labels)
    t0 = time.perf_counter()
    float(train_step(model, optimizer, x, y))
    first = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "first_step_s": first,
                "process_s": time.perf_counter() - start,
                "hits": events.count("/jax/compilation_cache/cache_hits"),
                "writes": events.count("/jax/compilation_cache/cache_misses"),
            }
        )
    )


def run_child(cache_dir: str) -> dict[str, float]:
    """One child process with `cache_dir` as jaxmodule's cache; its JSON report."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["JAXMODULE_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, __file__, "--child"], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child()
        return
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs["cold"].append(run_child(tmp))
            runs["warm"].append(run_child(tmp))
    med = {
        kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for kind, rs in runs.items()
    }
    print("| run | first step | whole process | cache hits | cache writes |")
    print("|---|---|---|---|---|")
    for kind, m in med.items():
        print(
            f"| {kind} | {m['first_step_s'] * 1e3:.0f} ms | {m['process_s']:.2f} s "
            f"| {m['hits']:.0f} | {m['writes']:.0f} |"
        )
    ratio = {key: med["warm"][key] / med["cold"][key] for key in ("first_step_s", "process_s")}
    print(f"| warm / cold | {ratio['first_step_s']:.2f}x | {ratio['process_s']:.2f}x | | |")


if __name__ == "__main__":
    main()
