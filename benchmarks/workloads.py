"""The five training-step workloads, written once per implementation.

Each builder returns `(step, batch)` where `step(*batch)` runs one training step (by default SGD
with momentum 0.9, lr 0.01; `opt=` picks another entry of `OPTIMIZERS`; cross-entropy) and
returns the loss as an array (not synchronised). Shapes: see `WORKLOADS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# name: (kind, sizes, batch, description)
WORKLOADS: dict[str, tuple[str, tuple, int, str]] = {
    "mlp_tiny": ("mlp", (32, 64, 64, 10), 32, "MLP 32-64-64-10, batch 32"),
    "mlp_784": ("mlp", (784, 512, 512, 10), 128, "MLP 784-512-512-10, batch 128"),
    "cnn": ("cnn", (1, 28, 10), 64, "CNN (2 conv3x3, maxpool, 2 linear), batch 64"),
    "stack64": ("stack", (64, 64), 16, "64 x Linear(64,64)+tanh, batch 16"),
    "mlp_bn_dropout": ("bn", (784, 512, 10), 128, "MLP + BatchNorm1d + Dropout (train), batch 128"),
}
LR, MOMENTUM = 0.01, 0.9

# name: (jaxmodule.optim class, its keyword arguments, the optax transformation with torch's
# numerics and defaults). Every jaxmodule optimizer with an optax equivalent that computes the
# same update (optax's rmsprop with eps outside the root, as torch; adagrad's accumulator from 0).
OPTIMIZERS: dict[str, tuple[str, dict, Any]] = {
    "sgd": ("SGD", {"lr": LR}, lambda optax: optax.sgd(LR)),
    "sgd_momentum": (
        "SGD",
        {"lr": LR, "momentum": MOMENTUM},
        lambda optax: optax.sgd(LR, momentum=MOMENTUM),
    ),
    "sgd_nesterov": (
        "SGD",
        {"lr": LR, "momentum": MOMENTUM, "nesterov": True},
        lambda optax: optax.sgd(LR, momentum=MOMENTUM, nesterov=True),
    ),
    "adam": ("Adam", {"lr": 1e-3}, lambda optax: optax.adam(1e-3)),
    "adamw": ("AdamW", {"lr": 1e-3}, lambda optax: optax.adamw(1e-3, weight_decay=1e-2)),
    "adamax": ("Adamax", {"lr": 2e-3}, lambda optax: optax.adamax(2e-3)),
    "rmsprop": (
        "RMSprop",
        {"lr": 1e-2},
        lambda optax: optax.rmsprop(1e-2, decay=0.99, eps=1e-8, eps_in_sqrt=False),
    ),
    "adagrad": (
        "Adagrad",
        {"lr": 1e-2},
        lambda optax: optax.adagrad(1e-2, initial_accumulator_value=0.0, eps=1e-10),
    ),
    "adadelta": ("Adadelta", {"lr": 1.0}, lambda optax: optax.adadelta(1.0, rho=0.9, eps=1e-6)),
    "lion": ("Lion", {"lr": 1e-4}, lambda optax: optax.lion(1e-4, weight_decay=0.0)),
    # optax's NAdam has no momentum-decay schedule (torch's psi=0.004): the closest optax chain,
    # the same kind and amount of work per parameter, slightly different numbers
    "nadam": ("NAdam", {"lr": 2e-3}, lambda optax: optax.nadam(2e-3)),
    "radam": ("RAdam", {"lr": 1e-3}, lambda optax: optax.radam(1e-3)),
}


def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    kind, sizes, batch, _ = WORKLOADS[name]
    rng = np.random.default_rng(0)
    if kind == "cnn":
        x = rng.standard_normal((batch, sizes[0], sizes[1], sizes[1]), dtype=np.float32)
        classes = sizes[2]
    else:
        x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
        classes = sizes[-1]
    y = rng.integers(0, classes, size=(batch,)).astype(np.int32)
    return x, y


# ---- jaxmodule --------------------------------------------------------------------------------
def build_jaxmodule(
    name: str, captured: bool = False, opt: str = "sgd_momentum"
) -> tuple[Any, tuple]:
    """The README's compiled step. `captured=True`: written as a torch script is, with the model
    and optimizer as closure variables and `jaxmodule.backward(lambda: ...)` (torch's
    `loss.backward()`); otherwise passed as arguments."""
    import jax.numpy as jnp
    import jaxmodule
    from jaxmodule import nn, optim
    from jaxmodule.nn import functional as F

    kind, s, _, _ = WORKLOADS[name]
    if kind == "mlp":
        model = nn.Sequential(
            nn.Linear(s[0], s[1]),
            nn.ReLU(),
            nn.Linear(s[1], s[2]),
            nn.ReLU(),
            nn.Linear(s[2], s[3]),
        )
    elif kind == "cnn":
        model = nn.Sequential(
            nn.Conv2d(s[0], 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 14 * 14, 128),
            nn.ReLU(),
            nn.Linear(128, s[2]),
        )
    elif kind == "stack":
        layers = []
        for _ in range(64):
            layers += [nn.Linear(s[0], s[1]), nn.Tanh()]
        model = nn.Sequential(*layers)
    else:
        model = nn.Sequential(
            nn.Linear(s[0], s[1]),
            nn.BatchNorm1d(s[1]),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(s[1], s[2]),
        )
    cls, kwargs, _ = OPTIMIZERS[opt]
    opt = getattr(optim, cls)(model.parameters(), **kwargs)
    x, y = data(name)

    if captured:

        @jaxmodule.compile
        def train_step(x, y):
            opt.zero_grad()
            loss = jaxmodule.backward(lambda: F.cross_entropy(model(x), y))
            opt.step()
            return loss

        batch = (jnp.asarray(x), jnp.asarray(y))
        train_step.lower = lambda: _lower_jaxmodule(train_step, (), batch)
        return train_step, batch

    @jaxmodule.compile
    def step(model, opt, x, y):
        opt.zero_grad()
        loss = jaxmodule.backward(lambda m: F.cross_entropy(m(x), y), model)
        opt.step()
        return loss

    def run(x: Any, y: Any) -> Any:
        return step(model, opt, x, y)

    batch = (jnp.asarray(x), jnp.asarray(y))
    run.lower = lambda: _lower_jaxmodule(step, (model, opt), batch)
    return run, batch


def _lower_jaxmodule(compiled: Any, state_args: tuple, batch: tuple) -> Any:
    """The jitted program of a compiled step's current plan, lowered for its next call's
    arguments (the benchmark's `--hlo` counts read its compiled text)."""
    entry = compiled._entries[0]
    leaves = entry.program.states.gather(entry.layout.states)
    return entry.program.jitted.lower(*entry.call_args(leaves, (*state_args, *batch), {}))


# ---- raw JAX ----------------------------------------------------------------------------------
def build_raw(
    name: str, opt: str = "sgd_momentum", loss: str = "optax", tx: Any = None
) -> tuple[Any, tuple]:
    """The raw-JAX step. `loss="optax"`: optax's integer-label cross-entropy, batch mean (what a
    JAX user writes); `loss="torch"`: torch's `F.cross_entropy` semantics written in JAX (targets
    equal to ignore_index -100 masked out, mean over the rest), the same computation as the
    jaxmodule step's loss, so that a paired ratio against it isolates everything but the loss.
    `tx`: an optax transformation instead of `opt`'s (a scheduled one)."""
    import jax
    import jax.numpy as jnp
    import optax

    kind, s, _, _ = WORKLOADS[name]
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 300))

    def linear(i: int, o: int) -> dict:
        b = 1 / np.sqrt(i)
        return {
            "w": jax.random.uniform(next(keys), (o, i), minval=-b, maxval=b),
            "b": jax.random.uniform(next(keys), (o,), minval=-b, maxval=b),
        }

    def lin(p: dict, x: Any) -> Any:
        return x @ p["w"].T + p["b"]

    state: dict = {}
    if kind == "mlp":
        params = [linear(s[0], s[1]), linear(s[1], s[2]), linear(s[2], s[3])]

        def forward(p: Any, st: Any, x: Any, key: Any) -> Any:
            x = jax.nn.relu(lin(p[0], x))
            x = jax.nn.relu(lin(p[1], x))
            return lin(p[2], x), st
    elif kind == "cnn":

        def conv(i: int, o: int) -> dict:
            b = 1 / np.sqrt(i * 9)
            return {
                "w": jax.random.uniform(next(keys), (o, i, 3, 3), minval=-b, maxval=b),
                "b": jax.random.uniform(next(keys), (o,), minval=-b, maxval=b),
            }

        params = [conv(s[0], 16), conv(16, 32), linear(32 * 14 * 14, 128), linear(128, s[2])]

        def c2d(p: dict, x: Any) -> Any:
            y = jax.lax.conv_general_dilated(
                x, p["w"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW")
            )
            return y + p["b"][None, :, None, None]

        def forward(p: Any, st: Any, x: Any, key: Any) -> Any:
            x = jax.nn.relu(c2d(p[0], x))
            x = jax.nn.relu(c2d(p[1], x))
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
            x = x.reshape(x.shape[0], -1)
            x = jax.nn.relu(lin(p[2], x))
            return lin(p[3], x), st
    elif kind == "stack":
        params = [linear(s[0], s[1]) for _ in range(64)]

        def forward(p: Any, st: Any, x: Any, key: Any) -> Any:
            for layer in p:
                x = jnp.tanh(lin(layer, x))
            return x, st
    else:
        params = [
            linear(s[0], s[1]),
            {"g": jnp.ones(s[1]), "b": jnp.zeros(s[1])},
            linear(s[1], s[2]),
        ]
        state = {"mean": jnp.zeros(s[1]), "var": jnp.ones(s[1]), "n": jnp.zeros((), jnp.int32)}

        def forward(p: Any, st: Any, x: Any, key: Any) -> Any:
            h = lin(p[0], x)
            mean, var = h.mean(0), h.var(0)
            n = h.shape[0]
            st = {
                "mean": 0.9 * st["mean"] + 0.1 * mean,
                "var": 0.9 * st["var"] + 0.1 * var * n / (n - 1),
                "n": st["n"] + 1,
            }
            h = (h - mean) / jnp.sqrt(var + 1e-5) * p[1]["g"] + p[1]["b"]
            h = jax.nn.relu(h)
            keep = jax.random.bernoulli(key, 0.9, h.shape)
            h = jnp.where(keep, h / 0.9, 0)
            return lin(p[2], h), st

    tx = OPTIMIZERS[opt][2](optax) if tx is None else tx
    opt_state = tx.init(params)

    def loss_fn(p: Any, st: Any, x: Any, y: Any, key: Any) -> Any:
        logits, st = forward(p, st, x, key)
        if loss == "torch":
            valid = y != -100
            nll = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, y, 0))
            return jnp.where(valid, nll, 0.0).sum() / valid.sum(), st
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), st

    def _step(p: Any, o: Any, st: Any, key: Any, x: Any, y: Any) -> Any:
        sub = None
        if kind == "bn":  # only the dropout workload draws random numbers
            key, sub = jax.random.split(key)
        (loss, st), g = jax.value_and_grad(loss_fn, has_aux=True)(p, st, x, y, sub)
        updates, o = tx.update(g, o, p)
        return optax.apply_updates(p, updates), o, st, key, loss

    step_jit = jax.jit(_step, donate_argnums=(0, 1, 2, 3))
    box = {"p": params, "o": opt_state, "st": state, "key": jax.random.PRNGKey(1)}

    def step(x: Any, y: Any) -> Any:
        box["p"], box["o"], box["st"], box["key"], loss = step_jit(
            box["p"], box["o"], box["st"], box["key"], x, y
        )
        return loss

    x, y = data(name)
    batch = (jnp.asarray(x), jnp.asarray(y))
    step.lower = lambda: step_jit.lower(box["p"], box["o"], box["st"], box["key"], *batch)
    return step, batch
