"""A global counter bumped by every structural change of any Module or Parameter.

Structural: registering/removing parameters, buffers or submodules, plain attribute assignment on a
module, train/eval, `requires_grad` flips, hook (un)registration. Value changes (an optimizer step,
`fill_`, assigning an array to an existing buffer) are not structural. Caches of pytree structure
(`_pytree.py`) and compiled layouts (`_compile/`) store the counter value they were built at and
are rebuilt when it moved, so a call costs one integer comparison when nothing changed.
"""

import weakref
from typing import Any

import jax

VERSION = [0]


def bump() -> None:
    VERSION[0] += 1

# Bumped when any cell's `.grad` switches between None and an array (compiled steps pass the
# present gradients in and out, so their presence is part of a compiled plan).
GRAD_VERSION = [0]

# Arrays handed out by `state_dict()` (module and optimizer). A compiled step donates the arrays it
# replaces; before it does, it copies any cell value found here (once per EXPORT_EPOCH), so a
# state_dict taken earlier stays valid, as a torch user expects. Weak: dropping the state_dict
# drops the entries.
EXPORTED: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
EXPORT_EPOCH = [0]


def export(values: Any) -> None:
    """Record arrays that now have holders outside their cells (see EXPORTED)."""
    for v in values:
        if isinstance(v, jax.Array):
            EXPORTED[id(v)] = v
    EXPORT_EPOCH[0] += 1
