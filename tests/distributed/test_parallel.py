"""DP, FSDP and TP on 8 simulated CPU devices (set by tests/conftest.py before jax is imported).

Each strategy trains the same model from the same seed for several compiled steps and must end
with the parameters one device reaches; every array must keep its sharding after every step
(parameters, gradients, optimizer-state leaves), each device must hold exactly its shard, and the
second step must not compile again.

Tolerance: the sharded programs sum the batch gradient in another order (per-device partial sums
then an all-reduce), so float32 results differ by a few ulps per step; 1e-5 relative with a 1e-6
absolute floor for values near zero.
"""

import jax
import jax.numpy as jnp
import jaxmodule as jm
import jaxmodule.distributed as dist
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jaxmodule import nn, optim

assert jax.device_count() == 8, (
    "tests/conftest.py sets 8 simulated CPU devices before jax is imported"
)

RTOL, ATOL = 1e-5, 1e-6


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc3(jax.nn.relu(self.fc2(jax.nn.relu(self.fc1(x)))))


def _batch(mesh=None):
    x = np.random.RandomState(0).randn(16, 32).astype(np.float32)
    y = np.random.RandomState(1).randint(0, 10, 16)
    if mesh is None:
        return jnp.asarray(x), jnp.asarray(y)
    placements = [dist.Shard(0)] + [dist.Replicate()] * (
        len(mesh.axis_names) - 1
    )  # batch over the first axis
    return dist.distribute_tensor(x, mesh, placements), dist.distribute_tensor(y, mesh, placements)


def _shardings(tree):
    return jax.tree.map(lambda a: a.sharding, tree)


def _train(strategy, opt_name, *, opt_after=False, steps=4, scheduler=False):
    jm.manual_seed(0)
    model = Net()
    make_opt = {
        "sgd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
        "adamw": lambda ps: optim.AdamW(ps, lr=1e-2),
    }[opt_name]
    opt = None if opt_after else make_opt(model.parameters())
    mesh = dist.init_device_mesh("cpu", (8,))
    if strategy == "dp":
        dist.replicate(model, mesh)
    elif strategy == "fsdp":
        dist.fully_shard(model, mesh=mesh)
    elif strategy == "tp":
        mesh = dist.init_device_mesh("cpu", (8,), mesh_dim_names=("tp",))
        dist.parallelize_module(
            model, mesh, {"fc1": dist.ColwiseParallel(), "fc2": dist.RowwiseParallel()}
        )
    elif strategy == "fsdp+tp":
        mesh = dist.init_device_mesh("cpu", (2, 4), mesh_dim_names=("dp", "tp"))
        dist.parallelize_module(
            model, mesh, {"fc1": dist.ColwiseParallel(), "fc2": dist.RowwiseParallel()}
        )
        dist.fully_shard(model, mesh=mesh)
    if opt_after:
        opt = make_opt(model.parameters())
    sched = optim.lr_scheduler.ExponentialLR(opt, gamma=0.9) if scheduler else None
    x, y = _batch(None if strategy in ("single", "tp") else mesh)

    @jm.compile
    def step(x, y):
        opt.zero_grad()
        loss = jm.backward(lambda: nn.functional.cross_entropy(model(x), y))
        opt.step()
        if sched is not None:
            sched.step()
        return loss

    placed = _shardings(model.state_dict())
    opt_placed = _shardings(opt._jm_state_get())
    for _ in range(steps):
        step(x, y)
        if strategy != "single":
            assert _shardings(model.state_dict()) == placed
            assert _shardings(opt._jm_state_get()) == opt_placed
    assert step.trace_count == 1
    assert step._entries[0].program.jitted._cache_size() == 1  # step 2 did not compile again
    return model, opt


@pytest.fixture(scope="module")
def reference():
    out = {}
    for opt_name in ("sgd", "adamw"):
        model, _ = _train("single", opt_name)
        out[opt_name] = {k: np.asarray(v) for k, v in model.state_dict().items()}
    return out


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
@pytest.mark.parametrize("strategy", ["dp", "fsdp", "tp", "fsdp+tp"])
def test_strategies_match_one_device(reference, strategy, opt_name):
    model, _ = _train(strategy, opt_name)
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(
            np.asarray(v), reference[opt_name][k], rtol=RTOL, atol=ATOL, err_msg=k
        )


