"""state_dict / load_state_dict and their hooks against torch on the same trees.

Deliberate difference (documented in `_state_dict.py`): a failed `load_state_dict` changes nothing
in jaxmodule, whereas torch has already copied the entries that matched. Tests assert the
stronger behaviour.
"""

import re
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, to_numpy
from tests.nn.modules._module_trees import JM, LIBS, RICH, TORCH, build, same_error, snapshot


def _np_sd(sd):
    return [(k, to_numpy(v).shape, to_numpy(v).tolist()) for k, v in sd.items()]


def _torch_to_jm_sd(sd):
    return OrderedDict((k, jnp.asarray(to_numpy(v))) for k, v in sd.items())


# ---- saving ----------------------------------------------------------------------------------
def test_state_dict_keys_order_values():
    t, j = build(TORCH, RICH), build(JM, RICH)
    tsd, jsd = t.state_dict(), j.state_dict()
    assert _np_sd(jsd) == _np_sd(tsd)
    assert "scratch" not in jsd and "enc.mask" not in jsd  # non-persistent buffers excluded
    assert "empty" not in jsd and "gone" not in jsd  # None entries excluded
    assert all(isinstance(v, jax.Array) for v in jsd.values())
    assert isinstance(jsd, OrderedDict)


def test_state_dict_metadata_like_torch():
    t, j = build(TORCH, RICH), build(JM, RICH)
    assert dict(j.state_dict()._metadata) == dict(t.state_dict()._metadata)
    assert dict(j.state_dict(prefix="m.")._metadata) == dict(t.state_dict(prefix="m.")._metadata)


def test_state_dict_prefix_destination_keep_vars():
    t, j = build(TORCH, RICH), build(JM, RICH)
    tdest, jdest = OrderedDict(first=1), OrderedDict(first=1)
    tout = t.state_dict(destination=tdest, prefix="model.", keep_vars=True)
    jout = j.state_dict(destination=jdest, prefix="model.", keep_vars=True)
    assert jout is jdest and tout is tdest
    assert list(jout) == list(tout)
    assert jout["model.alpha"] is j.alpha and jout["model.enc.lin.weight"] is j.enc.lin.weight
    assert isinstance(jout["model.alpha"], nn.Parameter) and isinstance(
        jout["model.stat"], nn.Buffer
    )
    assert jout["model.dec.tied"] is jout["model.enc.w"]


def test_state_dict_positional_args_like_torch():
    t, j = build(TORCH, RICH), build(JM, RICH)
    with pytest.warns(FutureWarning):
        tout = t.state_dict(OrderedDict(), "pre.", True)
    jout = j.state_dict(OrderedDict(), "pre.", True)
    assert list(jout) == list(tout)
    assert isinstance(jout["pre.alpha"], nn.Parameter)


