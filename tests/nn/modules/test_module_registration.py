"""Registration of parameters, buffers and submodules: jaxmodule against torch, operation by operation.

Every operation runs on the same tree in both libraries; afterwards names, order, shapes, values and
repr must agree. Every misuse must raise torch's exception type and leave the module unchanged.
"""

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import to_numpy
from tests.nn.modules._module_trees import (
    JM,
    LIBS,
    RICH,
    TORCH,
    build,
    classes,
    same_error,
    snapshot,
)

SMALL = {
    "root": {
        "kind": "block",
        "params": [("alpha", (3,)), ("gone", None)],
        "buffers": [("stat", (3,), True), ("scratch", (2,), False)],
        "children": [("sub", {"kind": "leaf"})],
    }
}


def _p(L, *shape):
    return L.nn.Parameter(L.arr(np.full(shape, 2.0, np.float32)))


def _a(L, *shape):
    return L.arr(np.full(shape, 3.0, np.float32))


def _leaf(L):
    return classes(L)["Leaf"]()


# Operations that succeed in torch; each is applied to a fresh SMALL tree in both libraries.
OPS = {
    "setattr_new_param": lambda L, m: setattr(m, "p", _p(L, 2)),
    "setattr_replace_param": lambda L, m: setattr(m, "alpha", _p(L, 5)),
    "setattr_param_to_none": lambda L, m: setattr(m, "alpha", None),
    "setattr_none_param_to_param": lambda L, m: setattr(m, "gone", _p(L, 1)),
    "setattr_new_module": lambda L, m: setattr(m, "extra", _leaf(L)),
    "setattr_module_to_none": lambda L, m: setattr(m, "sub", None),
    "setattr_replace_module": lambda L, m: setattr(m, "sub", L.nn.Identity()),
    "setattr_buffer_value": lambda L, m: setattr(m, "stat", _a(L, 3)),
    "setattr_buffer_new_shape": lambda L, m: setattr(m, "stat", _a(L, 7)),
    "setattr_buffer_to_none": lambda L, m: setattr(m, "stat", None),
    "setattr_nonpersistent_value": lambda L, m: setattr(m, "scratch", _a(L, 2)),
    "setattr_Buffer_new": lambda L, m: setattr(m, "nb", L.nn.Buffer(_a(L, 2))),
    "setattr_Buffer_nonpersistent": lambda L, m: setattr(
        m, "nb", L.nn.Buffer(_a(L, 2), persistent=False)
    ),
    "setattr_Buffer_persistent_flip": lambda L, m: setattr(m, "scratch", L.nn.Buffer(_a(L, 2))),
    "setattr_param_over_buffer": lambda L, m: setattr(m, "stat", _p(L, 3)),
    "setattr_param_over_plain": lambda L, m: (
        setattr(m, "plain", 3),
        setattr(m, "plain", _p(L, 1)),
    ),
    "setattr_plain": lambda L, m: setattr(m, "hidden_size", 7),
    "setattr_param_over_module": lambda L, m: setattr(m, "sub", _p(L, 2)),
    "setattr_Buffer_over_buffer_shape": lambda L, m: setattr(
        m, "stat", L.nn.Buffer(_a(L, 5), persistent=False)
    ),
    "setattr_training": lambda L, m: setattr(m, "training", False),
    "setattr_module_over_buffer": lambda L, m: setattr(m, "stat", _leaf(L)),
    "setattr_module_over_plain": lambda L, m: (
        setattr(m, "plain", 3),
        setattr(m, "plain", _leaf(L)),
    ),
    "setattr_buffer_value_on_none_buffer": lambda L, m: (
        setattr(m, "stat", None),
        setattr(m, "stat", _a(L, 2)),
    ),
    "add_module": lambda L, m: m.add_module("added", _leaf(L)),
    "add_module_none": lambda L, m: m.add_module("nothing", None),
    "add_module_replace": lambda L, m: m.add_module("sub", L.nn.Identity()),
    "register_module": lambda L, m: m.register_module("reg", _leaf(L)),
    "register_parameter": lambda L, m: m.register_parameter("rp", _p(L, 2, 2)),
    "register_parameter_none": lambda L, m: m.register_parameter("rn", None),
    "register_parameter_replace": lambda L, m: m.register_parameter("alpha", _p(L, 1)),
    "register_buffer": lambda L, m: m.register_buffer("rb", _a(L, 4)),
    "register_buffer_nonpersistent": lambda L, m: m.register_buffer(
        "rb", _a(L, 4), persistent=False
    ),
    "register_buffer_none": lambda L, m: m.register_buffer("rb", None),
    "register_buffer_flip_persistent": lambda L, m: m.register_buffer(
        "stat", _a(L, 3), persistent=False
    ),
    "register_buffer_Buffer": lambda L, m: m.register_buffer("rb", L.nn.Buffer(_a(L, 1))),
    "set_submodule_new": lambda L, m: m.set_submodule("sub.deeper", _leaf(L)),
    "set_submodule_replace_strict": lambda L, m: m.set_submodule(
        "sub", L.nn.Identity(), strict=True
    ),
    "delattr_param": lambda L, m: delattr(m, "alpha"),
    "delattr_none_param": lambda L, m: delattr(m, "gone"),
    "delattr_buffer": lambda L, m: delattr(m, "stat"),
    "delattr_nonpersistent": lambda L, m: delattr(m, "scratch"),
    "delattr_module": lambda L, m: delattr(m, "sub"),
    "delattr_plain": lambda L, m: (setattr(m, "plain", 1), delattr(m, "plain")),
    "reregister_deleted": lambda L, m: (delattr(m, "alpha"), m.register_buffer("alpha", _a(L, 2))),
}


