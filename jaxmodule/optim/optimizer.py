"""`Optimizer`: torch's optimizer API (param groups, state_dict, zero_grad, step) over optax.

How state is held: every parameter gets its optax state eagerly at construction (zeros etc.), so
the state's structure never changes while training. Each group's numeric options (lr, betas,
weight_decay, ...) are kept as float32 device arrays, rebuilt only when a group dict entry is
written (param groups are `dict` subclasses that record writes). The `Stateful` methods
(`jaxmodule/_stateful.py`: `_jm_state_get` / `_jm_state_set` and their fast-path and host pairs)
expose both as one pytree; `jaxmodule.compile` threads that pytree through a compiled step, so a
scheduler changing `group['lr']` changes the computation without recompiling. Which parameters
have state in torch's sense (torch creates it on the first step) is a Python-side flag.

Boolean options (`nesterov`, `amsgrad`, `maximize`, ...) decide the structure of the update:
changing one in a group rebuilds that group's transformation, carrying its state over.
"""

from __future__ import annotations

import copy
import functools
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import _structure
from .._grad_mode import enable_grad
from .._stateful import Stateful
from .._swap import report
from .._tensor import as_array, spans_devices
from ..nn.modules._purity import refuse_calls
from ..nn.parameter import Buffer, Parameter
from ._hooks import HooksMixin, register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from ._utils import ParamGroup, export_state, import_state, required, scalar_key, to_scalar_arrays

__all__ = [
    "Optimizer",
    "required",
    "register_optimizer_step_pre_hook",
    "register_optimizer_step_post_hook",
    "live_optimizers",
]

ParamsT = Iterable[Any]

# Every optimizer alive, so that moving parameters to other devices (`jaxmodule.distributed`)
# can move their state with them; weak, so it keeps nothing alive.
_LIVE: weakref.WeakSet = weakref.WeakSet()


def live_optimizers() -> list[Optimizer]:
    """The optimizers that exist now (used to place their state with moved parameters)."""
    return list(_LIVE)


def _scalar_sharding(param_sharding: Any) -> Any:
    """Where a parameter's non-parameter-shaped state (step counts) goes: replicated on its mesh."""
    if isinstance(param_sharding, jax.sharding.NamedSharding):
        return jax.sharding.NamedSharding(param_sharding.mesh, jax.sharding.PartitionSpec())
    return param_sharding


def _put(x: Any, sharding: Any) -> Any:
    if x is None or getattr(x, "sharding", None) == sharding:
        return x
    return jax.device_put(x, sharding)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _update_params(
    factory: Callable,
    prelude: Callable,
    static: tuple,
    placement: tuple | None,
    sel: tuple[int, ...] | None,
    hp: dict,
    params: list,
    grads: list,
    states: list,
    scalars: dict[str, jax.Array],
) -> tuple[list, list, dict[str, jax.Array]]:
    """One group's step over its parameters that have gradients (one XLA call per group).

    `scalars`: the group's 0-d state (torch's per-parameter 'step', ...) as one vector per key,
    one entry per parameter of the group; `sel` the positions of the stepped parameters in it
    (None: all). `prelude` advances those entries and derives the per-parameter scalars of the
    update (bias corrections, ...) on the vectors, a few kernels for the whole group however many
    parameters it has; each parameter's transformation reads its entries from `hp`.
    `placement`: the parameters' shardings when they span devices (outputs keep them)."""
    pick = None if sel is None else np.asarray(sel)
    mine = {k: v if pick is None else v[pick] for k, v in scalars.items()}
    advanced, derived = prelude(hp, static, mine)
    new_params, new_states = [], []
    for j, (p, g, s) in enumerate(zip(params, grads, states)):
        tx = factory({**hp, **{k: d[j] for k, d in derived.items()}} if derived else hp, static)
        u, s2 = tx.update(g, s, p)
        new_params.append(optax.apply_updates(p, u))
        new_states.append(jax.tree.map(lambda a, b: jnp.asarray(a, b.dtype), s2, s))
    new_scalars = {
        k: advanced[k] if pick is None else v.at[pick].set(advanced[k]) for k, v in scalars.items()
    }
    if placement is not None:
        new_params = [
            jax.lax.with_sharding_constraint(p, sh) for p, sh in zip(new_params, placement)
        ]
        new_states = [
            jax.tree.map(
                lambda x, p=p, sh=sh: jax.lax.with_sharding_constraint(
                    x, sh if x.shape == p.shape else _scalar_sharding(sh)
                ),
                st,
            )
            for p, sh, st in zip(params, placement, new_states)
        ]
        new_scalars = {
            k: jax.lax.with_sharding_constraint(v, _scalar_sharding(placement[0]))
            for k, v in new_scalars.items()
        }
    return new_params, new_states, new_scalars


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _update_generic(
    tx: optax.GradientTransformation,
    mask: tuple,
    placement: tuple | None,
    lr: jax.Array,
    params: list,
    grads: list,
    state: Any,
) -> tuple[list, Any]:
    """A user optax transformation over a whole group; masked-out parameters keep their value.
    `placement`: the parameters' shardings when they span devices (outputs keep them)."""
    u, new_state = tx.update(grads, state, params)
    new_params = [
        jnp.asarray(p + lr * du, p.dtype) if m else p for p, du, m in zip(params, u, mask)
    ]
    if placement is not None:
        pin = jax.lax.with_sharding_constraint
        new_params = [pin(p, sh) for p, sh in zip(new_params, placement)]
        scalar = _scalar_sharding(placement[0])
        new_state = optax.tree_map_params(
            tx, pin, new_state, list(placement), transform_non_params=lambda x: pin(x, scalar)
        )
    return new_params, new_state


