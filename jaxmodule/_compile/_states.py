"""`StatePlan`: how the states of a step's optimizers and GradScalers travel through its program.

A `Stateful` object's state is a pytree (`_jm_state_get()`: an optimizer's group options, optax
states and step counts). Handing the jitted program whole pytrees in and out costs every call a
nested flatten and unflatten in jit's dispatch, and returning state the step only reads (a
learning rate) costs an output per leaf: measured on a trivial program with an SGD optimizer's
state, 4-5 us for the nesting and 3 us for returning two unchanged scalars, next to raw JAX's
~25 us call. So a program takes the states as flat leaves in two lists:

- `written`: leaves the step writes (momentum buffers, step counts): donated and returned;
- `read`: every other leaf (a learning rate, an option the step never uses): passed read-only,
  never donated, never returned; the object keeps the array it has.

The read leaves of an object with both versions (`_jm_state_version`, `_jm_value_version`: an
optimizer) that are float32 scalars (its options: lr, betas, eps, ...) go in as one packed
vector, unpacked inside the program: each array argument costs jit's dispatch ~0.5 us (measured:
five scalars against one vector of five, 7.4 us against 5.5 us a call), and the fast path keeps
the packed vector between calls (`_fast_path.py`), so packing costs one small device op only when
an option changed.

Discovery (`_program.discover`) learns which is which from its one trace: a leaf whose output
variable is its own input variable is not written. Inside the jitted function the flat leaves
are rebuilt into the pytrees the recorded trace takes, and the outputs are cut back to the
written leaves (`outputs`). A retrace for new input types that writes a leaf the plan only
reads, or changes a structure, is caught (`check`) and the step is discovered again. An object
whose state comes out with another structure than it went in returns all its output leaves and
is installed from them (such a program gets no generated fast path).

>>> import jax.numpy as jnp
>>> tree = jax.tree.structure({"lr": 0, "m": 0})
>>> plan = StatePlan([tree], [tree], passthrough={0})  # "lr" comes out as it went in
>>> plan.written, plan.read, plan.packs
([1], [0], [[]])
>>> plan.outputs([{"lr": jnp.ones(()), "m": jnp.zeros(())}])[0].shape
()
>>> plan.check([{"lr": jnp.ones(()), "m": jnp.zeros(())}], [{"lr": jnp.ones(()), "m": 0}])
Traceback (most recent call last):
...
jaxmodule._compile._states.StateChanged: 0
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["StatePlan", "StateChanged", "pack"]

leaves = jax.tree_util.tree_leaves
pack = jax.jit(jnp.stack)  # float32 scalars -> one vector (one dispatch, cached per count)


def _packable(x: Any) -> bool:
    return (
        isinstance(x, jax.Array)
        and x.shape == ()
        and x.dtype == np.float32
        and not x.weak_type
        and len(x.sharding.device_set) == 1
    )


class StateChanged(Exception):
    """A retrace wrote a state leaf its program treats as read-only (or changed a state's
    structure): the program must be discovered again."""


class StatePlan:
    """Which state leaves a program writes, and how its outputs go back into the objects.

    `in_trees[j]` / `out_trees[j]`: the structure of object j's state before and after the step;
    `passthrough`: global leaf indices (over the objects' leaves concatenated) whose output is
    their own input; `packs[j]`: the local indices of object j's read leaves that travel packed
    in one vector (see the module docstring; default none). Per object, `installs[j]` is None
    (nothing written), a list of the local indices of its written leaves (same structure), or
    its output tree (another structure: all of its output leaves are returned).
    """

    __slots__ = (
        "in_trees",
        "out_trees",
        "offsets",
        "written",
        "read",
        "installs",
        "n_out",
        "packs",
        "written_local",
        "read_local",
    )

    def __init__(
        self, in_trees: list, out_trees: list, passthrough: set[int], packs: list | None = None
    ) -> None:
        self.in_trees, self.out_trees = in_trees, out_trees
        self.offsets: list[int] = []
        self.written: list[int] = []
        self.read: list[int] = []
        self.installs: list[Any] = []
        off = n_out = 0
        for t_in, t_out in zip(in_trees, out_trees):
            self.offsets.append(off)
            n = t_in.num_leaves
            if t_in == t_out:
                local = [i for i in range(n) if off + i not in passthrough]
                self.written += [off + i for i in local]
                self.read += [off + i for i in range(n) if off + i in passthrough]
                self.installs.append(local or None)
                n_out += len(local)
            else:
                self.read += list(range(off, off + n))
                self.installs.append(t_out)
                n_out += t_out.num_leaves
            off += n
        self.n_out = n_out
        self.packs: list[list[int]] = packs or [[] for _ in in_trees]
        # per object, the local indices of its written and read leaves
        self.written_local, self.read_local = self.local(self.written), self.local(self.read)

    @classmethod
    def discover(
        cls,
        in_states: list,
        out_states: list,
        recorded: Any,
        in_at: int,
        out_at: int,
        versioned: list[bool] | None = None,
    ) -> StatePlan:
        """The plan of a recorded trace whose state leaves start at input `in_at` and output
        `out_at` (`in_states` / `out_states`: the states' pytrees going in and coming out;
        `versioned[j]`: whether object j has both versions, so its scalar options may be
        packed)."""
        in_trees: list[Any] = [jax.tree.structure(s) for s in in_states]
        out_trees: list[Any] = [jax.tree.structure(s) for s in out_states]
        invars, outvars = recorded.jaxpr.invars, recorded.jaxpr.outvars
        passthrough: set[int] = set()
        g = o = 0  # the object's first leaf among the inputs' and the outputs' state leaves
        for t_in, t_out in zip(in_trees, out_trees):
            if t_in == t_out:
                passthrough.update(
                    g + i
                    for i in range(t_in.num_leaves)
                    if outvars[out_at + o + i] is invars[in_at + g + i]
                )
            g, o = g + t_in.num_leaves, o + t_out.num_leaves
        plan = cls(in_trees, out_trees, passthrough)
        for j, (st, read) in enumerate(zip(in_states, plan.read_local)):
            ls = leaves(st)
            p = [i for i in read if _packable(ls[i])] if versioned and versioned[j] else []
            plan.packs[j] = p if len(p) > 1 else []
        return plan

    def local(self, indices: list[int]) -> list[list[int]]:
        """Global leaf indices (`written`, `read`) as each object's local indices."""
        out: list[list[int]] = [[] for _ in self.in_trees]
        j = 0
        for g in indices:  # ascending, objects in order
            while j + 1 < len(self.offsets) and g >= self.offsets[j + 1]:
                j += 1
            out[j].append(g - self.offsets[j])
        return out

    # ---- outside the program: gather and install ----------------------------------------------
    def gather(self, objects: list) -> list[list]:
        """Each object's current state leaves (fresh lists)."""
        return [leaves(o._jm_state_get()) for o in objects]

    def split(self, per_object: list[list]) -> tuple[list, list]:
        """The `written` and `read` arguments of a program call from `gather`'s leaves (per
        object: its packed vector, if any, then its other read leaves)."""
        written: list = []
        read: list = []
        for ls, w, r, p in zip(per_object, self.written_local, self.read_local, self.packs):
            written += [ls[i] for i in w]
            read += self.read_args(ls, r, p)
        return written, read

    @staticmethod
    def read_args(ls: list, read: list[int], packed: list[int]) -> list:
        """One object's read arguments from its leaves `ls`: the vector of the `packed` ones
        first (if any), then the other `read` ones."""
        head = [pack([ls[i] for i in packed])] if packed else []
        return head + [ls[i] for i in read if i not in packed]

    def install(self, objects: list, per_object: list[list], outputs: list) -> None:
        """Write a call's state outputs back (`per_object`: the leaves the call was given)."""
        at = 0
        for o, how, ls, t_in in zip(objects, self.installs, per_object, self.in_trees):
            if how is None:
                continue
            if isinstance(how, list):  # the same structure, in fresh containers
                for i in how:
                    ls[i] = outputs[at]
                    at += 1
                o._jm_state_install(t_in.unflatten(ls))
            else:
                o._jm_state_set(how.unflatten(outputs[at : at + how.num_leaves]))
                at += how.num_leaves

    # ---- inside the program ------------------------------------------------------------------
    def rebuild(self, written: list, read: list) -> list:
        """The states' pytrees from a call's `written` and `read` arguments (`split`'s)."""
        flat: list = [None] * (len(self.written) + len(self.read))
        for g, v in zip(self.written, written):
            flat[g] = v
        at = 0
        for off, r, p in zip(self.offsets, self.read_local, self.packs):
            if p:  # the same order as `read_args`
                vec = read[at]
                at += 1
                for k, i in enumerate(p):
                    flat[off + i] = vec[k]
            for i in r:
                if i not in p:
                    flat[off + i] = read[at]
                    at += 1
        return [
            t.unflatten(flat[off : off + t.num_leaves])
            for t, off in zip(self.in_trees, self.offsets)
        ]

    def check(self, new_states: list, given: list) -> None:
        """After a retrace (`given`: its rebuilt input states): `StateChanged` unless the step
        wrote only leaves the plan returns and kept every structure."""
        for j, (st, how) in enumerate(zip(new_states, self.installs)):
            ls, tree = jax.tree.flatten(st)
            same = how is None or isinstance(how, list)
            if tree != (self.in_trees[j] if same else how):
                raise StateChanged(j)
            if same:
                kept = set(how or ())
                before = leaves(given[j])
                if any(a is not b for i, (a, b) in enumerate(zip(ls, before)) if i not in kept):
                    raise StateChanged(j)

    def outputs(self, new_states: list) -> list:
        """The program's state outputs (the written leaves) from the states after the step."""
        out: list = []
        for st, how in zip(new_states, self.installs):
            if how is None:
                continue
            ls = leaves(st)
            out += [ls[i] for i in how] if isinstance(how, list) else ls
        return out