@pytest.mark.parametrize("op", list(OPS))
def test_operation_matches_torch(op):
    t, j = build(TORCH, SMALL), build(JM, SMALL)
    OPS[op](TORCH, t)
    OPS[op](JM, j)
    assert snapshot(j) == snapshot(t)
    assert sorted(t._non_persistent_buffers_set) == sorted(j._non_persistent_buffers_set)
    assert list(t._parameters) == list(j._parameters)
    assert list(t._buffers) == list(j._buffers)
    assert list(t._modules) == list(j._modules)
    # The attribute reads back as what was registered.
    for name in (*t._parameters, *t._buffers, *t._modules):
        assert (getattr(t, name) is None) == (getattr(j, name) is None)


# Misuse: (torch call, key message parts shared by both libraries' messages).
MISUSE = {
    "param_dot_name": (lambda L, m: m.register_parameter("a.b", _p(L, 1)), ['can\'t contain "."']),
    "param_empty_name": (
        lambda L, m: m.register_parameter("", _p(L, 1)),
        ['can\'t be empty string ""'],
    ),
    "param_int_name": (lambda L, m: m.register_parameter(1, _p(L, 1)), ["name should be a string"]),
    "param_existing_attr": (
        lambda L, m: m.register_parameter("training", _p(L, 1)),
        ["attribute 'training' already exists"],
    ),
    "param_existing_buffer": (
        lambda L, m: m.register_parameter("stat", _p(L, 1)),
        ["attribute 'stat' already exists"],
    ),
    "param_existing_module": (
        lambda L, m: m.register_parameter("sub", _p(L, 1)),
        ["attribute 'sub' already exists"],
    ),
    "param_wrong_type": (
        lambda L, m: m.register_parameter("x", _a(L, 1)),
        ["object to parameter 'x'"],
    ),
    "buffer_dot_name": (
        lambda L, m: m.register_buffer("a.b", _a(L, 1)),
        ['buffer name can\'t contain "."'],
    ),
    "buffer_empty_name": (
        lambda L, m: m.register_buffer("", _a(L, 1)),
        ['buffer name can\'t be empty string ""'],
    ),
    "buffer_int_name": (
        lambda L, m: m.register_buffer(3, _a(L, 1)),
        ["buffer name should be a string"],
    ),
    "buffer_existing_param": (
        lambda L, m: m.register_buffer("alpha", _a(L, 1)),
        ["attribute 'alpha' already exists"],
    ),
    "buffer_existing_method": (
        lambda L, m: m.register_buffer("forward", _a(L, 1)),
        ["attribute 'forward' already exists"],
    ),
    "buffer_wrong_type": (
        lambda L, m: m.register_buffer("x", [1.0, 2.0]),
        ["object to buffer 'x'"],
    ),
    "module_dot_name": (
        lambda L, m: m.add_module("a.b", _leaf(L)),
        ['module name can\'t contain ".", got: a.b'],
    ),
    "module_empty_name": (
        lambda L, m: m.add_module("", _leaf(L)),
        ['module name can\'t be empty string ""'],
    ),
    "module_int_name": (lambda L, m: m.add_module(2, _leaf(L)), ["module name should be a string"]),
    "module_existing_attr": (
        lambda L, m: m.add_module("alpha", _leaf(L)),
        ["attribute 'alpha' already exists"],
    ),
    "module_wrong_type": (lambda L, m: m.add_module("x", 3), ["int is not a Module subclass"]),
    "register_module_wrong_type": (
        lambda L, m: m.register_module("x", "no"),
        ["str is not a Module subclass"],
    ),
    "assign_array_to_param": (lambda L, m: setattr(m, "alpha", _a(L, 3)), ["as parameter 'alpha'"]),
    "assign_array_to_none_param": (
        lambda L, m: setattr(m, "gone", _a(L, 3)),
        ["as parameter 'gone'"],
    ),
    "assign_int_to_param": (
        lambda L, m: setattr(m, "alpha", 3),
        ["cannot assign 'int' as parameter 'alpha'"],
    ),
    "assign_array_to_module": (lambda L, m: setattr(m, "sub", _a(L, 3)), ["as child module 'sub'"]),
    "assign_str_to_module": (
        lambda L, m: setattr(m, "sub", "x"),
        ["cannot assign 'str' as child module 'sub'"],
    ),
    "assign_Buffer_to_param": (
        lambda L, m: setattr(m, "alpha", L.nn.Buffer(_a(L, 2))),
        ["as parameter 'alpha'"],
    ),
    "assign_module_to_param": (
        lambda L, m: setattr(m, "alpha", _leaf(L)),
        ["as parameter 'alpha'"],
    ),
    "assign_Buffer_to_module": (
        lambda L, m: setattr(m, "sub", L.nn.Buffer(_a(L, 2))),
        ["as child module 'sub'"],
    ),
    "assign_param_name_to_buffer_name": (
        lambda L, m: m.register_buffer("alpha", None),
        ["attribute 'alpha' already exists"],
    ),
    "assign_Buffer_over_method": (
        lambda L, m: setattr(m, "forward", L.nn.Buffer(_a(L, 2))),
        ["attribute 'forward' already exists"],
    ),
    "assign_str_to_buffer": (
        lambda L, m: setattr(m, "stat", "x"),
        ["cannot assign 'str' as buffer 'stat'"],
    ),
    "set_submodule_empty": (
        lambda L, m: m.set_submodule("", _leaf(L)),
        ["Cannot set the submodule without a target name!"],
    ),
    "set_submodule_not_module": (
        lambda L, m: m.set_submodule("sub", 3),
        ["is not an nn.Module, found <class 'int'>"],
    ),
    "set_submodule_strict_missing": (
        lambda L, m: m.set_submodule("nope", _leaf(L), strict=True),
        ["Block has no attribute `nope`"],
    ),
    "set_submodule_strict_missing_deep": (
        lambda L, m: m.set_submodule("sub.nope", _leaf(L), strict=True),
        ["Leaf has no attribute `nope`"],
    ),
    "set_submodule_over_param": (
        lambda L, m: m.set_submodule("alpha", _leaf(L)),
        ["`alpha` is not an nn.Module"],
    ),
    "set_submodule_missing_parent": (
        lambda L, m: m.set_submodule("x.y", _leaf(L)),
        ["Block has no attribute `x`"],
    ),
    "delattr_missing": (lambda L, m: delattr(m, "nope"), ["nope"]),
    "getattr_missing": (lambda L, m: m.nope, ["'Block' object has no attribute 'nope'"]),
}