def test_optimizer_built_after_sharding_and_scheduler_never_recompile(reference):
    model, opt = _train("fsdp", "adamw", opt_after=True)
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(
            np.asarray(v), reference["adamw"][k], rtol=RTOL, atol=ATOL, err_msg=k
        )
    model, opt = _train("fsdp", "sgd", scheduler=True, steps=5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**5)


def test_fsdp_placement_and_each_device_holds_its_shard():
    model = Net()
    opt = optim.AdamW(model.parameters(), lr=1e-3)  # built before: its state moves too
    mesh = dist.init_device_mesh("cpu", (8,))
    dist.fully_shard(model, mesh=mesh)
    w = model.fc1.weight._value
    assert w.sharding == NamedSharding(mesh, P("data"))
    full = np.asarray(w)
    for shard in w.addressable_shards:
        assert shard.data.shape == (8, 32)
        np.testing.assert_array_equal(np.asarray(shard.data), full[shard.index])
    assert len({s.device for s in w.addressable_shards}) == 8
    # fc3 (10, 64): 10 rows do not split over 8 devices, so it is replicated, with the reason
    plan = dist.sharding_plan(model)
    assert plan["fc3.weight"][0] == P()
    assert "size 10" in plan["fc3.weight"][1] and plan["fc1.weight"][1] == ""
    assert set(plan.replicated()) == {"fc3.weight", "fc3.bias"}
    # the optimizer's moments follow their parameter; step counts and options are replicated
    leaves = jax.tree.leaves(
        opt._states[0][0]
    )  # fc1.weight's optax state (torch creates it at step 1)
    moments = [x for x in leaves if x.shape == (64, 32)]
    assert len(moments) == 2 and all(x.sharding == w.sharding for x in moments)
    assert all(x.sharding == NamedSharding(mesh, P()) for x in leaves if x.shape != (64, 32))
    assert all(x.sharding == NamedSharding(mesh, P()) for x in jax.tree.leaves(opt._hp))


def _eager_steps(model, opt, x, y, steps=2):
    """Uncompiled torch-style training steps."""
    for _ in range(steps):
        opt.zero_grad()
        jm.backward(lambda: nn.functional.cross_entropy(model(x), y))
        opt.step()


def test_eager_training_on_a_sharded_model_keeps_placements():
    model = Net()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    mesh = dist.init_device_mesh("cpu", (8,))
    dist.fully_shard(model, mesh=mesh)
    placed = _shardings(model.state_dict())
    x, y = _batch(mesh)
    _eager_steps(model, opt, x, y)
    for k, v in model.state_dict().items():
        assert v.sharding.is_equivalent_to(placed[k], v.ndim), k


def test_distribute_tensor_placements():
    mesh = dist.init_device_mesh("cpu", (2, 4), mesh_dim_names=("dp", "tp"))
    x = np.arange(8 * 16, dtype=np.float32).reshape(8, 16)
    cases = {
        (dist.Shard(0), dist.Shard(1)): P("dp", "tp"),
        (dist.Replicate(), dist.Shard(0)): P("tp"),
        (dist.Shard(1), dist.Shard(1)): P(None, ("dp", "tp")),
        (dist.Replicate(), dist.Replicate()): P(),
        (dist.Shard(-1), dist.Replicate()): P(None, "dp"),
    }
    for placements, spec in cases.items():
        a = dist.distribute_tensor(x, mesh, list(placements))
        assert a.sharding.is_equivalent_to(NamedSharding(mesh, spec), 2), placements
        np.testing.assert_array_equal(np.asarray(a), x)
        for shard in a.addressable_shards:
            np.testing.assert_array_equal(np.asarray(shard.data), x[shard.index])
    with pytest.raises(ValueError, match="one entry per mesh dimension"):
        dist.distribute_tensor(x, mesh, [dist.Shard(0)])
    with pytest.raises(ValueError, match="dimension 0 of size 4 is not divisible by the 8 devices"):
        dist.distribute_tensor(x[:4], dist.init_device_mesh("cpu", (8,)), [dist.Shard(0)])
    assert repr(dist.Shard(0)) == "Shard(dim=0)" and repr(dist.Replicate()) == "Replicate()"
    assert str(dist.Shard(1)) == "S(1)"