class Optimizer(HooksMixin, Stateful):
    """Base optimizer holding param groups and per-parameter state. Mirrors `torch.optim.Optimizer`.

    Args:
        params: an iterable of Parameters, of (name, Parameter) pairs, or of param-group dicts
            (each with a 'params' entry and optional per-group options).
        defaults: the default options of every group (subclasses), or any optax
            `GradientTransformation` to use it as a torch-style optimizer.

    With an optax transformation, each group applies it to its parameters as one pytree (so
    global transforms such as `optax.clip_by_global_norm` see the whole group); the group option
    'lr' (default 1.0) multiplies the optax update, so schedulers work. A parameter whose grad is
    None is left unchanged, but the transformation sees a zero gradient for it.

    >>> import jax.numpy as jnp, optax
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.ones(2))
    >>> opt = Optimizer([w], optax.sgd(0.5))
    >>> w.grad = jnp.array([1.0, 2.0])
    >>> opt.step()
    >>> w.tolist()
    [0.5, 0.0]

    Differences from torch: `optimizer.state` is a read-only snapshot in torch's layout; a
    param group may not list one parameter twice (torch warns); `foreach`, `fused` and
    `capturable` are accepted and change nothing (XLA compiles the whole step).
    """

    _array_options: tuple[str, ...] = ("lr",)  # group options held as device arrays
    _complement_options: tuple[str, ...] = ()  # also held as `1 - value`, computed in float64
    # Options whose value 0 removes a term from the update, as torch's `if weight_decay != 0:`
    # does: their hp entry is None then (no array, no traced op), and a change between zero and
    # non-zero rebuilds the group's transformation like a static option.
    _zero_options: tuple[str, ...] = ("weight_decay",)
    _state_names: dict[str, str] = {}  # optax NamedTuple field -> torch state key
    # torch's 0-d per-parameter state entries ('step', NAdam's 'mu_product'), with their initial
    # value. They are equal across a group's parameters whenever all of them step together, so
    # each is held as one vector per group (`_scalars[gi][key][i]`) and advanced by `_prelude`
    # once for the whole group: one array argument and a few kernels instead of one count and
    # its bias corrections per parameter. torch's key order puts them first.
    _scalar_state: dict[str, float] = {}
    _state_at_init = False  # torch creates the state at construction (Adagrad)

    def __init__(
        self, params: ParamsT, defaults: dict[str, Any] | optax.GradientTransformation
    ) -> None:
        self._tx: optax.GradientTransformation | None = None
        if isinstance(defaults, optax.GradientTransformation):
            self._tx, defaults = defaults, {"lr": 1.0}
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self._states: list[Any] = []  # per group: list of per-parameter states (or one optax state)
        self._scalars: list[dict[str, jax.Array]] = []  # per group: `_scalar_state` key -> vector
        self._started: list[list[bool]] = []
        self._hp: list[dict[str, Any]] = []
        self._hp_key: list[Any] = []
        self._static: list[tuple] = []
        self._key_order: list[list[str]] = []  # per group: torch's order of the state keys
        self._opt_called = False
        self._sharded = False  # some parameter spans several devices: eager steps keep placements
        # `_stateful.py`: `_jm_version` moves whenever the structure of `_jm_state_get()` may
        # have changed, `_jm_values` whenever any of its arrays may have been replaced
        # (`_moved` and `_jm_state_install` bump them)
        self._jm_version = self._jm_values = 0
        _LIVE.add(self)
        if isinstance(params, (Parameter, Buffer, jax.Array)):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of "
                f"Parameters or dicts, but got {type(params).__name__}"
            )
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(dict(g))

    # ---- subclass hooks ----------------------------------------------------------------------
    @staticmethod
    def _transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
        """The per-parameter optax transformation from array options `hp` and static options."""
        raise NotImplementedError

    def _static_options(self, group: dict[str, Any]) -> tuple:
        """The options that decide the update's structure (hashable)."""
        return ()

    @staticmethod
    def _prelude(
        hp: dict[str, Any], static: tuple, scalars: dict[str, jax.Array]
    ) -> tuple[dict, dict]:
        """Advance the group's `_scalar_state` vectors (one entry per stepped parameter) and
        derive the per-parameter scalars the transformation reads from its `hp` (each vector's
        entry `j` goes to the `j`-th stepped parameter): `(new scalars, derived)`. By default
        'step' counts and is handed on."""
        if "step" not in scalars:
            return scalars, {}
        new = dict(scalars, step=scalars["step"] + 1)
        return new, {"step": new["step"]}

    # ---- groups --------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (dict with 'params' and optional options). Mirrors torch."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, (Parameter, Buffer, jax.Array)):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but "
                "the ordering of tensors in sets will change between runs. Please use a list instead."
            )
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        group = ParamGroup(param_group)
        group["params"] = params
        if names:
            if len(names) != len(params):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are missing"
                )
            group["param_names"] = names
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(
                    "optimizer can only optimize Parameters, but one of the params is "
                    f"{type(p).__module__}.{type(p).__name__}"
                )
            if jnp.issubdtype(p.dtype, jnp.complexfloating):
                raise NotImplementedError(
                    f"complex parameters are not supported by jaxmodule.optim (got dtype {p.dtype})"
                )
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization parameter {name}"
                )
            group.setdefault(name, default)
        ids = [id(p) for p in params]
        if len(ids) != len(set(ids)):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        seen: set[int] = set()
        for g in self.param_groups:
            seen.update(id(p) for p in g["params"])
            if ("param_names" in group) != ("param_names" in g):
                txt = "with names" if "param_names" in group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {txt} to the optimizer"
                )
        if not seen.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        hp, static = self._make_hp(group), self._static_options(group)
        self.param_groups.append(group)
        self._hp.append(hp)
        self._hp_key.append(self._hp_key_of(group))
        self._static.append(static)
        self._states.append(self._init_states(group, hp, static))
        self._scalars.append(self._init_scalars(len(params)))
        self._key_order.append(self._order_of(self._states[-1]))
        self._started.append([self._state_at_init] * len(params))
        self._moved()
        group._jm_dirty = False
        if any(spans_devices(p._value) for p in params):
            self._jm_place_state()

    def _order_of(self, states: Any) -> list[str]:
        if self._tx is not None or not states:
            return []
        return [*self._scalar_state, *export_state(states[0], self._state_names)]

    def _init_scalars(self, n: int) -> dict[str, jax.Array]:
        return {k: jnp.full((n,), v, jnp.float32) for k, v in self._scalar_state.items()}

    def _export(self, gi: int, i: int) -> dict[str, Any]:
        """Parameter `i` of group `gi`'s state in torch's layout and key order ({} when none)."""
        if not self._started[gi][i]:
            return {}
        entry = export_state(self._states[gi][i], self._state_names)
        entry.update((k, v[i]) for k, v in self._scalars[gi].items())
        return {k: entry[k] for k in self._key_order[gi] if k in entry}

    def _import_scalars(
        self, saved: list[dict[str, Any] | None], where: list[str]
    ) -> dict[str, jax.Array]:
        """A group's `_scalar_state` vectors from torch-layout entries (None: no state), the
        scalar keys popped from each entry. Raises ValueError naming a missing or non-0-d key."""
        out = {}
        for k, init in self._scalar_state.items():
            vals = np.full((len(saved),), init, np.float32)
            for i, (entry, w) in enumerate(zip(saved, where)):
                if entry is None:
                    continue
                if k not in entry:
                    raise ValueError(f"{w}: missing state entry '{k}'")
                v = np.asarray(as_array(entry.pop(k)))
                if v.shape != ():
                    raise ValueError(
                        f"{w}: state entry '{k}' has shape {tuple(v.shape)}, expected ()"
                    )
                vals[i] = v
            out[k] = jnp.asarray(vals)
        return out

    def _hp_key_of(self, group: dict[str, Any]) -> tuple:
        return tuple(scalar_key(group[k]) for k in self._array_options)

    def _zeros_of(self, key: tuple) -> tuple[bool, ...]:
        """Which `_zero_options` are zero in an hp key (they shape the transformation)."""
        return tuple(v == 0 for k, v in zip(self._array_options, key) if k in self._zero_options)

    def _make_hp(
        self, group: dict[str, Any], old: dict[str, Any] | None = None, old_key: tuple | None = None
    ) -> dict[str, Any]:
        """Device arrays of the group's numeric options; with `old`, only changed ones are new.
        The new ones are made together from their Python values (`to_scalar_arrays`)."""
        hp: dict[str, Any] = {}
        numbers: list[float] = []  # the new arrays' values; hp holds their positions until made
        made: list[tuple[str, bool]] = []  # (key, is a sequence)
        for j, k in enumerate(self._array_options):
            v = group[k]
            key = scalar_key(v)
            if old is not None and old_key is not None and key == old_key[j]:
                hp[k] = old[k]
                if "1-" + k in old:
                    hp["1-" + k] = old["1-" + k]
                continue
            if k in self._zero_options and key == 0:
                hp[k] = None  # no complement either: the term is gone
                continue
            seq = isinstance(key, tuple)
            names = [k, "1-" + k] if k in self._complement_options else [k]
            for name, of in zip(names, (lambda x: x, lambda x: 1.0 - x)):
                values = [of(x) for x in (key if seq else (key,))]
                hp[name] = list(range(len(numbers), len(numbers) + len(values)))
                numbers += values
                made.append((name, seq))
        arrays = to_scalar_arrays(numbers)
        for name, seq in made:
            at = hp[name]
            hp[name] = tuple(arrays[i] for i in at) if seq else arrays[at[0]]
        if old is not None and self._sharded:  # a changed option stays on the options' mesh
            where = next((x.sharding for x in jax.tree.leaves(old) if spans_devices(x)), None)
            if where is not None:
                hp = jax.tree.map(lambda x: _put(x, where), hp)
        return hp

    def _init_states(self, group: dict[str, Any], hp: dict[str, Any], static: tuple) -> Any:
        if self._tx is not None:
            return self._tx.init([p._value for p in group["params"]])
        tx = self._transformation(hp, static)
        return [tx.init(p._value) for p in group["params"]]

    def _refresh(self, gi: int) -> None:
        """Bring group `gi`'s arrays up to date with its dict (cheap when nothing was written)."""
        group = self.param_groups[gi]
        if not isinstance(group, ParamGroup):
            group = self.param_groups[gi] = ParamGroup(group)
        if not group._jm_dirty:
            return
        key = self._hp_key_of(group)
        zeros_moved = False
        if key != self._hp_key[gi]:
            zeros_moved = self._zeros_of(key) != self._zeros_of(self._hp_key[gi])
            self._hp[gi] = self._make_hp(group, self._hp[gi], self._hp_key[gi])
            self._hp_key[gi] = key
            self._moved(structure=False)  # new option values; a zero moving re-inits below
        static = self._static_options(group)
        if static != self._static[gi] or zeros_moved:
            old = [export_state(s, self._state_names) for s in self._states[gi]]
            self._static[gi] = static
            self._moved()
            fresh = self._init_states(group, self._hp[gi], static)
            self._key_order[gi] = self._order_of(fresh)
            self._states[gi] = [
                import_state(f, o, self._state_names, "rebuild", partial=True) if st else f
                for f, o, st in zip(fresh, old, self._started[gi])
            ]
        group._jm_dirty = False

    def _jm_place_state(self) -> None:
        """Put each parameter's state where the parameter is (moments on its sharding, step
        counts replicated on its mesh) and each group's option arrays replicated on the mesh of
        its parameters. Called when parameters move (`jaxmodule.distributed`), so an optimizer
        built before sharding keeps working, and by `add_param_group` for sharded parameters."""
        self._moved(structure=False)
        self._sharded = any(spans_devices(p._value) for g in self.param_groups for p in g["params"])
        for gi, group in enumerate(self.param_groups):
            params = group["params"]
            if not params:
                continue
            shardings = [p._value.sharding for p in params]
            scalar = _scalar_sharding(shardings[0])
            if self._tx is not None:
                self._states[gi] = optax.tree_map_params(
                    self._tx,
                    _put,
                    self._states[gi],
                    shardings,
                    transform_non_params=lambda x, s=scalar: _put(x, s),
                )
            else:
                self._states[gi] = [
                    jax.tree.map(
                        lambda x, p=p, s=s: _put(
                            x, s if x.shape == p.shape else _scalar_sharding(s)
                        ),
                        st,
                    )
                    for p, s, st in zip(params, shardings, self._states[gi])
                ]
                self._scalars[gi] = {k: _put(v, scalar) for k, v in self._scalars[gi].items()}
            self._hp[gi] = jax.tree.map(lambda x, s=scalar: _put(x, s), self._hp[gi])

    # ---- Stateful (jaxmodule/_stateful.py): the compile machinery ------------------------------
    def _jm_state_get(self) -> dict[str, Any]:
        """All mutable array state (group option arrays and optax states) as one pytree."""
        for gi in range(len(self.param_groups)):
            self._refresh(gi)
        return {
            "hp": list(self._hp),
            "state": [s if self._tx is not None else list(s) for s in self._states],
            "scalars": [dict(v) for v in self._scalars],
        }

    def _jm_state_set(self, state: dict[str, Any]) -> None:
        """Install a pytree of `_jm_state_get`'s structure (values may be tracers)."""
        self._hp = list(state["hp"])
        self._states = [s if self._tx is not None else list(s) for s in state["state"]]
        self._scalars = [dict(v) for v in state["scalars"]]
        self._moved()  # any structure may come in

    def _jm_state_version(self) -> int:
        """Moves whenever the structure of the state may have changed (`_stateful.py`)."""
        return self._jm_version

    def _jm_value_version(self) -> int:
        """Moves whenever an array of the state may have been replaced (`_stateful.py`).
        Refreshes groups whose options were set first, so a new learning rate moves it."""
        for gi, g in enumerate(self.param_groups):
            if type(g) is not ParamGroup or g._jm_dirty:
                self._refresh(gi)
        return self._jm_values

    def _moved(self, structure: bool = True) -> None:
        """Record that state arrays were replaced (and, with `structure`, that the structure or
        the static options may have changed): the versions compile's fast path checks."""
        self._jm_values += 1
        if structure:
            self._jm_version += 1

    def _jm_trace_key(self) -> tuple:
        """Per group, the static options and which zero-sensitive options are zero: what the
        traced update branches on (`_stateful.py`). Option values (lr) are traced, not here."""
        for gi in range(len(self.param_groups)):
            self._refresh(gi)
        return tuple(
            (static, self._zeros_of(key)) for static, key in zip(self._static, self._hp_key)
        )

    def _jm_host_state(self) -> tuple:
        """The Python-side state a step changes: torch's "state exists" flags per parameter and
        whether `step()` was called. A compiled program discovered on one optimizer replays the
        change onto another instance that runs it (`_jm_host_update`)."""
        return (self._opt_called, tuple(map(tuple, self._started)))

    def _jm_host_update(self, before: tuple, after: tuple) -> None:
        """Apply the change `before -> after` of `_jm_host_state` (flags only ever turn on)."""
        self._opt_called = self._opt_called or (after[0] and not before[0])
        for gi, (b, a) in enumerate(zip(before[1], after[1])):
            for i, (was, now) in enumerate(zip(b, a)):
                if now and not was:
                    self._started[gi][i] = True

    def _jm_state_view(self) -> dict[str, Any]:
        """`_jm_state_get` without copying the containers: for handing straight to a jitted call
        (which only reads them), the per-call path of `jaxmodule.compile`."""
        for g in self.param_groups:
            if type(g) is not ParamGroup or g._jm_dirty:
                return self._jm_state_get()
        return {"hp": self._hp, "state": self._states, "scalars": self._scalars}

    def _jm_state_install(self, state: dict[str, Any]) -> int:
        """`_jm_state_set` for a state of the same structure that nothing else holds (a jitted
        call's fresh output): keeps the containers, moves only the value version, returns it."""
        self._hp, self._states, self._scalars = state["hp"], state["state"], state["scalars"]
        self._jm_values += 1
        return self._jm_values

    # ---- step --------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients to None (default) or to zeros. Mirrors torch."""
        report(self)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = None if set_to_none else jnp.zeros_like(as_array(p.grad))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that requires grad and has a gradient. Mirrors torch.

        Traceable: under `jaxmodule.compile` / `jax.jit` the gradients may be tracers.
        """
        report(self, stepping=True)
        return self._call_with_step_hooks(self._step, (closure,) if closure is not None else (), {})

    def _step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._opt_called = True
        self._moved()  # eager steps write states (same structure; be safe)
        for gi in range(len(self.param_groups)):
            self._refresh(gi)
            params = self.param_groups[gi]["params"]
            idx = [i for i, p in enumerate(params) if p.grad is not None and p.requires_grad]
            if self._tx is not None:
                self._step_generic(gi, params, idx)
                continue
            if not idx:
                continue
            grads = [self._grad(params[i], i) for i in idx]
            placement = self._placement([params[i] for i in idx])
            sel = None if len(idx) == len(params) else tuple(idx)
            cls = type(self)
            new_p, new_s, self._scalars[gi] = _update_params(
                cls._transformation,
                cls._prelude,
                self._static[gi],
                placement,
                sel,
                self._hp[gi],
                [params[i]._value for i in idx],
                grads,
                [self._states[gi][i] for i in idx],
                self._scalars[gi],
            )
            for i, v, s in zip(idx, new_p, new_s):
                params[i]._value = v
                self._states[gi][i] = s
                self._started[gi][i] = True
        return loss

    def _placement(self, params: list[Parameter]) -> tuple | None:
        """The shardings eager updates of `params` keep, when parameters span devices (None
        otherwise, and under compile, which keeps placements itself)."""
        if not self._sharded or isinstance(params[0]._value, jax.core.Tracer):
            return None
        return tuple(p._value.sharding for p in params)

    @staticmethod
    def _grad(p: Parameter, i: int) -> jax.Array:
        g = as_array(p.grad)
        if g.shape != p._value.shape:
            raise RuntimeError(
                f"parameter {i} has shape {tuple(p._value.shape)} but its grad "
                f"has shape {tuple(g.shape)}"
            )
        return g

    def _step_generic(self, gi: int, params: list[Parameter], idx: list[int]) -> None:
        if not idx:
            return
        on = set(idx)
        grads = [
            self._grad(p, i) if i in on else jnp.zeros_like(p._value) for i, p in enumerate(params)
        ]
        mask = tuple(i in on for i in range(len(params)))
        new_p, self._states[gi] = _update_generic(
            self._tx,
            mask,
            self._placement(params),
            self._hp[gi]["lr"],
            [p._value for p in params],
            grads,
            self._states[gi],
        )
        for i in idx:
            params[i]._value = new_p[i]
            self._started[gi][i] = True

    # ---- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> defaultdict:
        """torch's `optimizer.state`: {parameter: {state key: array}} (a read-only snapshot).
        Its arrays stay valid: a later compiled step copies before donating them (as for
        `state_dict()`)."""
        out: defaultdict = defaultdict(dict)
        if self._tx is not None:
            return out
        for gi, group in enumerate(self.param_groups):
            self._refresh(gi)
            for i, p in enumerate(group["params"]):
                entry = self._export(gi, i)
                if entry:
                    out[p] = entry
        _structure.export(jax.tree_util.tree_leaves(list(out.values())))
        return out

    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: {key: array}}, 'param_groups': [{options..., 'params': [index]}]}.

        Mirrors torch's layout and state keys; arrays are jax arrays. With an optax
        transformation, 'state' holds {'optax_state': [one optax state per group]}. The arrays
        are the state at this moment (a snapshot); a later compiled step copies before donating
        them, so the state_dict stays valid.
        """
        sd = self._state_dict_with_hooks(self._build_state_dict)
        _structure.export(jax.tree_util.tree_leaves(sd["state"]))
        return sd

    def _build_state_dict(self) -> dict[str, Any]:
        groups: list[dict[str, Any]] = []
        state: dict[int | str, Any] = {}  # {index: entry}, or {'optax_state': [...]}
        start = 0
        for gi, group in enumerate(self.param_groups):
            self._refresh(gi)
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            groups.append(packed)
            if self._tx is None:
                for i in range(len(group["params"])):
                    entry = self._export(gi, i)
                    if entry:
                        state[start + i] = entry
            start += len(group["params"])
        if self._tx is not None:
            state["optax_state"] = list(self._states)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict (from jaxmodule or torch). Validates first; changes nothing on failure."""
        self._load_with_hooks(self._load, state_dict)

    def _load(self, state_dict: dict[str, Any]) -> None:
        saved = copy.deepcopy(state_dict["param_groups"])
        saved_state = state_dict["state"]
        if len(saved) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, saved)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the "
                "size of optimizer's group"
            )
        new_groups: list[dict[str, Any]] = []
        scalars: list[dict[str, jax.Array]] = []
        hps, keys, statics, states, started, orders = [], [], [], [], [], []
        for gi, (g, sg) in enumerate(zip(self.param_groups, saved)):
            ng = ParamGroup(sg)
            ng["params"] = g["params"]
            if "param_names" in g and "param_names" not in sg:
                ng["param_names"] = g["param_names"]
            hp, static = self._make_hp(ng), self._static_options(ng)
            fresh = self._init_states(ng, hp, static)
            orders.append(self._order_of(fresh))
            if self._tx is not None:
                states.append(_load_optax_state(fresh, saved_state, gi))
                started.append([False] * len(ng["params"]))
                scalars.append({})
            else:
                entries = [
                    dict(saved_state[sid])
                    if sid in saved_state and len(saved_state[sid]) > 0
                    else None
                    for sid in sg["params"]
                ]
                scalars.append(
                    self._import_scalars(entries, [f"state[{sid}]" for sid in sg["params"]])
                )
                states.append(
                    [
                        f if e is None else import_state(f, e, self._state_names, f"state[{sid}]")
                        for f, e, sid in zip(fresh, entries, sg["params"])
                    ]
                )
                started.append([e is not None for e in entries])
            ng._jm_dirty = False
            new_groups.append(ng)
            hps.append(hp)
            keys.append(self._hp_key_of(ng))
            statics.append(static)
        self.param_groups, self._hp, self._hp_key = new_groups, hps, keys
        self._static, self._states, self._started, self._key_order = (
            statics,
            states,
            started,
            orders,
        )
        self._scalars = scalars
        self._moved()
        if any(spans_devices(p._value) for g in self.param_groups for p in g["params"]):
            self._jm_place_state()  # loaded state goes where the parameters live

    def __repr__(self) -> str:
        s = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    s += f"    {key}: {group[key]}\n"
        return s + ")"

    def __getstate__(self) -> dict[str, Any]:
        return {
            k: v for k, v in self.__dict__.items() if not k.endswith("_hooks")
        }  # as torch: no hooks

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _load_optax_state(fresh: Any, saved_state: dict[str, Any], gi: int) -> Any:
    try:
        loaded = saved_state["optax_state"][gi]
    except (KeyError, IndexError, TypeError):
        raise ValueError(
            f"loaded state dict has no 'optax_state' for parameter group {gi}"
        ) from None
    want, got = jax.tree.structure(fresh), jax.tree.structure(loaded)
    if want != got:  # type: ignore[operator]  # jax's PyTreeDef is opaque to mypy
        raise ValueError(f"optax_state of group {gi} has structure {got}, expected {want}")
    leaves = []
    for f, x in zip(jax.tree.leaves(fresh), jax.tree.leaves(loaded)):
        x = as_array(x)
        if x.shape != f.shape:
            raise ValueError(f"optax_state of group {gi}: leaf shape {x.shape}, expected {f.shape}")
        leaves.append(jnp.array(x, f.dtype, copy=True))
    return jax.tree.unflatten(want, leaves)


# what a checked eager forward may not call (`nn/modules/_purity.py`)
refuse_calls(
    Optimizer.step, Optimizer.zero_grad, Optimizer.add_param_group, Optimizer.load_state_dict
)
