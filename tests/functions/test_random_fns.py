"""Random functions: reproducibility, independence, statistics, and the generator under compile.

Draws cannot match torch's bit for bit (different generators). Statistical bounds are five
standard errors of the estimate (for a mean: 5 * sd / sqrt(n); for a sample variance of n draws:
5 * sqrt((mu4 - sigma^4) / n)), so a correct sampler fails with probability below 1e-6 per check;
the autouse fixture seeds the generator, so each run draws the same numbers anyway.
"""

import math

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest

N = 100_000
W = np.array([1.0, 0.0, 3.0, 6.0], np.float32)

DRAWS = {
    "rand": lambda g=None: jaxmodule.rand(3, 4, generator=g),
    "randn": lambda g=None: jaxmodule.randn(5, generator=g),
    "randint": lambda g=None: jaxmodule.randint(0, 10, (6,), generator=g),
    "randperm": lambda g=None: jaxmodule.randperm(8, generator=g),
    "multinomial": lambda g=None: jaxmodule.multinomial(jnp.asarray(W), 3, generator=g),
    "multinomial_replacement": lambda g=None: jaxmodule.multinomial(
        jnp.asarray(W), 5, True, generator=g
    ),
    "bernoulli": lambda g=None: jaxmodule.bernoulli(jnp.full(6, 0.5), generator=g),
    "normal_tensors": lambda g=None: jaxmodule.normal(jnp.zeros(4), jnp.ones(4), generator=g),
    "normal_size": lambda g=None: jaxmodule.normal(1.0, 2.0, (4,), generator=g),
    "poisson": lambda g=None: jaxmodule.poisson(jnp.full(6, 3.0), generator=g),
    "rand_like": lambda g=None: jaxmodule.rand_like(jnp.ones(4), generator=g),
    "randn_like": lambda g=None: jaxmodule.randn_like(jnp.ones(4), generator=g),
    "randint_like": lambda g=None: jaxmodule.randint_like(
        jnp.ones(6, jnp.int32), 0, 100, generator=g
    ),
}


@pytest.mark.parametrize("name", DRAWS)
def test_same_seed_same_draws_and_calls_differ(name):
    draw = DRAWS[name]
    jaxmodule.manual_seed(123)
    a, b = np.asarray(draw()), np.asarray(draw())
    jaxmodule.manual_seed(123)
    np.testing.assert_array_equal(np.asarray(draw()), a)
    np.testing.assert_array_equal(np.asarray(draw()), b)
    if name != "multinomial":  # 3 of 3 categories without replacement: only the order can change
        assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", DRAWS)
def test_generator_argument_is_independent_of_the_global_one(name):
    g1, g2 = jaxmodule.Generator().manual_seed(7), jaxmodule.Generator().manual_seed(7)
    jaxmodule.manual_seed(0)
    state = np.asarray(jaxmodule.get_rng_state())
    x1 = DRAWS[name](g1)
    np.testing.assert_array_equal(np.asarray(jaxmodule.get_rng_state()), state)  # global untouched
    np.testing.assert_array_equal(np.asarray(DRAWS[name](g2)), np.asarray(x1))


def _within(value: float, expected: float, standard_error: float) -> None:
    assert abs(value - expected) < 5 * standard_error, (value, expected, standard_error)


def test_normal_and_uniform_moments():
    z = np.asarray(jaxmodule.randn(N), np.float64)
    _within(z.mean(), 0.0, 1 / math.sqrt(N))
    _within(z.var(), 1.0, math.sqrt(2 / N))  # mu4 - sigma^4 = 3 - 1
    u = np.asarray(jaxmodule.rand(N), np.float64)
    assert u.min() >= 0 and u.max() < 1
    _within(u.mean(), 0.5, math.sqrt(1 / 12 / N))
    _within(u.var(), 1 / 12, math.sqrt((1 / 80 - 1 / 144) / N))
    y = np.asarray(jaxmodule.normal(2.0, 3.0, (N,)), np.float64)
    _within(y.mean(), 2.0, 3 / math.sqrt(N))
    _within(y.std(), 3.0, 3 * math.sqrt(1 / (2 * N)) * 1.01)  # sd of a sample sd ~ sigma / sqrt(2n)
    per = np.asarray(
        jaxmodule.normal(
            jnp.array([-5.0, 5.0]), jnp.array([0.1, 2.0]).reshape(1, 2) * jnp.ones((N, 1))
        )
    )
    _within(per[:, 0].mean(), -5.0, 0.1 / math.sqrt(N))
    _within(per[:, 1].std(), 2.0, 2 * math.sqrt(1 / (2 * N)) * 1.01)


