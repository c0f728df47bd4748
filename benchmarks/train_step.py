"""Training-step benchmark: jaxmodule vs raw JAX, Flax NNX, Equinox and PyTorch eager.

    bash scripts/setup.sh bench && .venv/bin/python benchmarks/train_step.py [--quick]
    .venv/bin/python benchmarks/train_step.py --impls raw_jax,jaxmodule --opts sgd,adam,...
    .venv/bin/python benchmarks/train_step.py --hlo [--opts ...] [--workloads ...]

Every (workload, implementation) runs in its own process (clean compile caches, own peak
memory). Per step: call, then block on the loss ("sync"); the table shows the median over the
timed steps and its ratio to raw JAX measured in the same run, the mean per step when steps are
dispatched back to back and synchronised once at the end ("async"), the first call (trace +
compile) and the peak resident memory added by building and training the model. Each row is run
`--repeat` times (processes interleaved across implementations) and every column is the median
over the repeats: on a noisy 2-core machine single processes differ by 10-30%.

"paired" (jaxmodule rows): raw JAX and jaxmodule built in one process, their steps alternated one
by one (who goes first rotates too), median step time of jaxmodule over raw JAX's; twice: against
raw JAX with optax's cross-entropy (batch mean, what a JAX user writes) and against raw JAX with
torch's `F.cross_entropy` semantics (ignore_index -100 masked, mean over the rest: the loss the
jaxmodule step computes), which isolates what is not the loss (the optimizer, the dispatch). Machine
drift hits both equally, so this is the most precise ratio the machine gives (raw JAX against a
second raw JAX measures 0.99-1.05x this way on the CNN).

`--opts`: the optimizer axis (`workloads.OPTIMIZERS`; default SGD with momentum): raw JAX uses
the optax equivalent, jaxmodule the `jaxmodule.optim` class; Flax, Equinox and torch rows run
SGD with momentum only. `--hlo`: no timing; per (workload, optimizer), the compiled programs of
raw JAX and jaxmodule side by side: kernels (top-level instructions of the entry computation
that run code: fusions, dots, convolutions, ...), copies and arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workloads import OPTIMIZERS, WORKLOADS  # noqa: E402

IMPLS = ["raw_jax", "jaxmodule", "jaxmodule_captured", "nnx", "equinox", "torch"]
JAXMODULE = ("jaxmodule", "jaxmodule_captured")  # model passed as arguments / captured
STEPS = {"mlp_tiny": 400, "mlp_784": 60, "cnn": 8, "stack64": 150, "mlp_bn_dropout": 60}
DEFAULT_OPT = "sgd_momentum"
WITH_OPTS = ("raw_jax", *JAXMODULE)  # the implementations that take `opt=`


def _builder(impl: str, opt: str = DEFAULT_OPT):  # noqa: ANN202
    import functools

    if impl in JAXMODULE:
        from workloads import build_jaxmodule

        return functools.partial(build_jaxmodule, captured=impl == "jaxmodule_captured", opt=opt)
    if impl == "raw_jax":
        from workloads import build_raw

        return functools.partial(build_raw, opt=opt)
    if opt != DEFAULT_OPT:
        raise ValueError(f"{impl} runs only {DEFAULT_OPT}")
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


def run_one(impl: str, workload: str, steps: int, opt: str = DEFAULT_OPT) -> dict:
    if impl == "torch":
        import torch  # noqa: F401
    else:
        import jax  # noqa: F401
    base = _rss_mb()
    build = _builder(impl, opt)
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
    return {
        "median_us": statistics.median(times) * 1e6,
        "async_us": async_s * 1e6,
        "compile_s": compile_s,
        "peak_mb": peak - base,
    }


def run_paired(workload: str, steps: int, impl: str = "jaxmodule", opt: str = DEFAULT_OPT) -> dict:
    from workloads import build_raw

    impls = {
        "raw": build_raw(workload, opt=opt),
        "raw_torch_loss": build_raw(workload, opt=opt, loss="torch"),
        "jaxmodule": _builder(impl, opt)(workload),
    }
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(3):
        for step, batch in impls.values():
            _sync(step(*batch))
    order = list(impls)
    for _ in range(steps):
        order = order[1:] + order[:1]  # rotate who goes first: no position bias
        for k in order:
            step, batch = impls[k]
            t = time.perf_counter()
            _sync(step(*batch))
            times[k].append(time.perf_counter() - t)
    jm = statistics.median(times["jaxmodule"])
    return {
        "ratio": jm / statistics.median(times["raw"]),
        "ratio_torch_loss": jm / statistics.median(times["raw_torch_loss"]),
    }


def _subprocess(args: list[str]) -> dict | str:
    """Run this script with `args` in a fresh process: its JSON result, or the error line."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        return proc.stderr.strip().splitlines()[-1][:80]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hlo_counts(text: str) -> dict[str, int]:
    """Kernels, copies and arguments of a compiled HLO module's entry computation."""
    entry = text[text.index("\nENTRY ") :]
    entry = entry[: entry.index("\n}")]
    free = ("parameter", "tuple", "get-tuple-element", "constant", "bitcast")
    ops = [m.group(1) for m in re.finditer(r"^\s*(?:ROOT )?%\S+ = .*? ([\w-]+)\(", entry, re.M)]
    return {
        "kernels": sum(op not in free for op in ops),
        "copies": sum(op == "copy" for op in ops) + text.count("copy_fusion"),
        "args": ops.count("parameter"),
    }


