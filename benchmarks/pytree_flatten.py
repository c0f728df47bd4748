"""Pytree flatten/unflatten cost of a jaxmodule model vs a raw dict, Equinox and Flax NNX.

    .venv/bin/python benchmarks/pytree_flatten.py

Model: 64 x Linear(64, 64) (128 leaves), and a 100-layer version. Times are medians of
`jax.tree_util.tree_flatten` + `tree_unflatten` round trips, also per leaf. jaxmodule unflattens
lazily (submodules and cells are built on first use), so the last column adds that first use (a
round trip whose result is then used); the other libraries build everything eagerly, and their
last column is their round trip. Equinox and NNX rows appear when those packages are installed
(`bash scripts/setup.sh bench`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def _median_us(fn: Callable[[], Any], n: int = 300) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def _round_trip(tree: Any) -> Callable[[], Any]:
    def run() -> Any:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        return jax.tree_util.tree_unflatten(treedef, leaves)

    return run


def _round_trip_used(tree: Any) -> Callable[[], Any]:
    from jaxmodule.nn import Module
    from jaxmodule.nn.modules._pytree import materialize

    if not isinstance(tree, Module):
        return _round_trip(tree)

    def run() -> Any:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        out = jax.tree_util.tree_unflatten(treedef, leaves)
        materialize(out)
        return out

    return run


def _flatten_only(tree: Any) -> Callable[[], Any]:
    return lambda: jax.tree_util.tree_flatten(tree)


def models(n_layers: int) -> dict[str, Any]:
    from jaxmodule import nn

    out: dict[str, Any] = {
        "raw dict": {
            f"l{i}": {"weight": jnp.zeros((64, 64)), "bias": jnp.zeros(64)} for i in range(n_layers)
        },
        "jaxmodule": nn.Sequential(*[nn.Linear(64, 64) for _ in range(n_layers)]),
    }
    try:
        import equinox as eqx

        keys = jax.random.split(jax.random.PRNGKey(0), n_layers)
        out["equinox"] = [eqx.nn.Linear(64, 64, key=k) for k in keys]
    except ImportError:
        pass
    try:
        from flax import nnx

        rngs = nnx.Rngs(0)
        out["flax nnx"] = nnx.List([nnx.Linear(64, 64, rngs=rngs) for _ in range(n_layers)])
    except ImportError:
        pass
    return out


def main() -> None:
    print(
        "| model | leaves | flatten | flatten+unflatten | per leaf | ratio to raw dict | "
        "round trip + first use | ratio to raw dict |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n_layers in (64, 100):
        results = {}
        for name, tree in models(n_layers).items():
            n_leaves = len(jax.tree_util.tree_leaves(tree))
            results[name] = (
                n_leaves,
                _median_us(_flatten_only(tree)),
                _median_us(_round_trip(tree)),
                _median_us(_round_trip_used(tree)),
            )
        raw = results["raw dict"][2]
        for name, (n_leaves, flat, rt, used) in results.items():
            print(
                f"| {name} ({n_layers} Linear) | {n_leaves} | {flat:.1f} us | {rt:.1f} us | "
                f"{rt / n_leaves:.2f} us | {rt / raw:.2f}x | {used:.1f} us | {used / raw:.2f}x |"
            )


if __name__ == "__main__":
    main()