def test_bernoulli_poisson_randint_moments():
    p = 0.3
    b = np.asarray(jaxmodule.bernoulli(jnp.full(N, p)))
    assert set(np.unique(b)) <= {0.0, 1.0} and b.dtype == np.float32
    _within(b.mean(), p, math.sqrt(p * (1 - p) / N))
    b2 = np.asarray(jaxmodule.bernoulli(jnp.zeros(N), 0.8))
    _within(b2.mean(), 0.8, math.sqrt(0.8 * 0.2 / N))
    k = np.asarray(jaxmodule.poisson(jnp.full(N, 4.0)))
    _within(k.mean(), 4.0, math.sqrt(4.0 / N))
    r = np.asarray(jaxmodule.randint(-3, 5, (N,)))
    assert r.min() == -3 and r.max() == 4 and set(np.unique(r)) == set(range(-3, 5))
    _within(
        r.mean(), 0.5, math.sqrt((8**2 - 1) / 12 / N)
    )  # discrete uniform variance (k^2 - 1) / 12


def test_randperm_is_a_permutation():
    for n in (0, 1, 1000):
        p = np.asarray(jaxmodule.randperm(n))
        assert p.dtype == np.int32
        np.testing.assert_array_equal(np.sort(p), np.arange(n))
    assert jaxmodule.randperm(5, dtype=jnp.float32).dtype == jnp.float32


def test_multinomial_frequencies_and_distinct_draws():
    w = jnp.asarray(W)
    probs = W / W.sum()
    draws = np.asarray(
        jaxmodule.multinomial(jnp.broadcast_to(w, (N // 10, 4)), 10, replacement=True)
    ).ravel()
    assert draws.shape == (N,) and 1 not in draws  # zero weight never drawn
    freq = np.bincount(draws, minlength=4) / N
    for f, q in zip(freq, probs):
        _within(f, q, math.sqrt(q * (1 - q) / N) + 1e-12)
    rows = np.asarray(jaxmodule.multinomial(jnp.broadcast_to(w, (N // 10, 4)), 3))
    assert all(len(set(r)) == 3 for r in rows) and 1 not in rows
    first = np.bincount(rows[:, 0], minlength=4) / rows.shape[0]  # first draw ~ weights
    for f, q in zip(first, probs):
        _within(f, q, math.sqrt(q * (1 - q) / rows.shape[0]) + 1e-12)
    wide = np.asarray(jaxmodule.multinomial(jnp.ones((50, 20)), 20))
    assert all(sorted(r) == list(range(20)) for r in wide)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: jaxmodule.multinomial(jnp.asarray(W), 5), "without replacement"),
        (lambda: jaxmodule.multinomial(jnp.asarray(W), 4), "not enough non-negative category"),
        (lambda: jaxmodule.multinomial(jnp.array([1.0, -1.0]), 1), "element < 0"),
        (lambda: jaxmodule.multinomial(jnp.zeros(3), 1, True), "sum of probabilities"),
        (lambda: jaxmodule.multinomial(jnp.ones((2, 2, 2)), 1), "1 or 2 dim"),
        (lambda: jaxmodule.normal(jnp.zeros(2), -1.0), "std >= 0.0"),
        (lambda: jaxmodule.randperm(-1), "non-negative"),
    ],
)
def test_bad_arguments_raise_like_torch(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_generator_advances_inside_jaxmodule_compile():
    step = jaxmodule.compile(
        lambda x: (
            x
            + jaxmodule.randn(3)
            + jaxmodule.multinomial(jnp.ones(5), 2).sum()
            + jaxmodule.bernoulli(jnp.full(3, 0.5))
            + jaxmodule.randperm(3)
        )
    )
    x = jnp.zeros(3)
    jaxmodule.manual_seed(5)
    a, b = np.asarray(step(x)), np.asarray(step(x))
    assert not np.array_equal(a, b)
    jaxmodule.manual_seed(5)
    np.testing.assert_array_equal(np.asarray(step(x)), a)
    np.testing.assert_array_equal(np.asarray(step(x)), b)


def test_explicit_generator_inside_jaxmodule_compile():
    g = jaxmodule.Generator().manual_seed(3)
    step = jaxmodule.compile(
        lambda x, g: x + jaxmodule.normal(jnp.zeros(2), jnp.ones(2), generator=g)
    )
    a, b = np.asarray(step(jnp.zeros(2), g)), np.asarray(step(jnp.zeros(2), g))
    assert not np.array_equal(a, b)


def test_plain_jit_with_the_global_generator_raises_the_hint():
    with pytest.raises(RuntimeError, match="jaxmodule.compile"):
        jax.jit(lambda x: x + jaxmodule.randperm(3))(jnp.zeros(3))