def run_hlo(workloads: list[str], opts: list[str]) -> None:
    """Print the kernel/copy/argument counts of raw JAX's and jaxmodule's compiled programs."""
    print(
        "| workload | optimizer | kernels raw / jaxmodule | copies raw / jaxmodule | arguments raw / jaxmodule |"
    )
    print("|---|---|---|---|---|")
    for wl in workloads:
        for opt in opts:
            counts = []
            for impl in ("raw_jax", "jaxmodule"):
                step, batch = _builder(impl, opt)(wl)
                _sync(step(*batch))
                counts.append(hlo_counts(step.lower().compile().as_text()))
            cols = " | ".join(
                f"{counts[0][k]} / {counts[1][k]}" for k in ("kernels", "copies", "args")
            )
            print(f"| {WORKLOADS[wl][3]} | {opt} | {cols} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=2, metavar=("IMPL", "WORKLOAD"))
    ap.add_argument("--steps", type=int)
    ap.add_argument("--quick", action="store_true", help="few steps (smoke run)")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--opts", default=DEFAULT_OPT, help=f"optimizers, of {','.join(OPTIMIZERS)}")
    ap.add_argument("--opt", default=DEFAULT_OPT, help=argparse.SUPPRESS)  # of --one / --pair
    ap.add_argument("--hlo", action="store_true", help="count kernels/copies/arguments, no timing")
    ap.add_argument("--repeat", type=int, default=3, help="processes per row (median reported)")
    ap.add_argument("--pair", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        impl, wl = args.one
        print(json.dumps(run_one(impl, wl, args.steps or STEPS[wl], args.opt)))
        return
    if args.pair:
        impl, wl = args.pair
        print(json.dumps(run_paired(wl, args.steps or 4 * STEPS[wl], impl, args.opt)))
        return
    opts = args.opts.split(",")
    unknown = [o for o in opts if o not in OPTIMIZERS]
    if unknown:
        ap.error(f"--opts: unknown {unknown}, expected some of {list(OPTIMIZERS)}")
    if args.hlo:
        run_hlo(args.workloads.split(","), opts)
        return
    repeat = 1 if args.quick else args.repeat
    print(
        "| workload | optimizer | impl | median/step | ratio to raw JAX | paired (optax loss / torch loss) | async/step | first call | peak memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for wl in args.workloads.split(","):
        for opt in opts:
            _table_rows(
                wl,
                opt,
                [i for i in args.impls.split(",") if opt == DEFAULT_OPT or i in WITH_OPTS],
                5 if args.quick else STEPS[wl],
                repeat,
                args.quick,
            )


def _table_rows(wl: str, opt: str, impls: list[str], steps: int, repeat: int, quick: bool) -> None:
    """Time one (workload, optimizer) for every implementation and print its rows."""
    runs: dict[str, list[dict]] = {impl: [] for impl in impls}
    failed: dict[str, str] = {}
    for _ in range(repeat):
        for impl in impls:
            r = _subprocess(["--one", impl, wl, "--steps", str(steps), "--opt", opt])
            if isinstance(r, str):
                failed[impl] = r
            else:
                runs[impl].append(r)
    paired: dict[str, tuple[float, float]] = {}
    for jm in (i for i in JAXMODULE if i in impls and "raw_jax" in impls):
        r = _subprocess(
            ["--pair", jm, wl, "--steps", str(steps if quick else 4 * steps), "--opt", opt]
        )
        if not isinstance(r, str):
            paired[jm] = (r["ratio"], r["ratio_torch_loss"])
    results = {
        impl: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        for impl, rs in runs.items()
        if rs and impl not in failed
    }
    raw = results.get("raw_jax")
    for impl in impls:
        if impl in failed:
            print(f"| {WORKLOADS[wl][3]} | {opt} | {impl} | failed: {failed[impl]} | | | | | |")
            continue
        r = results[impl]
        ratio = f"{r['median_us'] / raw['median_us']:.2f}x" if raw else "n/a"
        pair = f"{paired[impl][0]:.2f}x / {paired[impl][1]:.2f}x" if impl in paired else ""
        print(
            f"| {WORKLOADS[wl][3]} | {opt} | {impl} | {_fmt(r['median_us'])} | {ratio} | {pair} | "
            f"{_fmt(r['async_us'])} | {r['compile_s'] * 1e3:.0f} ms | {r['peak_mb']:.0f} MB |",
            flush=True,
        )


def _fmt(us: float) -> str:
    return f"{us:.0f} us" if us < 10_000 else f"{us / 1e3:.1f} ms"


if __name__ == "__main__":
    main()
