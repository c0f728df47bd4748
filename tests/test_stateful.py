"""The `Stateful` protocol (`jaxmodule/_stateful.py`), the structure counters (`_structure.py`)
and the hook helper's argument names (`nn/modules/_hooks.py`)."""

from __future__ import annotations

import ast
import importlib
import pathlib
from collections import OrderedDict
from typing import Any

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
from jaxmodule import _structure, nn, optim
from jaxmodule._compile._reach import is_stateful
from jaxmodule._stateful import Stateful, is_stateful_object
from jaxmodule._swap import report
from jaxmodule.amp import GradScaler
from jaxmodule.nn.modules._hooks import add_hook
from jaxmodule.optim.optimizer import Optimizer

OPTIMIZERS = [
    getattr(optim, n)
    for n in optim.__all__
    if isinstance(getattr(optim, n), type)
    and issubclass(getattr(optim, n), Optimizer)
    and getattr(optim, n) is not Optimizer
]
PACKAGE = pathlib.Path(jaxmodule.__file__).parent


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _implementers() -> list[Any]:
    model = _model()
    objs: list[Any] = [cls(model.parameters(), lr=0.01) for cls in OPTIMIZERS]
    return [*objs, GradScaler(init_scale=8.0)]


def _leaves_equal(a: Any, b: Any) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b) and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb)
    )


def _shifted(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: x + jnp.asarray(1, x.dtype), tree)


# ---- Stateful ------------------------------------------------------------------------------------
def test_every_class_with_state_methods_declares_stateful():
    """No duck-typed implementer: every jaxmodule class defining `_jm_state_get` subclasses Stateful."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(f, ast.FunctionDef) and f.name == "_jm_state_get" for f in node.body
            ):
                name = ".".join(("jaxmodule", *path.relative_to(PACKAGE).with_suffix("").parts))
                found.append((name, node.name))
    names = {c for _, c in found}
    assert {"Optimizer", "GradScaler", "Stateful"} <= names, found
    for module_name, class_name in found:
        cls = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(cls, Stateful), f"{module_name}.{class_name} does not subclass Stateful"


@pytest.mark.parametrize("obj", _implementers(), ids=lambda o: type(o).__name__)
def test_implementer_satisfies_protocol_and_round_trips(obj):
    assert isinstance(obj, Stateful) and is_stateful_object(obj) and is_stateful(obj)
    before = obj._jm_state_get()
    assert jax.tree_util.tree_leaves(before), "a Stateful object with no array state"
    target = _shifted(before)
    obj._jm_state_set(target)
    assert _leaves_equal(obj._jm_state_get(), target)
    # get hands out fresh containers: changing them does not reach the object
    got = obj._jm_state_get()
    if isinstance(got, dict):
        got.clear()
    assert _leaves_equal(obj._jm_state_get(), target)
    # the copy-free pair sees and installs the same state
    assert _leaves_equal(obj._jm_state_view(), target)
    obj._jm_state_install(before)
    assert _leaves_equal(obj._jm_state_get(), before)
    # the host pair: a no-change update keeps the host state
    host = obj._jm_host_state()
    obj._jm_host_update(host, host)
    assert obj._jm_host_state() == host


def test_set_under_jit_takes_tracers():
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01)

    @jax.jit
    def bump(state):
        opt._jm_state_set(_shifted(state))  # tracers go in and come out
        return opt._jm_state_get()

    before = opt._jm_state_get()
    out = bump(before)
    opt._jm_state_set(out)
    assert _leaves_equal(opt._jm_state_get(), _shifted(before))


def test_optimizer_host_pair_replays_started_flags():
    model = _model()
    a = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    b = optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    before = a._jm_host_state()
    jaxmodule.backward(lambda m: m(jnp.ones((2, 3))).sum(), model)
    a.step()
    after = a._jm_host_state()
    assert after != before
    b._jm_host_update(before, after)
    assert b._jm_host_state() == after


def test_defaults_of_the_optional_methods():
    class Counter(Stateful):
        def __init__(self) -> None:
            self.count = jnp.zeros(())

        def _jm_state_get(self) -> dict:
            return {"count": self.count}

        def _jm_state_set(self, state: dict) -> None:
            self.count = state["count"]

    c = Counter()
    c._jm_state_install({"count": jnp.ones(())})
    assert float(c._jm_state_view()["count"]) == 1.0
    assert c._jm_host_state() is None and c._jm_host_update(None, None) is None

    class Incomplete(Stateful):
        def _jm_state_get(self) -> dict:
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


def test_non_stateful_objects():
    for x in (3, "a", len, [], object(), nn.Linear(2, 2), optim.lr_scheduler):
        assert not is_stateful_object(x)

    class Duck:  # only half the protocol: not Stateful
        def _jm_state_get(self) -> dict:
            return {}

    assert not is_stateful_object(Duck()) and not isinstance(Duck(), Stateful)


def test_compiled_step_with_a_stateful_user_object():
    """compile threads a user-defined Stateful object's pytree through the program."""

    class Total(Stateful):
        def __init__(self) -> None:
            self.total = jnp.zeros(())

        def _jm_state_get(self) -> dict:
            return {"total": self.total}

        def _jm_state_set(self, state: dict) -> None:
            self.total = state["total"]

        def add(self, x: Any) -> None:
            report(self)
            self.total = self.total + x

    model, acc = nn.Linear(3, 1), Total()

    @jaxmodule.compile
    def step(m, t, x):
        y = m(x).sum()
        t.add(y)
        return y

    x = jnp.ones((2, 3))
    expect = 0.0
    for _ in range(3):
        expect += float(step(model, acc, x))
    np.testing.assert_allclose(float(acc.total), expect, rtol=1e-5)


