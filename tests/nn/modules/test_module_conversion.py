"""dtype and device conversion (`half`, `to`, `cpu`, `cuda`, `to_empty`, ...) against torch.

Documented differences: `double()`/`to(float64)` need JAX's x64 mode (RuntimeError naming
`jax_enable_x64` otherwise); `type(dst)` casts floating arrays only (torch casts every tensor);
devices are JAX devices (8 simulated CPUs in tests) and accelerator moves raise RuntimeError
naming the devices that exist.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import to_numpy
from tests.nn.modules._module_trees import JM, RICH, TORCH, build, errors, same_error


def _dtypes(m):
    return [(k, str(v.dtype).replace("torch.", "")) for k, v in m.state_dict().items()] + [
        (k, str(v.dtype).replace("torch.", ""))
        for k, v in m.named_buffers()
        if k.endswith(("mask", "scratch"))
    ]


def _values(m):
    return [(k, to_numpy(v).astype(np.float64).tolist()) for k, v in m.state_dict().items()]


@pytest.mark.parametrize(
    "method,args",
    [
        ("half", ()),
        ("bfloat16", ()),
        ("float", ()),
        ("to", (torch.float16,)),
        ("to", (jnp.bfloat16,)),
        ("to", ("float16",)),
        ("to", ()),
        ("type", (torch.float16,)),
    ],
)
def test_dtype_casts_like_torch(method, args):
    t, j = build(TORCH, RICH), build(JM, RICH)
    targs = tuple(
        torch.bfloat16 if a is jnp.bfloat16 else torch.float16 if a == "float16" else a
        for a in args
    )
    if (
        method == "type"
    ):  # torch's type() casts integer buffers too; jaxmodule keeps them (documented)
        t.leaf.count = t.leaf.count.float()
        j.leaf.count = j.leaf.count.astype(jnp.float32)
    cells = [p for p in j.parameters()]
    out_t = getattr(t, method)(*targs)
    out_j = getattr(j, method)(*args)
    assert out_t is t and out_j is j
    assert _dtypes(j) == _dtypes(t)
    assert [p for p in j.parameters()] == cells and all(
        a is b for a, b in zip(j.parameters(), cells)
    )
    assert j.dec.tied is j.enc.w
    np.testing.assert_allclose(
        np.array([v for _, vs in _values(j) for v in np.ravel(vs)]),
        np.array([v for _, vs in _values(t) for v in np.ravel(vs)]),
    )


def test_integer_buffers_stay_integer():
    j = build(JM, RICH)
    for method in ("half", "bfloat16", "float"):
        getattr(j, method)()
        assert j.leaf.count.dtype == jnp.int32
    j.to(jnp.float16)
    assert j.leaf.count.dtype == jnp.int32
    j.type(jnp.bfloat16)
    assert j.leaf.count.dtype == jnp.int32 and j.alpha.dtype == jnp.bfloat16


@pytest.mark.parametrize("dtype", ["int32", "int8", "bool"])
def test_to_integer_dtype_raises_type_error(dtype):
    t, j = build(TORCH, RICH), build(JM, RICH)
    same_error(
        lambda: t.to(getattr(torch, dtype)),
        lambda: j.to(getattr(jnp, dtype)),
        "nn.Module.to only accepts floating point or complex dtypes, but got desired dtype=",
    )


def test_double_without_x64_raises():
    j = build(JM, RICH)
    for call in (
        j.double,
        lambda: j.to(jnp.float64),
        lambda: j.to(torch.float64),
        lambda: j.type(torch.double),
    ):
        with pytest.raises(RuntimeError, match="jax_enable_x64"):
            call()
    assert j.alpha.dtype == jnp.float32


def test_double_with_x64():
    with jax.enable_x64(True):
        t, j = build(TORCH, RICH), build(JM, RICH)
        assert j.double() is j
        t.double()
        assert _dtypes(j) == _dtypes(t)
        assert j.alpha.dtype == jnp.float64 and j.leaf.count.dtype == jnp.int32
        j.float()
        assert j.alpha.dtype == jnp.float32


def test_grad_is_converted_too():
    m = nn.Linear(2, 2)
    m.weight.grad = jnp.ones((2, 2))
    m.half()
    assert m.weight.grad.dtype == jnp.float16


# ---- devices ---------------------------------------------------------------------------------
def _devices(m):
    return {n: p.device for n, p in (*m.named_parameters(), *m.named_buffers())}


def test_to_cpu_and_indexed_cpu():
    cpus = jax.devices("cpu")
    assert len(cpus) == 8
    j = build(JM, RICH)
    assert j.to("cpu:3") is j
    assert set(_devices(j).values()) == {cpus[3]}
    assert j.to(cpus[5]) is j and set(_devices(j).values()) == {cpus[5]}
    assert j.to(device="cpu") is j and set(_devices(j).values()) == {cpus[0]}
    assert j.to(torch.device("cpu", 2)) is j and set(_devices(j).values()) == {cpus[2]}
    assert j.cpu() is j and set(_devices(j).values()) == {cpus[0]}
    j.to("cpu:1", jnp.float16)
    assert set(_devices(j).values()) == {cpus[1]} and j.alpha.dtype == jnp.float16


def test_to_shardings():
    cpus = jax.devices("cpu")
    j = nn.Linear(4, 8)
    assert j.to(jax.sharding.SingleDeviceSharding(cpus[6])) is j
    assert j.weight.device == cpus[6]
    mesh = jax.sharding.Mesh(np.array(cpus), ("d",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    j.to(replicated)
    assert j.weight._value.sharding == replicated and len(j.weight._value.devices()) == 8
    out = j(jnp.ones((2, 4)))
    assert out.shape == (2, 8)


def test_to_array_takes_dtype_and_device():
    cpus = jax.devices("cpu")
    j = build(JM, RICH)
    ref = jax.device_put(jnp.zeros(1, jnp.float16), cpus[4])
    j.to(ref)
    assert j.alpha.dtype == jnp.float16 and j.alpha.device == cpus[4]


@pytest.mark.parametrize("method", ["cuda", "xpu", "ipu", "mtia"])
def test_accelerators_raise_naming_devices(method):
    j = build(JM, RICH)
    before = _devices(j)
    with pytest.raises(RuntimeError, match=r"devices that exist are: \[CpuDevice\(id=0\)"):
        getattr(j, method)()
    with pytest.raises(RuntimeError, match="CpuDevice"):
        getattr(j, method)(1)
    assert _devices(j) == before


def test_to_bad_device_index_and_name():
    j = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="out of range"):
        j.to("cpu:8")
    with pytest.raises(RuntimeError, match="cuda"):
        j.to("cuda")
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        j.to(devic="cpu")


def test_to_empty_like_torch():
    t, j = build(TORCH, RICH), build(JM, RICH)
    assert t.to_empty(device="cpu") is t
    assert j.to_empty(device="cpu") is j
    assert [(k, tuple(v.shape)) for k, v in j.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in t.state_dict().items()
    ]
    assert _dtypes(j) == _dtypes(t)
    j.to_empty(device=jax.devices("cpu")[2], recurse=False)
    assert j.alpha.device == jax.devices("cpu")[2] and j.enc.w.device == jax.devices("cpu")[0]


def test_share_memory_returns_self():
    t, j = build(TORCH, RICH), build(JM, RICH)
    before = to_numpy(j.alpha).tolist()
    assert t.share_memory() is t and j.share_memory() is j
    assert to_numpy(j.alpha).tolist() == before


def test_bfloat16_outputs_close_to_torch():
    tt = torch.nn.Linear(3, 2)
    j = nn.Linear(3, 2)
    j.load_state_dict(tt.state_dict())
    x = np.ones((1, 3), np.float32)
    tt.bfloat16()
    j.bfloat16()
    assert j.weight.dtype == jnp.bfloat16
    # bfloat16 keeps ~3 significant digits; accumulation order differs between the libraries.
    np.testing.assert_allclose(
        to_numpy(j(jnp.asarray(x, jnp.bfloat16))),
        to_numpy(tt(torch.from_numpy(x).bfloat16())),
        rtol=1e-2,
        atol=1e-2,
    )


@pytest.mark.parametrize(
    "args,kwargs",
    [
        ((None,), {}),
        (("cpu", torch.float16, True), {}),
        ((torch.ones(1, dtype=torch.float16),), {}),
        ((torch.int64,), {}),
        (("cpu:0",), {}),
        ((), {}),
        ((), {"device": "cpu", "dtype": torch.float16}),
        ((), {"dtype": torch.bfloat16}),
        ((), {"non_blocking": True}),
        ((), {"device": None}),
        (("banana",), {}),
    ],
)
def test_to_argument_forms_like_torch(args, kwargs):
    t, j = torch.nn.Linear(1, 1), nn.Linear(1, 1)
    te, je = errors(lambda: t.to(*args, **kwargs)), errors(lambda: j.to(*args, **kwargs))
    assert type(je) is type(te), (je, te)
    assert str(j.weight.dtype) == str(t.weight.dtype).replace("torch.", "")
    if args == ("banana",):
        assert "device type at start of device string: banana" in str(je)