@pytest.mark.parametrize("case", list(MISUSE))
def test_misuse_raises_like_torch_and_changes_nothing(case):
    fn, parts = MISUSE[case]
    t, j = build(TORCH, SMALL), build(JM, SMALL)
    before_t, before_j = snapshot(t), snapshot(j)
    same_error(lambda: fn(TORCH, t), lambda: fn(JM, j), *parts)
    assert snapshot(j) == before_j == before_t
    assert snapshot(t) == before_t


def test_register_before_init():
    for L in LIBS:

        class Early(L.nn.Module):
            def __init__(self, what, L=L):
                if what == "param":
                    self.w = L.nn.Parameter(L.arr(np.zeros(1, np.float32)))
                elif what == "module":
                    self.m = L.nn.Identity()
                else:
                    self.register_buffer("b", L.arr(np.zeros(1, np.float32)))
                super().__init__()

        for what, msg in (
            ("param", "cannot assign parameters before Module.__init__() call"),
            ("module", "cannot assign module before Module.__init__() call"),
            ("buffer", "cannot assign buffer before Module.__init__() call"),
        ):
            with pytest.raises(AttributeError, match=msg.replace("(", r"\(").replace(")", r"\)")):
                Early(what)


def test_registration_order_is_torch_order():
    t, j = build(TORCH, RICH), build(JM, RICH)
    for attr in ("_parameters", "_buffers", "_modules"):
        assert list(getattr(t, attr)) == list(getattr(j, attr))
    assert list(t.state_dict()) == list(j.state_dict())


