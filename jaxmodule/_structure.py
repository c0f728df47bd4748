"""The structure counters: global integers that say when cached plans of modules went stale.

`counters.structure` moves on every structural change of any Module or Parameter: registering or
removing parameters, buffers or submodules, plain attribute assignment on a module, train/eval,
`requires_grad` flips, hook (un)registration. Value changes (an optimizer step, `fill_`, assigning
an array to an existing buffer) are not structural. Caches of pytree structure (`_pytree.py`) and
compiled layouts (`_compile/`) store the counter value they were built at and are rebuilt when it
moved, so a call costs one integer comparison when nothing changed.

>>> from jaxmodule import nn
>>> from jaxmodule._structure import counters
>>> before = counters.structure
>>> model = nn.Linear(2, 2)
>>> counters.structure > before
True
"""

import weakref
from typing import Any

import jax

__all__ = ["StructureCounters", "counters", "bump", "export", "EXPORTED"]


class StructureCounters:
    """The three global counters a compiled call's fast path compares (plain int attributes, so
    a check is one attribute read; they only ever grow).

    - `structure`: a Module or Parameter changed structurally (see the module docstring); bumped
      by `bump()`.
    - `grad_presence`: some cell's `.grad` switched between None and an array (compiled steps pass
      the present gradients in and out, so which are present is part of a compiled plan).
    - `handed_out`: `state_dict()` (module or optimizer) handed arrays out to the caller; bumped
      by `export()`. A compiled step that donates its buffers first copies the handed-out ones.
    """

    __slots__ = ("structure", "grad_presence", "handed_out")

    def __init__(self) -> None:
        self.structure = 0
        self.grad_presence = 0
        self.handed_out = 0

    def __repr__(self) -> str:
        return (
            f"StructureCounters(structure={self.structure}, grad_presence={self.grad_presence}, "
            f"handed_out={self.handed_out})"
        )


counters = StructureCounters()


def bump() -> None:
    """Record a structural change (moves `counters.structure`)."""
    counters.structure += 1


# Arrays handed out by `state_dict()` (module and optimizer). A compiled step donates the arrays it
# replaces; before it does, it copies any cell value found here (once per move of
# `counters.handed_out`), so a state_dict taken earlier stays valid, as a torch user expects.
# Weak: dropping the state_dict drops the entries.
EXPORTED: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


def export(values: Any) -> None:
    """Record arrays that now have holders outside their cells (see EXPORTED); moves
    `counters.handed_out`."""
    for v in values:
        if isinstance(v, jax.Array):
            EXPORTED[id(v)] = v
    counters.handed_out += 1
