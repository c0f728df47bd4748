"""The global random generator: `manual_seed`, `Generator`, `default_generator`.

torch draws from a hidden global generator, so `nn.Linear(10, 5)` needs no key. jaxmodule does
the same with a JAX PRNG key held in a `Generator`; every draw splits it. The key lives in a state
cell (`_value`), so `jaxmodule.compile` threads it through a compiled step and writes the advanced
key back, exactly like a parameter.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._replay import is_replay_trace
from ._swap import register_cell_class

__all__ = [
    "Generator",
    "default_generator",
    "manual_seed",
    "seed",
    "initial_seed",
    "get_rng_state",
    "set_rng_state",
]

_DEFAULT_SEED = 67280421310721  # torch.initial_seed() on a fresh process

TRACED_DRAW_HINT = (
    "a jaxmodule Generator was drawn from inside jax.jit (e.g. by Dropout in training mode or by a "
    "layer's initialisation): its advanced key would be a tracer escaping the trace, so the next "
    "draw would fail or repeat. Compile with jaxmodule.compile instead, which threads the "
    "generator through the compiled program and writes it back:\n"
    "    wrong: jax.jit(lambda m, x: m(x))(model, x)\n"
    "    right: jaxmodule.compile(lambda m, x: m(x))(model, x)\n"
    "or call model.eval() when no randomness is wanted."
)


def _key_from_seed(seed: int) -> jax.Array:
    s = int(seed) & 0xFFFFFFFFFFFFFFFF
    # Build the raw uint32[2] threefry key from the 64-bit seed (hi, lo) without needing x64 mode.
    return jnp.asarray(np.array([s >> 32, s & 0xFFFFFFFF], dtype=np.uint32))


@register_cell_class
class Generator:
    """A JAX PRNG key with torch's `Generator` API.

    Args:
        device: accepted for torch compatibility; keys live on the default device.

    >>> g = Generator().manual_seed(0)
    >>> k = g.next_key()   # a fresh subkey; the generator advances
    """

    __slots__ = ("_value", "_seed", "__weakref__")

    def __init__(self, device: object = None) -> None:
        self._seed = _DEFAULT_SEED
        self._value = _key_from_seed(self._seed)

    def manual_seed(self, seed: int) -> Generator:
        """Reset the generator to `seed`; returns self."""
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}")
        self._seed = int(seed)
        self._value = _key_from_seed(self._seed)
        return self

    def seed(self) -> int:
        """Seed from OS entropy and return the seed, like `torch.Generator.seed`."""
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)  # drawn from the OS when none is given
        s = entropy & 0xFFFFFFFFFFFFFFFF
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> jax.Array:
        """The current key (a uint32[2] array)."""
        return self._value

    def set_state(self, state: object) -> Generator:
        arr = jnp.asarray(np.asarray(state), dtype=jnp.uint32)
        if arr.shape != (2,):
            raise ValueError(
                f"Generator.set_state expected a uint32 array of shape (2,), got shape {arr.shape}"
            )
        self._value = arr
        return self

    def next_key(self) -> jax.Array:
        """Split the held key: keep one half, return the other. Works under tracing too."""
        new, sub = jax.random.split(self._value)
        if (
            isinstance(new, jax.core.Tracer)
            and not isinstance(self._value, jax.core.Tracer)
            and not is_replay_trace()  # an eager backward's loss trace: the key is its constant
        ):
            raise RuntimeError(TRACED_DRAW_HINT)
        self._value = new
        return sub

    def __getstate__(self) -> dict:
        return {"seed": self._seed, "key": np.asarray(self._value)}

    def __setstate__(self, st: dict) -> None:
        self._seed = st["seed"]
        self._value = jnp.asarray(st["key"])


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the global generator. Mirrors `torch.manual_seed`.

    >>> import jaxmodule
    >>> _ = jaxmodule.manual_seed(0)
    """
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> jax.Array:
    return default_generator.get_state()


def set_rng_state(state: object) -> None:
    default_generator.set_state(state)


def next_key(generator: Generator | None = None) -> jax.Array:
    """A fresh key from `generator` (the global one by default)."""
    return (generator or default_generator).next_key()