def test_plain_array_attribute_is_not_registered():
    """A plain attribute holding an array is neither a parameter nor a buffer (as in torch)."""
    t, j = build(TORCH, SMALL), build(JM, SMALL)
    t.plain = torch.ones(2)
    j.plain = jnp.ones(2)
    assert "plain" not in t.state_dict() and "plain" not in j.state_dict()
    assert names_of(j.named_parameters()) == names_of(t.named_parameters())
    assert names_of(j.named_buffers()) == names_of(t.named_buffers())
    assert isinstance(j.plain, jnp.ndarray)


def names_of(it):
    return [n for n, _ in it]


def test_buffer_value_assignment_keeps_cell():
    """Assigning an array to a registered buffer replaces the value in the same cell."""
    m = build(JM, SMALL)
    cell = m._buffers["stat"]
    m.stat = jnp.arange(3.0)
    assert m._buffers["stat"] is cell
    np.testing.assert_array_equal(to_numpy(m.stat), [0.0, 1.0, 2.0])
    assert "stat" not in m._non_persistent_buffers_set
    m.scratch = jnp.zeros(2)
    assert "scratch" in m._non_persistent_buffers_set


def test_buffer_accepts_numpy_and_torch_values():
    m = nn.Module()
    m.register_buffer("a", np.arange(3, dtype=np.float32))
    m.register_buffer("b", torch.arange(3, dtype=torch.float32))
    m.register_buffer("c", torch.ones(2, dtype=torch.bfloat16))
    assert m.a.dtype == jnp.float32 and m.b.dtype == jnp.float32 and m.c.dtype == jnp.bfloat16
    np.testing.assert_array_equal(to_numpy(m.b), [0.0, 1.0, 2.0])


def test_parameter_shared_between_modules_is_one_cell():
    p = nn.Parameter(jnp.ones(2))
    a, b = nn.Module(), nn.Module()
    a.w = p
    b.w = p
    with jaxmodule.no_grad():
        a.w.fill_(5.0)
    np.testing.assert_array_equal(to_numpy(b.w), [5.0, 5.0])


def test_registration_hooks_global_like_torch():
    calls = {}
    handles = []
    for L, reg in ((TORCH, torch.nn.modules.module), (JM, nn)):
        log = calls[L.name] = []
        handles += [
            reg.register_module_parameter_registration_hook(
                lambda m, n, v, log=log: log.append(("param", type(m).__name__, n, v is None))
            ),
            reg.register_module_buffer_registration_hook(
                lambda m, n, v, log=log: log.append(("buffer", type(m).__name__, n, v is None))
            ),
            reg.register_module_module_registration_hook(
                lambda m, n, v, log=log: log.append(("module", type(m).__name__, n, v is None))
            ),
        ]
    try:
        t, j = build(TORCH, SMALL), build(JM, SMALL)
        t.add_module("x", None)
        j.add_module("x", None)
        t.register_buffer("nb", None)
        j.register_buffer("nb", None)
    finally:
        for h in handles:
            h.remove()
    assert calls["jaxmodule"] == calls["torch"]
    assert len(calls["torch"]) > 5


def test_registration_hook_can_replace_value():
    with nn.register_module_parameter_registration_hook(lambda m, n, p: nn.Parameter(p * 2)):
        m = nn.Module()
        m.w = nn.Parameter(jnp.ones(2))
    np.testing.assert_array_equal(to_numpy(m.w), [2.0, 2.0])
    m.v = nn.Parameter(jnp.ones(2))  # handle exited: hook gone
    np.testing.assert_array_equal(to_numpy(m.v), [1.0, 1.0])


def test_call_super_init_and_unexpected_args():
    for L in LIBS:
        with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
            L.nn.Module(foo=1)
        with pytest.raises(TypeError, match="takes 1 positional argument but 2 were given"):
            L.nn.Module(1)


def test_aliasing_a_registered_buffer_is_a_plain_attribute_like_torch():
    import torch
    from jaxmodule import nn as jnn

    t, j = torch.nn.BatchNorm1d(3), jnn.BatchNorm1d(3)
    t.alias = t.running_mean
    j.alias = j.running_mean
    assert list(j.state_dict()) == list(t.state_dict())
    assert "alias" not in j._buffers and j.alias is j.running_mean
    fresh = jnn.Module()
    fresh.b = jnn.Buffer(jnp.ones(2), persistent=False)  # a fresh nn.Buffer still registers
    assert "b" in fresh._buffers and list(fresh.state_dict()) == []