# ---- the structure counters ----------------------------------------------------------------------
def _moves(field: str, action: Any) -> int:
    before = getattr(_structure.counters, field)
    action()
    return getattr(_structure.counters, field) - before


def test_structure_counter_moves_on_structural_changes_only():
    m = nn.Linear(2, 2)
    structural = [
        lambda: m.register_buffer("b", jnp.zeros(2)),
        lambda: m.add_module("sub", nn.ReLU()),
        lambda: m.eval(),
        lambda: m.weight.requires_grad_(False),
        lambda: m.register_forward_hook(lambda *a: None).remove(),
        lambda: setattr(m, "alpha", 0.5),
    ]
    for action in structural:
        assert _moves("structure", action) >= 1
    value_only = [
        lambda: m.weight.data.fill_(1.0),
        lambda: setattr(m, "b", jnp.ones(2)),  # an array into a registered buffer
    ]
    for action in value_only:
        assert _moves("structure", action) == 0


def test_grad_presence_counter_moves_when_a_grad_appears_or_goes():
    p = nn.Parameter(jnp.ones(2))
    assert _moves("grad_presence", lambda: setattr(p, "grad", jnp.zeros(2))) == 1
    assert _moves("grad_presence", lambda: setattr(p, "grad", jnp.ones(2))) == 0
    assert _moves("grad_presence", lambda: setattr(p, "grad", None)) == 1
    assert _moves("grad_presence", lambda: setattr(p, "grad", None)) == 0


def test_handed_out_counter_moves_on_state_dict():
    m = nn.Linear(2, 2)
    opt = optim.Adam(m.parameters(), lr=0.1)
    sd: dict = {}
    assert _moves("handed_out", lambda: sd.update(m.state_dict())) == 1
    assert _structure.EXPORTED.get(id(sd["weight"])) is sd["weight"]
    assert _moves("handed_out", opt.state_dict) == 1
    assert _moves("handed_out", lambda: m(jnp.ones((1, 2)))) == 0


def test_counters_object_and_fast_path_check():
    c = _structure.counters
    assert isinstance(c, _structure.StructureCounters)
    assert repr(c).startswith("StructureCounters(structure=")
    with pytest.raises(AttributeError):
        c.version = 1  # type: ignore[attr-defined]  # slots: a misspelt counter fails loudly
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)

    @jaxmodule.compile
    def step(m, o, x):
        o.zero_grad()
        loss = jaxmodule.backward(lambda mm: mm(x).sum(), m)
        o.step()
        return loss

    x = jnp.ones((3, 2))
    for _ in range(2):
        step(model, opt, x)
    source = step._entries[0].fast.__jm_source__
    assert (
        "COUNTERS.structure != " in source
        and "COUNTERS.handed_out != entry.handed_out_at" in source
    )
    model.register_buffer("extra", jnp.zeros(1))  # structural: the next call re-plans, same result
    w = np.asarray(model.weight._value)
    step(model, opt, x)
    np.testing.assert_allclose(np.asarray(model.weight._value), w - 0.1 * 3, rtol=1e-5)


# ---- add_hook's keywords ------------------------------------------------------------------------
def test_add_hook_marks_and_removes_from_option_dicts():
    hooks: OrderedDict = OrderedDict()
    with_kwargs: OrderedDict = OrderedDict()
    always: OrderedDict = OrderedDict()
    first = add_hook(hooks, print, also_remove_from=[with_kwargs, always], mark_in=(always,))
    second = add_hook(
        hooks,
        repr,
        prepend=True,
        also_remove_from=[with_kwargs, always],
        mark_in=(with_kwargs, always),
    )
    assert list(hooks) == [second.id, first.id]
    assert dict(with_kwargs) == {second.id: True} and set(always) == {first.id, second.id}
    second.remove()
    assert list(hooks) == [first.id] and not with_kwargs and list(always) == [first.id]
    with pytest.raises(TypeError):
        add_hook(hooks, print, extra=with_kwargs)  # type: ignore[call-arg]  # the old names are gone
