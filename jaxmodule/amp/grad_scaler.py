"""`GradScaler`: dynamic loss scaling for float16 training. Mirrors `torch.amp.GradScaler`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .._stateful import Stateful
from .._swap import report

__all__ = ["GradScaler"]


class GradScaler(Stateful):
    """Scale the loss up, unscale gradients before the step, skip steps with inf/NaN gradients,
    and adapt the scale. Mirrors `torch.amp.GradScaler`; traceable, so it works inside
    `jaxmodule.compile` (pass the scaler as an argument of the step).

    >>> import jax.numpy as jnp, jaxmodule
    >>> from jaxmodule import nn, optim
    >>> model = nn.Linear(2, 1)
    >>> opt = optim.SGD(model.parameters(), lr=0.1)
    >>> scaler = jaxmodule.amp.GradScaler(init_scale=1024.0)
    >>> loss = jaxmodule.backward(lambda m: scaler.scale(m(jnp.ones((1, 2))).sum()), model)
    >>> scaler.step(opt); scaler.update()
    >>> float(scaler.get_scale())
    1024.0

    Difference from torch: `step` always runs the optimizer's math and then keeps the old
    parameters and state where gradients were not finite (a select, so no host sync).
    """

    def __init__(
        self,
        device: str = "cpu",
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ) -> None:
        if growth_factor <= 1.0:
            raise ValueError("The growth factor must be > 1.0.")
        if backoff_factor >= 1.0:
            raise ValueError("The backoff factor must be < 1.0.")
        self._enabled = enabled
        self._init_scale = init_scale
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval
        self._scale = jnp.asarray(init_scale, jnp.float32)
        self._growth_tracker = jnp.asarray(0, jnp.int32)
        self._found_inf: dict[int, Any] = {}

    # ---- Stateful (jaxmodule/_stateful.py) ----------------------------------------------------
    param_groups: tuple = ()  # no cells of its own

    def _jm_state_get(self) -> dict:
        """The scale and the growth tracker, as one pytree."""
        return {"scale": self._scale, "growth_tracker": self._growth_tracker}

    def _jm_state_set(self, state: dict) -> None:
        """Install a pytree of `_jm_state_get`'s structure (values may be tracers)."""
        self._scale = state["scale"]
        self._growth_tracker = state["growth_tracker"]

    # ---- torch API ----------------------------------------------------------------------------
    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> Any:
        return self._scale if self._enabled else 1.0

    def scale(self, outputs: Any) -> Any:
        """Multiply outputs (an array or a pytree of arrays) by the scale."""
        report(self)
        if not self._enabled:
            return outputs
        return jax.tree_util.tree_map(lambda o: o * self._scale.astype(jnp.result_type(o)), outputs)

    def _params(self, optimizer: Any) -> list:
        return [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]

    def unscale_(self, optimizer: Any) -> None:
        """Divide the optimizer's gradients by the scale and record whether any is inf/NaN."""
        report(self)
        if not self._enabled:
            return
        if id(optimizer) in self._found_inf:
            raise RuntimeError(
                "unscale_() has already been called on this optimizer since the last update()."
            )
        inv = 1.0 / self._scale
        found = jnp.asarray(False)
        for p in self._params(optimizer):
            g = p.grad.astype(jnp.float32) * inv
            found = found | ~jnp.all(jnp.isfinite(g))
            p.grad = g.astype(p.grad.dtype)
        self._found_inf[id(optimizer)] = found

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """Unscale (if not done) and step, keeping the old values when gradients were not finite."""
        report(self)
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if id(optimizer) not in self._found_inf:
            self.unscale_(optimizer)
        found = self._found_inf[id(optimizer)]
        params = [p for g in optimizer.param_groups for p in g["params"]]
        old_vals = [p._value for p in params]
        old_state = optimizer._jm_state_get() if isinstance(optimizer, Stateful) else None
        result = optimizer.step(*args, **kwargs)
        for p, old in zip(params, old_vals):
            p._value = jnp.where(found, old, p._value)
        if old_state is not None:
            new_state = optimizer._jm_state_get()
            optimizer._jm_state_set(
                jax.tree_util.tree_map(lambda o, n: jnp.where(found, o, n), old_state, new_state)
            )
        return result

    def update(self, new_scale: float | None = None) -> None:
        """Adapt the scale: back off after inf/NaN, grow after `growth_interval` clean steps."""
        report(self)
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = jnp.asarray(new_scale, jnp.float32)
        elif self._found_inf:
            found = jnp.asarray(False)
            for f in self._found_inf.values():
                found = found | f
            tracker = jnp.where(found, 0, self._growth_tracker + 1)
            grow = tracker >= self._growth_interval
            scale = jnp.where(
                found,
                self._scale * self._backoff_factor,
                jnp.where(grow, self._scale * self._growth_factor, self._scale),
            )
            self._scale = scale.astype(jnp.float32)
            self._growth_tracker = jnp.where(grow, 0, tracker).astype(jnp.int32)
        self._found_inf = {}

    def state_dict(self) -> dict:
        if not self._enabled:
            return {}
        return {
            "scale": float(self._scale),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": int(self._growth_tracker),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved from a disabled instance of GradScaler."
            )
        self._scale = jnp.asarray(state_dict["scale"], jnp.float32)
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._growth_tracker = jnp.asarray(state_dict["_growth_tracker"], jnp.int32)
