"""Global generator, Generator objects, factory helpers and grad-mode switches against torch.

Random numbers cannot match torch bit for bit (different generators); tests check reproducibility,
independence, shapes and dtypes. Documented difference: without JAX x64 mode, torch's int64
defaults (integer `tensor`, `randint`, `arange`, `full`) are int32.
"""

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import to_numpy


def _torch_dtype_name(t, x64):
    name = str(t.dtype).replace("torch.", "")
    if not x64:
        name = {"int64": "int32", "float64": "float32", "complex128": "complex64"}.get(name, name)
    return name


def test_manual_seed_reproducible_linear_init():
    jaxmodule.manual_seed(7)
    a = nn.Linear(4, 3)
    jaxmodule.manual_seed(7)
    b = nn.Linear(4, 3)
    jaxmodule.manual_seed(8)
    c = nn.Linear(4, 3)
    np.testing.assert_array_equal(to_numpy(a.weight), to_numpy(b.weight))
    np.testing.assert_array_equal(to_numpy(a.bias), to_numpy(b.bias))
    assert not np.array_equal(to_numpy(a.weight), to_numpy(c.weight))
    d = nn.Linear(4, 3)  # the generator advanced: the next layer differs
    assert not np.array_equal(to_numpy(c.weight), to_numpy(d.weight))
    # torch's bounds: kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in))
    assert np.abs(to_numpy(a.weight)).max() <= 1 / np.sqrt(4)


def test_manual_seed_returns_generator_and_initial_seed():
    g = jaxmodule.manual_seed(5)
    assert g is jaxmodule.default_generator
    assert isinstance(torch.manual_seed(5), torch.Generator)
    assert jaxmodule.initial_seed() == torch.initial_seed() == 5
    s = jaxmodule.seed()
    assert isinstance(s, int) and jaxmodule.initial_seed() == s
    with pytest.raises(TypeError):
        jaxmodule.manual_seed(1.5)


def test_generator_objects_are_independent():
    g1 = jaxmodule.Generator().manual_seed(3)
    g2 = jaxmodule.Generator().manual_seed(3)
    assert g1.initial_seed() == 3
    jaxmodule.manual_seed(0)
    x1 = jaxmodule.randn(4, generator=g1)
    glob = jaxmodule.randn(4)
    x2 = jaxmodule.randn(4, generator=g2)
    np.testing.assert_array_equal(to_numpy(x1), to_numpy(x2))
    assert not np.array_equal(to_numpy(x1), to_numpy(glob))
    jaxmodule.manual_seed(0)
    np.testing.assert_array_equal(
        to_numpy(jaxmodule.randn(4)), to_numpy(glob)
    )  # g1/g2 did not touch it


def test_get_set_rng_state():
    state = jaxmodule.get_rng_state()
    a = jaxmodule.rand(5)
    b = jaxmodule.rand(5)
    assert not np.array_equal(to_numpy(a), to_numpy(b))
    jaxmodule.set_rng_state(state)
    np.testing.assert_array_equal(to_numpy(jaxmodule.rand(5)), to_numpy(a))
    g = jaxmodule.Generator()
    st = g.get_state()
    v = jaxmodule.randn(2, generator=g)
    g.set_state(st)
    np.testing.assert_array_equal(to_numpy(jaxmodule.randn(2, generator=g)), to_numpy(v))
    with pytest.raises(ValueError, match="shape"):
        g.set_state(np.zeros(3, np.uint32))


def test_generator_pickles():
    import pickle

    g = jaxmodule.Generator().manual_seed(11)
    jaxmodule.randn(1, generator=g)
    g2 = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(
        to_numpy(jaxmodule.randn(3, generator=g)), to_numpy(jaxmodule.randn(3, generator=g2))
    )


@pytest.mark.parametrize(
    "name,args,kwargs",
    [
        ("randn", (2, 3), {}),
        ("randn", ((2, 3),), {}),
        ("rand", (4,), {}),
        ("rand", ([2, 2],), {}),
        ("randn", (2,), {"dtype": "float16"}),
        ("randint", (5, (3, 2)), {}),
        ("randint", (2, 7, (4,)), {}),
        ("zeros", (2, 3), {}),
        ("zeros", ((1, 2),), {}),
        ("ones", (3,), {}),
        ("empty", (2, 2), {}),
        ("ones", (2,), {"dtype": "int32"}),
        ("zeros", (2,), {"dtype": "bool"}),
        ("full", ((2, 2), 1.5), {}),
        ("full", ((2,), 3), {}),
        ("full", ((2,), True), {}),
        ("arange", (5,), {}),
        ("arange", (0.0, 1.0, 0.25), {}),
        ("arange", (1, 7, 2), {}),
    ],
)
def test_factories_shapes_and_dtypes_like_torch(name, args, kwargs):
    jk = {k: (getattr(jnp, v) if k == "dtype" else v) for k, v in kwargs.items()}
    tk = {k: (getattr(torch, v) if k == "dtype" else v) for k, v in kwargs.items()}
    got = getattr(jaxmodule, name)(*args, **jk)
    want = getattr(torch, name)(*args, **tk)
    assert isinstance(got, jax.Array)
    assert got.shape == tuple(want.shape)
    assert str(got.dtype) == _torch_dtype_name(want, x64=False)
    if name in ("zeros", "ones", "full", "arange", "empty"):
        if name != "empty":
            np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    if name == "randint":
        lo, hi = (0, args[0]) if len(args) == 2 else args[:2]
        assert to_numpy(got).min() >= lo and to_numpy(got).max() < hi