def test_init_device_mesh():
    mesh = dist.init_device_mesh("cpu", (2, 4), mesh_dim_names=("dp", "tp"))
    assert dict(mesh.shape) == {"dp": 2, "tp": 4}
    assert set(mesh.devices.flat) == set(jax.devices("cpu"))
    assert dist.init_device_mesh("cpu", (8,)).axis_names == ("data",)
    with pytest.raises(RuntimeError, match=r"mesh_shape \(3,\) needs 3 devices, but there are 8"):
        dist.init_device_mesh("cpu", (3,))
    with pytest.raises(RuntimeError, match="mesh_dim_names"):
        dist.init_device_mesh("cpu", (2, 4), mesh_dim_names=("a",))
    with pytest.raises(RuntimeError, match="device_type"):
        dist.init_device_mesh("abacus", (8,))


def test_shard_module_rules_are_transactional():
    model = Net()
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    before = {k: (v, v.sharding) for k, v in model.state_dict().items()}
    opt_before = _shardings(opt._jm_state_get())
    mesh = dist.init_device_mesh("cpu", (8,))
    # fc3.weight (10, 64) cannot split 10 rows over 8 devices: an error listing it, nothing moved
    with pytest.raises(
        ValueError,
        match=r"(?s)1 array\(s\) of Net cannot be placed as asked; nothing was moved:\n  fc3\.weight \(10, 64\) -> P\('data',\): dimension 0 of size 10",
    ):
        dist.shard_module(model, mesh, [(r"weight$", P("data", None))])
    for k, v in model.state_dict().items():
        assert v is before[k][0] and v.sharding == before[k][1]
    assert _shardings(opt._jm_state_get()) == opt_before
    with pytest.raises(ValueError, match="not a valid regular expression"):
        dist.shard_module(model, mesh, [("(", P())])
    with pytest.raises(TypeError, match="must be a jax.sharding.Mesh"):
        dist.shard_module(model, "cpu", [])
    # first matching rule wins; unmatched arrays are replicated
    dist.shard_module(
        model, mesh, {r"fc[12]\.weight": P(None, "data"), r"weight": P(), r"fc1\.bias": ("data",)}
    )
    specs = {k: v.sharding.spec for k, v in model.state_dict().items()}
    assert specs == {
        "fc1.weight": P(None, "data"),
        "fc1.bias": P("data"),
        "fc2.weight": P(None, "data"),
        "fc2.bias": P(),
        "fc3.weight": P(),
        "fc3.bias": P(),
    }


def test_parallelize_module_errors_and_wildcards():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.Linear(8, 16)
            self.down = nn.Linear(16, 8)
            self.norm = nn.LayerNorm(8)

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Block() for _ in range(3)])
            self.emb = nn.Embedding(32, 8)

    mesh = dist.init_device_mesh("cpu", (8,), mesh_dim_names=("tp",))
    model = Stack()
    dist.parallelize_module(
        model,
        mesh,
        {
            "layers.*.up": dist.ColwiseParallel(),
            "layers.*.down": dist.RowwiseParallel(),
            "emb": dist.RowwiseParallel(),
        },
    )
    for b in model.layers:
        assert b.up.weight.sharding.spec == P("tp") and b.up.bias.sharding.spec == P("tp")
        assert b.down.weight.sharding.spec == P(None, "tp") and b.down.bias.sharding.spec == P()
        assert b.norm.weight.sharding.spec == P()
    assert model.emb.weight.sharding.spec == P("tp")
    with pytest.raises(
        NotImplementedError,
        match="ColwiseParallel currently only support nn.Linear and nn.Embedding!",
    ):
        dist.parallelize_module(model, mesh, {"layers.0.norm": dist.ColwiseParallel()})
    with pytest.warns(UserWarning, match="could not be resolved"):
        dist.parallelize_module(model, mesh, {"nothing": dist.ColwiseParallel()})
    with pytest.raises(TypeError, match="Expect Union"):
        dist.parallelize_module(model, mesh, [dist.ColwiseParallel()])


