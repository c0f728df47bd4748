"""Flax NNX implementations of the workloads (idiomatic `nnx.jit` + `nnx.Optimizer`)."""

from __future__ import annotations

from typing import Any

from workloads import LR, MOMENTUM, WORKLOADS, data


def build_nnx(name: str) -> tuple[Any, tuple]:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    kind, s, _, _ = WORKLOADS[name]
    rngs = nnx.Rngs(0, dropout=1)

    class Net(nnx.Module):
        def __init__(self) -> None:
            if kind == "mlp":
                self.layers = nnx.List(
                    [
                        nnx.Linear(s[0], s[1], rngs=rngs),
                        nnx.Linear(s[1], s[2], rngs=rngs),
                        nnx.Linear(s[2], s[3], rngs=rngs),
                    ]
                )
            elif kind == "cnn":
                self.c1 = nnx.Conv(s[0], 16, (3, 3), padding=1, rngs=rngs)
                self.c2 = nnx.Conv(16, 32, (3, 3), padding=1, rngs=rngs)
                self.l1 = nnx.Linear(32 * 14 * 14, 128, rngs=rngs)
                self.l2 = nnx.Linear(128, s[2], rngs=rngs)
            elif kind == "stack":
                self.layers = nnx.List([nnx.Linear(s[0], s[1], rngs=rngs) for _ in range(64)])
            else:
                self.l1 = nnx.Linear(s[0], s[1], rngs=rngs)
                self.bn = nnx.BatchNorm(s[1], momentum=0.9, rngs=rngs)
                self.drop = nnx.Dropout(0.1, rngs=rngs)
                self.l2 = nnx.Linear(s[1], s[2], rngs=rngs)

        def __call__(self, x: Any) -> Any:
            if kind == "mlp":
                x = jax.nn.relu(self.layers[0](x))
                x = jax.nn.relu(self.layers[1](x))
                return self.layers[2](x)
            if kind == "cnn":
                x = jnp.transpose(x, (0, 2, 3, 1))  # NNX convs are NHWC
                x = jax.nn.relu(self.c1(x))
                x = jax.nn.relu(self.c2(x))
                x = nnx.max_pool(x, (2, 2), (2, 2))
                x = jax.nn.relu(self.l1(x.reshape(x.shape[0], -1)))
                return self.l2(x)
            if kind == "stack":
                for layer in self.layers:
                    x = jnp.tanh(layer(x))
                return x
            return self.l2(self.drop(jax.nn.relu(self.bn(self.l1(x)))))

    model = Net()
    opt = nnx.Optimizer(model, optax.sgd(LR, momentum=MOMENTUM), wrt=nnx.Param)

    @nnx.jit
    def step(model: Any, opt: Any, x: Any, y: Any) -> Any:
        def loss_fn(m: Any) -> Any:
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    x, y = data(name)
    return (lambda x, y: step(model, opt, x, y)), (jnp.asarray(x), jnp.asarray(y))