@pytest.mark.parametrize(
    "data",
    [
        [1, 2],
        [1.0, 2.5],
        [1, 2.5],
        3,
        1.5,
        True,
        [[True, False]],
        np.arange(3, dtype=np.int16),
        np.ones(2, np.float64),
        np.ones(2, np.float32),
    ],
)
def test_tensor_dtype_inference_like_torch(data):
    got = jaxmodule.tensor(data)
    want = torch.tensor(data)
    assert got.shape == tuple(want.shape)
    assert str(got.dtype) == _torch_dtype_name(want, x64=False)
    np.testing.assert_array_equal(to_numpy(got), to_numpy(want).astype(to_numpy(got).dtype))


def test_tensor_dtype_inference_with_x64_matches_torch_exactly():
    with jax.enable_x64(True):
        for data in ([1, 2], [1.0], 7, np.ones(2, np.float64)):
            assert str(jaxmodule.tensor(data).dtype) == _torch_dtype_name(
                torch.tensor(data), x64=True
            )
        assert str(jaxmodule.randint(3, (2,)).dtype) in ("int32", "int64")


def test_tensor_from_torch_and_device():
    t = torch.arange(4, dtype=torch.bfloat16)
    got = jaxmodule.tensor(t)
    assert got.dtype == jnp.bfloat16 and to_numpy(got).tolist() == [0.0, 1.0, 2.0, 3.0]
    dev = jax.devices("cpu")[2]
    assert jaxmodule.tensor([1.0], device="cpu:2").devices() == {dev}
    assert jaxmodule.tensor([1, 2], dtype=jnp.float16).dtype == jnp.float16


def test_like_helpers():
    x = jnp.ones((2, 3), jnp.float16)
    for name in ("zeros_like", "ones_like", "randn_like", "rand_like"):
        out = getattr(jaxmodule, name)(x)
        assert out.shape == (2, 3) and out.dtype == jnp.float16
    assert jaxmodule.zeros_like(nn.Parameter(jnp.ones(2))).shape == (2,)


def test_random_statistics():
    x = to_numpy(jaxmodule.randn(200, 50))
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05
    u = to_numpy(jaxmodule.rand(10000))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02


# ---- grad mode -------------------------------------------------------------------------------
LIBS = (("torch", torch), ("jaxmodule", jaxmodule))


def _grad_scenario(lib):
    log = [lib.is_grad_enabled()]
    with lib.no_grad():
        log.append(lib.is_grad_enabled())
        with lib.enable_grad():
            log.append(lib.is_grad_enabled())
            with lib.no_grad():
                log.append(lib.is_grad_enabled())
            log.append(lib.is_grad_enabled())
        log.append(lib.is_grad_enabled())
    log.append(lib.is_grad_enabled())

    @lib.no_grad()
    def f():
        return lib.is_grad_enabled()

    @lib.no_grad
    def f_bare():
        return lib.is_grad_enabled()

    log += [f(), f_bare(), lib.is_grad_enabled()]

    @lib.enable_grad()
    def g():
        return lib.is_grad_enabled()

    with lib.no_grad():
        log.append(g())

    lib.set_grad_enabled(False)
    log.append(lib.is_grad_enabled())
    lib.set_grad_enabled(True)
    log.append(lib.is_grad_enabled())
    with lib.set_grad_enabled(False):
        log.append(lib.is_grad_enabled())
    log.append(lib.is_grad_enabled())

    @lib.set_grad_enabled(False)
    def h():
        return lib.is_grad_enabled()

    log.append(lib.is_grad_enabled())  # decorating does not change the mode
    log.append(h())
    log.append(lib.is_grad_enabled())
    with lib.inference_mode():
        log.append(lib.is_grad_enabled())
    with lib.inference_mode(False):
        log.append(lib.is_grad_enabled())

    @lib.inference_mode
    def k():
        return lib.is_grad_enabled()

    log.append(k())
    try:
        with lib.no_grad():
            raise KeyError
    except KeyError:
        pass
    log.append(lib.is_grad_enabled())  # restored after an exception
    return log


def test_grad_mode_like_torch():
    assert _grad_scenario(jaxmodule) == _grad_scenario(torch)


def test_no_grad_decorator_keeps_function_metadata():
    @jaxmodule.no_grad()
    def documented(x):
        """doc"""
        return x

    assert documented.__name__ == "documented" and documented.__doc__ == "doc"
    assert documented(3) == 3


def test_no_grad_allows_inplace_on_parameters_only_inside():
    p = nn.Parameter(jnp.ones(2))
    with pytest.raises(RuntimeError, match="in-place operation"):
        p.fill_(0.0)
    with jaxmodule.no_grad():
        p.fill_(0.0)
    with jaxmodule.set_grad_enabled(False):
        p.add_(1.0)
    assert to_numpy(p).tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "call",
    [
        lambda d: jaxmodule.zeros(2, device=d),
        lambda d: jaxmodule.ones(2, device=d),
        lambda d: jaxmodule.empty(2, device=d),
        lambda d: jaxmodule.full((2,), 1.0, device=d),
        lambda d: jaxmodule.randn(2, device=d),
        lambda d: jaxmodule.rand(2, device=d),
        lambda d: jaxmodule.randint(3, (2,), device=d),
        lambda d: jaxmodule.arange(3, device=d),
        lambda d: jaxmodule.tensor([1.0], device=d),
    ],
)
def test_factories_honour_device(call):
    """Regression: the factories accepted `device=` and ignored it."""
    cpus = jax.devices("cpu")
    assert call("cpu:5").devices() == {cpus[5]}
    assert call(cpus[2]).devices() == {cpus[2]}
    assert call(None).devices() == {cpus[0]}
    with pytest.raises(RuntimeError, match="devices that exist"):
        call("cuda")
