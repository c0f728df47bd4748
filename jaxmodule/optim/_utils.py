"""Private helpers shared by the optimizers: parameter groups that record writes, scalar
conversion for hyperparameters, torch-layout state conversion and stable bias corrections."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._tensor import as_array, is_torch_tensor

__all__: list[str] = []


class _RequiredParameter:
    """Singleton marking a default that every param group must set (torch's `required`)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class ParamGroup(dict):
    """A param-group dict that records writes, so hyperparameter arrays refresh only on change."""

    _jm_dirty = True

    def _touch(self) -> None:
        self._jm_dirty = True

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, jax.core.Tracer):
            raise RuntimeError(
                f"param_groups[...][{key!r}] was set to a traced value (inside jaxmodule.compile "
                "or jax.jit, e.g. `group['lr'] = lr` with a float argument of the step). Set "
                "param-group options outside the compiled step, between calls (a new value never "
                "recompiles), or use an LR scheduler (its step() inside a compiled step runs "
                "after each call)."
            )
        super().__setitem__(key, value)
        self._jm_dirty = True

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._jm_dirty = True

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._jm_dirty = True

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self._jm_dirty = True
        return super().setdefault(key, default)

    def pop(self, *args: Any) -> Any:
        self._jm_dirty = True
        return super().pop(*args)


def scalar_key(v: Any) -> Any:
    """A hashable Python form of a hyperparameter value (floats, tuples of floats)."""
    if isinstance(v, (tuple, list)):
        return tuple(scalar_key(x) for x in v)
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if is_torch_tensor(v) or isinstance(v, (jax.Array, np.ndarray)):
        return float(np.asarray(as_array(v)))
    return float(v)


@jax.jit
def _unstack(vector: jax.Array) -> tuple[jax.Array, ...]:
    return tuple(vector[i] for i in range(vector.shape[0]))


def to_scalar_arrays(values: list[float]) -> list[jax.Array]:
    """Fresh float32 0-d device arrays for Python numbers, made together: one transfer and one
    dispatch (~12 us for five) instead of one `jnp.asarray` each (~17 us each), which is what a
    per-batch scheduler pays on every step for the options it changes."""
    if not values:
        return []
    return list(_unstack(np.asarray(values, np.float32)))


def bias_correction(step: jax.Array, one_minus_beta: jax.Array) -> jax.Array:
    """`1 - beta**step`, computed from `1 - beta` without cancellation (torch computes it in
    float64 on the host; the naive float32 form loses ~1e-5 relative for beta=0.999)."""
    return -jnp.expm1(step * jnp.log1p(-one_minus_beta))


def beta_power(step: jax.Array, one_minus_beta: jax.Array) -> jax.Array:
    """`beta**step` from `1 - beta`."""
    return jnp.exp(step * jnp.log1p(-one_minus_beta))


def check_nonneg(value: Any, what: str) -> None:
    if not 0.0 <= scalar_key(value):
        raise ValueError(f"Invalid {what}: {value}")


def check_lr(lr: Any) -> None:
    if (is_torch_tensor(lr) or isinstance(lr, (jax.Array, np.ndarray))) and np.size(
        np.asarray(as_array(lr))
    ) != 1:
        raise ValueError("Tensor lr must be 1-element")
    check_nonneg(lr, "learning rate")


def check_betas(betas: Any) -> None:
    for i, b in enumerate(betas):
        if not 0.0 <= scalar_key(b) < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b}")


def check_flags(foreach: Any, fused: Any, differentiable: bool) -> None:
    """torch's performance flags change nothing here (XLA fuses the whole step); the one flag
    that changes semantics, `differentiable`, is not supported."""
    if differentiable:
        raise NotImplementedError(
            "differentiable=True is not supported: the step writes new "
            "parameter values; differentiate a pure function with jax.grad instead"
        )
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


def torch_chain(
    hp: dict[str, Any],
    direction: optax.GradientTransformation | None,
    maximize: bool,
    decoupled: bool = False,
) -> optax.GradientTransformation:
    """torch's update order as one chain of optax transformations: negate the gradient when
    maximizing, add the L2 weight decay before `direction` (after it when `decoupled`: the
    weights decay directly), then scale by -lr. `direction` None leaves the (decayed) gradient as
    it is. A weight_decay of 0 (hp entry None) adds no term, as torch skips it.

    Unlike `optax.chain`, the state is `direction`'s alone (`()` without one): the other parts
    are stateless, and their `EmptyState`s would be Python objects rebuilt for every parameter on
    every compiled step."""
    decay = [] if hp["weight_decay"] is None else [optax.add_decayed_weights(hp["weight_decay"])]
    core = [] if direction is None else [direction]
    parts = [optax.scale(-1.0)] if maximize else []
    parts += core + decay if decoupled else decay + core
    parts.append(optax.scale_by_learning_rate(hp["lr"]))

    def init(params: Any) -> Any:
        return () if direction is None else direction.init(params)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        for part in parts:
            if direction is not None and part is direction:
                updates, state = direction.update(updates, state, params)
            else:
                updates, _ = part.update(updates, optax.EmptyState(), params)
        return updates, state

    return optax.GradientTransformation(init, update)


# ---- torch-layout state conversion ---------------------------------------------------------
# Per-parameter optax states are chains whose stateful parts are dicts keyed by torch's names
# ('exp_avg', 'step', ...) or optax NamedTuples whose fields map to torch names through
# `names`. Keys starting with '_' are internal and never exported.


def export_state(state: Any, names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(s: Any) -> None:
        if isinstance(s, dict):
            out.update({k: v for k, v in s.items() if not k.startswith("_")})
        elif hasattr(s, "_fields"):
            for f in s._fields:
                if f in names:
                    out[names[f]] = getattr(s, f)
                else:
                    walk(getattr(s, f))
        elif isinstance(s, (tuple, list)):
            for x in s:
                walk(x)

    walk(state)
    return out


def import_state(
    template: Any, entry: dict[str, Any], names: dict[str, str], where: str, partial: bool = False
) -> Any:
    """A copy of `template` with the torch-layout values of `entry` installed (cast and shape
    checked). Raises ValueError naming the key on unknown, missing or mis-shaped entries;
    `partial` keeps the template's value for missing keys and ignores unknown ones."""
    used: set[str] = set()

    def conv(key: str, old: Any) -> Any:
        if key not in entry:
            if partial:
                return old
            raise ValueError(f"{where}: missing state entry '{key}'")
        used.add(key)
        new = as_array(entry[key])
        if tuple(new.shape) != tuple(old.shape):
            raise ValueError(
                f"{where}: state entry '{key}' has shape {tuple(new.shape)}, "
                f"expected {tuple(old.shape)}"
            )
        return jnp.array(new, old.dtype, copy=True)  # never share buffers with the source

    def walk(s: Any) -> Any:
        if isinstance(s, dict):
            # '_started' (a first-step flag) is set when every public entry of this dict was given.
            full = all(k in entry for k in s if not k.startswith("_"))
            return {
                k: (jnp.ones_like(v) if k == "_started" and full else v)
                if k.startswith("_")
                else conv(k, v)
                for k, v in s.items()
            }
        if hasattr(s, "_fields"):
            return type(s)(
                *[
                    conv(names[f], getattr(s, f)) if f in names else walk(getattr(s, f))
                    for f in s._fields
                ]
            )
        if isinstance(s, (tuple, list)):
            return type(s)(walk(x) for x in s)
        return s

    new = walk(template)
    extra = sorted(set(entry) - used, key=str)
    if extra and not partial:
        raise ValueError(f"{where}: unexpected state entries {extra}")
    return new
