"""Training-step benchmark: jaxmodule vs raw JAX, Flax NNX, Equinox and PyTorch eager.

    bash scripts/setup.sh bench && .venv/bin/python benchmarks/train_step.py [--quick]

Every (workload, implementation) runs in its own process (clean compile caches, own peak
memory). Per step: call, then block on the loss ("sync"); the table shows the median over the
timed steps and its ratio to raw JAX measured in the same run, the mean per step when steps are
dispatched back to back and synchronised once at the end ("async"), the first call (trace +
compile) and the peak resident memory added by building and training the model. Each row is run
`--repeat` times (processes interleaved across implementations) and every column is the median
over the repeats: on a noisy 2-core machine single processes differ by 10-30%.

"paired" (jaxmodule rows): raw JAX and jaxmodule built in one process, their steps alternated one
by one (who goes first alternates too), median step time of jaxmodule over raw JAX's. Machine
drift hits both equally, so this is the most precise ratio the machine gives (raw JAX against a
second raw JAX measures 0.99-1.05x this way on the CNN).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workloads import WORKLOADS  # noqa: E402

IMPLS = ["raw_jax", "jaxmodule", "jaxmodule_captured", "nnx", "equinox", "torch"]
JAXMODULE = ("jaxmodule", "jaxmodule_captured")  # model passed as arguments / captured
STEPS = {"mlp_tiny": 400, "mlp_784": 60, "cnn": 8, "stack64": 150, "mlp_bn_dropout": 60}


def _builder(impl: str):  # noqa: ANN202
    if impl in JAXMODULE:
        import functools

        from workloads import build_jaxmodule
        return functools.partial(build_jaxmodule, captured=impl == "jaxmodule_captured")
    if impl == "raw_jax":
        from workloads import build_raw
        return build_raw
    if impl == "nnx":
        from impl_flax import build_nnx
        return build_nnx
    if impl == "equinox":
        from impl_equinox import build_equinox
        return build_equinox
    from impl_torch import build_torch
    return build_torch


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _sync(x: object) -> None:
    if hasattr(x, "block_until_ready"):
        x.block_until_ready()


def run_one(impl: str, workload: str, steps: int) -> dict:
    if impl == "torch":
        import torch  # noqa: F401
    else:
        import jax  # noqa: F401
    base = _rss_mb()
    build = _builder(impl)
    step, batch = build(workload)
    t0 = time.perf_counter()
    _sync(step(*batch))
    compile_s = time.perf_counter() - t0
    for _ in range(3):
        _sync(step(*batch))
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        _sync(step(*batch))
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    out = None
    for _ in range(steps):
        out = step(*batch)
    _sync(out)
    async_s = (time.perf_counter() - t) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_us": statistics.median(times) * 1e6, "async_us": async_s * 1e6,
            "compile_s": compile_s, "peak_mb": peak - base}


def run_paired(workload: str, steps: int, impl: str = "jaxmodule") -> dict:
    from workloads import build_raw

    impls = {"raw": build_raw(workload), "jaxmodule": _builder(impl)(workload)}
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(3):
        for step, batch in impls.values():
            _sync(step(*batch))
    order = list(impls)
    for _ in range(steps):
        order.reverse()  # alternate who goes first: no position bias
        for k in order:
            step, batch = impls[k]
            t = time.perf_counter()
            _sync(step(*batch))
            times[k].append(time.perf_counter() - t)
    return {"ratio": statistics.median(times["jaxmodule"]) / statistics.median(times["raw"])}


def _subprocess(args: list[str]) -> dict | str:
    """Run this script with `args` in a fresh process: its JSON result, or the error line."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return proc.stderr.strip().splitlines()[-1][:80]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=2, metavar=("IMPL", "WORKLOAD"))
    ap.add_argument("--steps", type=int)
    ap.add_argument("--quick", action="store_true", help="few steps (smoke run)")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--repeat", type=int, default=3, help="processes per row (median reported)")
    ap.add_argument("--pair", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        impl, wl = args.one
        print(json.dumps(run_one(impl, wl, args.steps or STEPS[wl])))
        return
    if args.pair:
        impl, wl = args.pair
        print(json.dumps(run_paired(wl, args.steps or 4 * STEPS[wl], impl)))
        return
    impls = args.impls.split(",")
    repeat = 1 if args.quick else args.repeat
    print("| workload | impl | median/step | ratio to raw JAX | paired | async/step | first call | peak memory |")
    print("|---|---|---|---|---|---|---|---|")
    for wl in args.workloads.split(","):
        steps = 5 if args.quick else STEPS[wl]
        runs: dict[str, list[dict]] = {impl: [] for impl in impls}
        failed: dict[str, str] = {}
        for _ in range(repeat):
            for impl in impls:
                r = _subprocess(["--one", impl, wl, "--steps", str(steps)])
                if isinstance(r, str):
                    failed[impl] = r
                else:
                    runs[impl].append(r)
        paired: dict[str, float] = {}
        for jm in (i for i in JAXMODULE if i in impls and "raw_jax" in impls):
            r = _subprocess(["--pair", jm, wl, "--steps", str(steps if args.quick else 4 * steps)])
            if not isinstance(r, str):
                paired[jm] = r["ratio"]
        results = {impl: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                   for impl, rs in runs.items() if rs and impl not in failed}
        raw = results.get("raw_jax")
        for impl in impls:
            if impl in failed:
                print(f"| {WORKLOADS[wl][3]} | {impl} | failed: {failed[impl]} | | | | | |")
                continue
            r = results[impl]
            ratio = f"{r['median_us'] / raw['median_us']:.2f}x" if raw else "n/a"
            pair = f"{paired[impl]:.2f}x" if impl in paired else ""
            print(f"| {WORKLOADS[wl][3]} | {impl} | {_fmt(r['median_us'])} | {ratio} | {pair} | "
                  f"{_fmt(r['async_us'])} | {r['compile_s'] * 1e3:.0f} ms | {r['peak_mb']:.0f} MB |", flush=True)


def _fmt(us: float) -> str:
    return f"{us:.0f} us" if us < 10_000 else f"{us / 1e3:.1f} ms"


if __name__ == "__main__":
    main()
