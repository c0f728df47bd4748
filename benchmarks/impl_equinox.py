"""Equinox implementations of the workloads (idiomatic `eqx.filter_jit`)."""

from __future__ import annotations

from typing import Any

from workloads import LR, MOMENTUM, WORKLOADS, data


def build_equinox(name: str) -> tuple[Any, tuple]:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    kind, s, _, _ = WORKLOADS[name]
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 300))

    class Net(eqx.Module):
        layers: list
        bn: Any = None
        drop: Any = None

        def __call__(self, x: Any, state: Any, key: Any) -> Any:
            if kind == "mlp":
                x = jax.nn.relu(jax.vmap(self.layers[0])(x))
                x = jax.nn.relu(jax.vmap(self.layers[1])(x))
                return jax.vmap(self.layers[2])(x), state
            if kind == "cnn":
                x = jax.nn.relu(jax.vmap(self.layers[0])(x))
                x = jax.nn.relu(jax.vmap(self.layers[1])(x))
                x = jax.vmap(self.layers[2])(x)
                x = jax.nn.relu(jax.vmap(self.layers[3])(x.reshape(x.shape[0], -1)))
                return jax.vmap(self.layers[4])(x), state
            if kind == "stack":
                for layer in self.layers:
                    x = jnp.tanh(jax.vmap(layer)(x))
                return x, state
            h = jax.vmap(self.layers[0])(x)
            h, state = jax.vmap(self.bn, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(
                h, state
            )
            h = self.drop(jax.nn.relu(h), key=key)
            return jax.vmap(self.layers[1])(h), state

    if kind == "mlp":
        net, state = (
            Net(
                [
                    eqx.nn.Linear(s[0], s[1], key=next(keys)),
                    eqx.nn.Linear(s[1], s[2], key=next(keys)),
                    eqx.nn.Linear(s[2], s[3], key=next(keys)),
                ]
            ),
            None,
        )
    elif kind == "cnn":
        net, state = (
            Net(
                [
                    eqx.nn.Conv2d(s[0], 16, 3, padding=1, key=next(keys)),
                    eqx.nn.Conv2d(16, 32, 3, padding=1, key=next(keys)),
                    eqx.nn.MaxPool2d(2, 2),
                    eqx.nn.Linear(32 * 14 * 14, 128, key=next(keys)),
                    eqx.nn.Linear(128, s[2], key=next(keys)),
                ]
            ),
            None,
        )
    elif kind == "stack":
        net, state = Net([eqx.nn.Linear(s[0], s[1], key=next(keys)) for _ in range(64)]), None
    else:
        net, state = eqx.nn.make_with_state(Net)(
            [eqx.nn.Linear(s[0], s[1], key=next(keys)), eqx.nn.Linear(s[1], s[2], key=next(keys))],
            eqx.nn.BatchNorm(s[1], axis_name="batch", momentum=0.9, mode="batch"),
            eqx.nn.Dropout(0.1),
        )
    tx = optax.sgd(LR, momentum=MOMENTUM)
    opt_state = tx.init(eqx.filter(net, eqx.is_array))

    @eqx.filter_jit
    def step(net: Any, state: Any, opt_state: Any, key: Any, x: Any, y: Any) -> Any:
        key, sub = jax.random.split(key)

        def loss_fn(m: Any) -> Any:
            logits, st = m(x, state, sub)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), st

        (loss, st), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(net)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), st, opt_state, key, loss

    box = {"net": net, "st": state, "o": opt_state, "key": jax.random.PRNGKey(1)}

    def run(x: Any, y: Any) -> Any:
        box["net"], box["st"], box["o"], box["key"], loss = step(
            box["net"], box["st"], box["o"], box["key"], x, y
        )
        return loss

    x, y = data(name)
    return run, (jnp.asarray(x), jnp.asarray(y))