def _extra_classes(L):
    class WithExtra(L.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = L.nn.Parameter(L.arr(np.ones(2, np.float32)))
            self.config = {"k": 1}

        def get_extra_state(self):
            return dict(self.config)

        def set_extra_state(self, state):
            self.config = dict(state)

    class Outer(L.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = WithExtra()
            self.b = L.nn.Parameter(L.arr(np.zeros(1, np.float32)))

    return WithExtra, Outer


def test_extra_state_round_trip():
    out = {}
    for L in LIBS:
        _, Outer = _extra_classes(L)
        m = Outer()
        sd = m.state_dict()
        out[L.name] = list(sd), sd["inner._extra_state"]
        m2 = Outer()
        m2.inner.config = {"k": 5}
        sd2 = m2.state_dict()
        res = m.load_state_dict(sd2)
        assert m.inner.config == {"k": 5}
        assert repr(res) == "<All keys matched successfully>"
        # missing extra state is a missing key
        del sd2["inner._extra_state"]
        err = pytest.raises(RuntimeError, m.load_state_dict, sd2).value
        assert 'Missing key(s) in state_dict: "inner._extra_state"' in str(err)
    assert out["jaxmodule"] == out["torch"]


# ---- loading ---------------------------------------------------------------------------------
def test_load_torch_state_dict_round_trip():
    t, j = build(TORCH, RICH, seed=1), build(JM, RICH, seed=0)
    result = j.load_state_dict(t.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert _np_sd(j.state_dict()) == _np_sd(t.state_dict())


@pytest.mark.parametrize("kind", ["jax", "numpy", "torch", "torch_bf16", "jax_f16"])
def test_load_accepts_array_kinds(kind):
    t = build(TORCH, RICH, seed=3)
    j = build(JM, RICH)
    src = t.state_dict()
    conv = {
        "jax": lambda v: jnp.asarray(v.numpy()),
        "numpy": lambda v: v.numpy(),
        "torch": lambda v: v,
        "torch_bf16": lambda v: v.to(torch.bfloat16) if v.is_floating_point() else v,
        "jax_f16": lambda v: (
            jnp.asarray(v.numpy()).astype(jnp.float16)
            if v.is_floating_point()
            else jnp.asarray(v.numpy())
        ),
    }[kind]
    sd = OrderedDict((k, conv(v)) for k, v in src.items())
    j.load_state_dict(sd)
    # Loaded values take the model's dtype (as torch's copy_ does).
    t.load_state_dict(
        OrderedDict((k, torch.from_numpy(np.array(to_numpy(v)))) for k, v in sd.items())
    )
    for (k, a), (k2, b) in zip(j.state_dict().items(), t.state_dict().items()):
        assert k == k2
        assert str(to_numpy(a).dtype) == str(to_numpy(b).dtype)
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_load_strict_false_returns_keys_like_torch():
    t, j = build(TORCH, RICH), build(JM, RICH)
    sd = t.state_dict()
    del sd["alpha"], sd["enc.lin.bias"]
    sd["bogus"] = torch.zeros(1)
    sd["enc.bogus"] = torch.zeros(1)
    sd["nochild.x"] = torch.zeros(1)
    sd["scratch"] = torch.zeros(2)  # non-persistent buffers are unexpected
    tres = t.load_state_dict(sd, strict=False)
    jres = j.load_state_dict(_torch_to_jm_sd(sd), strict=False)
    assert jres.missing_keys == tres.missing_keys
    assert jres.unexpected_keys == tres.unexpected_keys
    assert repr(jres) == repr(tres)
    assert type(jres).__name__ == type(tres).__name__
    missing, unexpected = jres
    assert missing == tres.missing_keys and unexpected == tres.unexpected_keys


def _message_parts(msg):
    """Key lists (quoted names) per line of a load_state_dict error message."""
    lines = msg.split("\n\t")
    return lines[0], [(line.split(":")[0], re.findall(r'"([^"]+)"', line)) for line in lines[1:]]


def test_strict_error_lists_everything_at_once_like_torch():
    t, j = build(TORCH, RICH), build(JM, RICH)
    sd = t.state_dict()
    del sd["alpha"], sd["dec.v"]
    sd["extra_key"] = torch.zeros(1)
    sd["enc.lin.extra"] = torch.zeros(1)
    sd["beta"] = torch.zeros(3, 3)  # size mismatch
    sd["enc.mean"] = torch.zeros(5)  # size mismatch
    before = snapshot(j)
    te = pytest.raises(RuntimeError, t.load_state_dict, sd).value
    je = pytest.raises(RuntimeError, j.load_state_dict, _torch_to_jm_sd(sd)).value
    t_head, t_parts = _message_parts(str(te))
    j_head, j_parts = _message_parts(str(je))
    assert j_head == t_head == "Error(s) in loading state_dict for Block:"
    assert [p[0] for p in j_parts] == [p[0] for p in t_parts]
    assert j_parts[:2] == t_parts[:2]
    mismatch = r"size mismatch for ([\w.]+): copying a param with shape"
    assert re.findall(mismatch, str(je)) == re.findall(mismatch, str(te)) == ["beta", "enc.mean"]
    assert (
        "size mismatch for beta: copying a param with shape (3, 3) from checkpoint, "
        "the shape in current model is (2, 2)." in str(je)
    )
    assert "size mismatch for enc.mean" in str(je)
    # Stronger than torch: nothing was copied.
    assert snapshot(j) == before


def test_failed_load_changes_nothing_even_for_matching_keys():
    j = build(JM, RICH, seed=0)
    donor = build(JM, RICH, seed=5).state_dict()
    donor["alpha"] = jnp.zeros(4)
    before = snapshot(j)
    with pytest.raises(RuntimeError, match="size mismatch for alpha"):
        j.load_state_dict(donor)
    assert snapshot(j) == before
    with pytest.raises(RuntimeError, match="Unexpected key"):
        j.load_state_dict({**build(JM, RICH, seed=5).state_dict(), "zzz": jnp.zeros(1)})
    assert snapshot(j) == before
    # strict=False with a size mismatch still raises and still changes nothing
    with pytest.raises(RuntimeError, match="size mismatch for alpha"):
        j.load_state_dict(donor, strict=False)
    assert snapshot(j) == before


def test_failed_load_restores_extra_state_and_survives_hook_error():
    WithExtra, Outer = _extra_classes(JM)
    m = Outer()
    good = Outer()
    good.inner.config = {"k": 9}
    sd = good.state_dict()
    sd["b"] = jnp.zeros(7)
    with pytest.raises(RuntimeError, match="size mismatch for b"):
        m.load_state_dict(sd)
    assert m.inner.config == {"k": 1}

    def boom(*args):
        raise ValueError("hook failed")

    m.register_load_state_dict_pre_hook(boom)
    sd = good.state_dict()
    before = to_numpy(m.inner.w).tolist()
    with pytest.raises(ValueError, match="hook failed"):
        m.load_state_dict(sd)
    assert m.inner.config == {"k": 1} and to_numpy(m.inner.w).tolist() == before


@pytest.mark.parametrize(
    "value,part",
    [
        (3, 'While copying the parameter named "alpha"'),
        ("text", 'While copying the parameter named "alpha"'),
    ],
)
def test_non_array_value_errors(value, part):
    t, j = build(TORCH, RICH), build(JM, RICH)
    tsd, jsd = t.state_dict(), j.state_dict()
    tsd["alpha"] = value
    jsd["alpha"] = value
    before = snapshot(j)
    same_error(lambda: t.load_state_dict(tsd), lambda: j.load_state_dict(jsd), part)
    assert snapshot(j) == before


def test_not_a_mapping():
    t, j = build(TORCH, RICH), build(JM, RICH)
    same_error(
        lambda: t.load_state_dict([1, 2]),
        lambda: j.load_state_dict([1, 2]),
        "Expected state_dict to be dict-like, got <class 'list'>.",
    )


def test_scalar_parameter_accepts_shape_1():
    for L in LIBS:
        m = L.nn.Module()
        m.s = L.nn.Parameter(L.arr(np.array(1.0, np.float32)))
        m.load_state_dict({"s": L.arr(np.array([4.0], np.float32))})
        assert tuple(m.s.shape) == () and to_numpy(m.s).tolist() == 4.0


def test_assign_true_keeps_incoming_dtype_like_torch():
    t, j = build(TORCH, RICH), build(JM, RICH)
    sd = OrderedDict(
        (k, v.half() if v.is_floating_point() else v) for k, v in t.state_dict().items()
    )
    t.load_state_dict(sd, assign=True)
    cell = j.enc.lin.weight
    j.load_state_dict(sd, assign=True)
    assert [(k, str(v.dtype).replace("torch.", "")) for k, v in t.state_dict().items()] == [
        (k, str(v.dtype)) for k, v in j.state_dict().items()
    ]
    assert isinstance(t.enc.lin.weight, torch.nn.Parameter) and isinstance(
        j.enc.lin.weight, nn.Parameter
    )
    assert j.enc.lin.weight is cell  # jaxmodule writes into the existing cell (optimizers keep it)
    assert j.dec.tied is j.enc.w


def test_load_into_tied_and_shared():
    t, j = build(TORCH, RICH), build(JM, RICH)
    src = build(TORCH, RICH, seed=7).state_dict()
    t.load_state_dict(src)
    j.load_state_dict(src)
    assert _np_sd(j.state_dict()) == _np_sd(t.state_dict())
    assert j.dec.tied is j.enc.w and j.enc_alias is j.enc


def test_load_keeps_sharding_and_dtype():
    m = nn.Linear(3, 2)
    dev = jax.devices("cpu")[3]
    m.to(dev)
    m.load_state_dict(
        {"weight": np.ones((2, 3), np.float64), "bias": torch.zeros(2, dtype=torch.float64)}
    )
    assert m.weight.dtype == jnp.float32 and m.bias.dtype == jnp.float32
    assert m.weight.device == dev and m.bias.device == dev


# ---- hooks -----------------------------------------------------------------------------------
def _hooked(L, log):
    m = build(
        L,
        {
            "root": {
                "kind": "block",
                "params": [("a", (2,))],
                "children": [("c", {"kind": "linear", "in": 2, "out": 2, "bias": True})],
            }
        },
    )

    def sd_pre(mod, prefix, keep_vars):
        log.append(("sd_pre", type(mod).__name__, prefix, keep_vars))

    def sd_post(mod, sd, prefix, local_metadata):
        log.append(("sd_post", type(mod).__name__, prefix, list(sd), dict(local_metadata)))

    def load_pre(mod, sd, prefix, local_metadata, strict, missing, unexpected, error_msgs):
        log.append(
            (
                "load_pre",
                type(mod).__name__,
                prefix,
                sorted(sd),
                strict,
                list(missing),
                list(unexpected),
                list(error_msgs),
            )
        )

    def load_post(mod, incompatible):
        log.append(
            (
                "load_post",
                type(mod).__name__,
                list(incompatible.missing_keys),
                list(incompatible.unexpected_keys),
            )
        )

    handles = []
    for mod in (m, m.c):
        handles += [
            mod.register_state_dict_pre_hook(sd_pre),
            mod.register_state_dict_post_hook(sd_post),
            mod.register_load_state_dict_pre_hook(load_pre),
            mod.register_load_state_dict_post_hook(load_post),
        ]
    return m, handles


def test_state_dict_hooks_order_and_arguments_like_torch():
    logs = {}
    for L in LIBS:
        log = logs[L.name] = []
        m, handles = _hooked(L, log)
        sd = m.state_dict(keep_vars=False)
        m.load_state_dict(sd)
        sd2 = OrderedDict(sd)
        del sd2["c.bias"]
        sd2["zz"] = sd2["a"]
        m.load_state_dict(sd2, strict=False)
        for h in handles:
            h.remove()
        log.append("removed")
        m.load_state_dict(m.state_dict())
    assert len(logs["torch"]) > 12
    assert logs["jaxmodule"] == logs["torch"]


def test_load_post_hook_can_clear_missing_keys():
    for L in LIBS:
        m = L.nn.Linear(2, 2)
        m.register_load_state_dict_post_hook(lambda mod, keys: keys.missing_keys.clear())
        res = m.load_state_dict({"weight": m.state_dict()["weight"]})
        assert res.missing_keys == []


def test_load_post_hook_must_return_none():
    for L in LIBS:
        m = L.nn.Linear(2, 2)
        m.register_load_state_dict_post_hook(lambda mod, keys: 1)
        with pytest.raises(AssertionError, match="are not expected to return new values"):
            m.load_state_dict(m.state_dict())


def test_state_dict_post_hook_must_return_none():
    for L in LIBS:
        m = L.nn.Linear(2, 2)
        m.register_state_dict_post_hook(lambda mod, sd, prefix, meta: {})
        with pytest.raises(RuntimeError, match="state_dict post-hook must return None"):
            m.state_dict()


def test_state_dict_pre_hook_can_update_buffer():
    for L in LIBS:
        m = L.nn.Module()
        m.register_buffer("n", L.arr(np.zeros(1, np.float32)))

        def pre(mod, prefix, keep_vars, L=L):
            mod.n = L.arr(np.ones(1, np.float32))

        m.register_state_dict_pre_hook(pre)
        assert to_numpy(m.state_dict()["n"]).tolist() == [1.0]


def test_load_pre_hook_can_rename_keys():
    """The classic use of a load pre-hook: rewrite old checkpoint keys in place."""
    for L in LIBS:
        m = L.nn.Linear(2, 2)

        def rename(mod, sd, prefix, *rest):
            if prefix + "W" in sd:
                sd[prefix + "weight"] = sd.pop(prefix + "W")

        m.register_load_state_dict_pre_hook(rename)
        sd = {"W": L.arr(np.full((2, 2), 3.0, np.float32)), "bias": L.arr(np.zeros(2, np.float32))}
        m.load_state_dict(sd)
        assert to_numpy(m.weight).tolist() == [[3.0, 3.0], [3.0, 3.0]]


# ---- a model loaded from torch computes what torch computes ---------------------------------
def _mlp(L):
    F = torch.tanh if L.is_torch else jnp.tanh

    class MLP(L.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = L.nn.Linear(5, 8)
            self.fc2 = L.nn.Linear(8, 3)
            self.register_buffer("scale", L.arr(np.linspace(0.5, 1.5, 3).astype(np.float32)))
            self.register_buffer("tmp", L.arr(np.zeros(1, np.float32)), persistent=False)

        def forward(self, x):
            return self.fc2(F(self.fc1(x))) * self.scale

    return MLP()


def test_loaded_torch_model_gives_same_output():
    t, j = _mlp(TORCH), _mlp(JM)
    j.load_state_dict(t.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    assert_close(j(jnp.asarray(x)), t(torch.from_numpy(x)), rtol=1e-5, atol=1e-5)
    # and back: jaxmodule's state_dict loads into torch
    t2 = _mlp(TORCH)
    t2.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in j.state_dict().items()})
    assert_close(t2(torch.from_numpy(x)), t(torch.from_numpy(x)), rtol=1e-6, atol=1e-6)


def test_state_dict_round_trip_through_jaxmodule_save_format():
    """jaxmodule state_dict values are plain arrays: numpy round trip keeps everything."""
    j = build(JM, RICH)
    sd = {k: np.asarray(v) for k, v in j.state_dict().items()}
    j2 = build(JM, RICH, seed=9)
    j2.load_state_dict(sd)
    assert _np_sd(j2.state_dict()) == _np_sd(j.state_dict())


def _versioned(L, log):
    class Versioned(L.nn.Module):
        _version = 2

        def __init__(self):
            super().__init__()
            self.w = L.nn.Parameter(L.arr(np.ones(2, np.float32)))
            self.child = L.nn.Linear(1, 1)

        def _load_from_state_dict(
            self,
            state_dict,
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        ):
            log.append((prefix, local_metadata.get("version"), sorted(local_metadata)))
            if local_metadata.get("version", 0) < 2 and prefix + "old_w" in state_dict:
                state_dict[prefix + "w"] = state_dict.pop(prefix + "old_w")  # migrate an old layout
            super()._load_from_state_dict(
                state_dict,
                prefix,
                local_metadata,
                strict,
                missing_keys,
                unexpected_keys,
                error_msgs,
            )

    return Versioned()


def test_version_metadata_drives_migration_like_torch():
    logs = {}
    for L in LIBS:
        log = logs[L.name] = []
        m = _versioned(L, log)
        sd = m.state_dict()
        assert sd._metadata[""]["version"] == 2
        m.load_state_dict(sd)
        old = OrderedDict(sd)
        old["old_w"] = old.pop("w")
        old._metadata = OrderedDict({"": {"version": 1}})
        m.load_state_dict(old)
        plain = dict(sd)  # no metadata at all
        m.load_state_dict(plain)
        m.load_state_dict(sd, assign=True)
    assert logs["jaxmodule"] == logs["torch"]
    assert len(logs["torch"]) == 4


def test_state_dict_is_a_snapshot_of_values():
    """Documented difference: torch's state_dict shares storage with the parameters, so later
    in-place updates show up in it; jaxmodule's holds the (immutable) arrays of the moment."""
    from jaxmodule import no_grad

    j = nn.Linear(2, 2)
    sd = j.state_dict()
    before = to_numpy(sd["weight"]).copy()
    with no_grad():
        j.weight.fill_(7.0)
    np.testing.assert_array_equal(to_numpy(sd["weight"]), before)
    assert to_numpy(j.state_dict()["weight"]).tolist() == [[7.0, 7.0], [7.0, 7.0]]
    kv = j.state_dict(keep_vars=True)  # the cells themselves: live
    with no_grad():
        j.weight.fill_(1.0)
    assert to_numpy(kv["weight"]).tolist() == [[1.0, 1.0], [1.0, 1.0]]