def test_out_shardings_applies_to_the_result_only():
    model = Net()
    opt = optim.SGD(model.parameters(), lr=0.1)
    mesh = dist.init_device_mesh("cpu", (8,))
    dist.fully_shard(model, mesh=mesh)
    placed = _shardings(model.state_dict())
    x, y = _batch(mesh)
    replicated = NamedSharding(mesh, P())

    @jm.compile(out_shardings=replicated)
    def step(x, y):
        opt.zero_grad()
        out = model(x)
        jm.backward(lambda: nn.functional.cross_entropy(model(x), y))
        opt.step()
        return out

    out = step(x, y)
    assert out.sharding == replicated
    assert _shardings(model.state_dict()) == placed


def test_restore_into_a_different_mesh(tmp_path):
    src = Net()
    dist.fully_shard(src, mesh=dist.init_device_mesh("cpu", (8,)))
    jm.save(src.state_dict(), str(tmp_path / "ckpt"))
    dst = Net()
    mesh = dist.init_device_mesh("cpu", (2, 4), mesh_dim_names=("dp", "tp"))
    dist.parallelize_module(
        dst, mesh, {"fc1": dist.ColwiseParallel(), "fc2": dist.RowwiseParallel()}
    )
    placed = _shardings(dst.state_dict())
    sd = jm.load(str(tmp_path / "ckpt"), map_location=dict(placed))
    for k, v in sd.items():
        assert v.sharding == placed[k], k
    dst.load_state_dict(sd)
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(src.state_dict()[k]))
        assert v.sharding == placed[k]


def test_meta_init_fully_shard_to_empty_then_initialise():
    """torch's FSDP2 flow: build on meta, shard, allocate shards in place, initialise, train."""
    jm.manual_seed(0)
    with jm.device("meta"):
        model = Net()
    assert all(p.is_meta for p in model.parameters())
    step_model = jm.compile(lambda x: model(x))
    with pytest.raises(
        RuntimeError, match="jaxmodule.compile: this Parameter/Buffer is on the meta device"
    ):
        step_model(jnp.ones((2, 32)))
    mesh = dist.init_device_mesh("cpu", (8,))
    dist.fully_shard(model, mesh=mesh)
    assert model.fc1.weight._value.sharding == NamedSharding(mesh, P("data"))  # planned, still meta
    with jax.transfer_guard("disallow"):
        model.to_empty(device="cpu")
    for m in (model.fc1, model.fc2, model.fc3):
        m.reset_parameters()
    for k, v in model.state_dict().items():
        assert not model.get_parameter(k).is_meta
        assert v.sharding == NamedSharding(mesh, dist.sharding_plan(model)[k][0]), k
    # same seed, same values as an eager build (the meta build drew nothing); the sharded draw is
    # one jitted `a + (b - a) * u`, which XLA fuses, so values may differ from eager by 1 ulp
    jm.manual_seed(0)
    eager = Net()
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(
            np.asarray(v), np.asarray(eager.state_dict()[k]), rtol=1e-6, atol=3e-8
        )
    # in-place writes on a sharded cell keep its placement
    model.fc1.weight.data.fill_(0.5)
    assert model.fc1.weight._value.sharding == NamedSharding(mesh, P("data"))


def test_optax_transformation_optimizer_on_a_sharded_model():
    import optax

    model = Net()
    mesh = dist.init_device_mesh("cpu", (8,))
    dist.fully_shard(model, mesh=mesh)
    opt = optim.Optimizer(model.parameters(), optax.adam(1e-2))
    placed = _shardings(model.state_dict())
    x, y = _batch(mesh)
    _eager_steps(model, opt, x, y)
    assert _shardings(model.state_dict()) == placed
    mu = opt._states[0][0].mu  # optax.adam's first moments, one per parameter
    assert [m.sharding for m in mu] == [p._value.sharding for p in model.parameters()]
