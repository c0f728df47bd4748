"""Child for test_crash: save a numbered state into one path forever, printing each completed index.

`python _crash_child.py PATH START` saves make(START), make(START + 1), ... into PATH and prints
each index after its save returns. The parent SIGKILLs it at random moments.
"""

from __future__ import annotations

import sys
from collections import OrderedDict

import jax.numpy as jnp
import numpy as np


def make(i: int) -> OrderedDict:
    sd = OrderedDict()
    sd["index"] = i
    sd["layer.weight"] = jnp.full((64, 64), float(i), jnp.float32)
    sd["layer.bias"] = (jnp.arange(128, dtype=jnp.float32) + i).astype(jnp.bfloat16)
    sd["counts"] = np.full((5, 7), i, np.int64)
    sd["history"] = [i - j for j in range(3)]
    return sd


if __name__ == "__main__":
    from jaxmodule.checkpoint import save

    path, i = sys.argv[1], int(sys.argv[2])
    while True:
        save(make(i), path)
        print(i, flush=True)
        i += 1
