"""Differential tests of Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict vs torch."""

from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn, to_torch


class Tanh(nn.Module):
    """Stand-in for nn.Tanh (same name, so reprs match torch.nn.Tanh's)."""

    def forward(self, x):
        return jnp.tanh(x)


class _Lib:
    """One namespace per library, so every test case runs the same code on both."""

    def __init__(self, mod, tanh):
        self.nn = mod
        self.Tanh = tanh

    def __getattr__(self, name):
        return getattr(self.nn, name)


JM = _Lib(nn, Tanh)
TORCH = _Lib(torch.nn, torch.nn.Tanh)


def _linears(lib, n, offset=0):
    """Linear layers with distinct shapes, so names and shapes identify each one."""
    return [lib.Linear(i + 1 + offset, i + 2 + offset) for i in range(n)]


def _structure(m):
    return dict(
        modules=[(k, type(v).__name__) for k, v in m.named_modules()],
        params=[(k, tuple(v.shape)) for k, v in m.named_parameters()],
        state=[(k, tuple(v.shape)) for k, v in m.state_dict().items()],
        repr=repr(m),
        len=len(m) if hasattr(type(m), "__len__") else None,
    )


def _same_structure(jm_mod, t_mod):
    expected = _structure(t_mod)
    expected["repr"] = _torch_repr_as_jax(expected["repr"])
    assert _structure(jm_mod) == expected


def _same_error(fn):
    """`fn(lib)` must raise the same exception type (and message) in both libraries."""
    with pytest.raises(Exception) as t_err:
        fn(TORCH)
    with pytest.raises(type(t_err.value)) as j_err:
        fn(JM)
    assert type(j_err.value) is type(t_err.value)
    return str(j_err.value), str(t_err.value)


# ---- Sequential ------------------------------------------------------------------------------------


def _seq(lib):
    return lib.Sequential(*_linears(lib, 4))


def _op_set(c, lib, ex):
    c[1] = ex[0]
    return c


def _op_set_neg(c, lib, ex):
    c[-2] = ex[0]
    return c


def _op_del(c, lib, ex):
    del c[1]
    return c


def _op_del_neg(c, lib, ex):
    del c[-1]
    return c


def _op_del_slice(c, lib, ex):
    del c[0:3:2]
    return c


def _op_del_slice_all(c, lib, ex):
    del c[:]
    return c


def _op_iadd(c, lib, ex):
    c += lib.Sequential(*ex)
    return c


def _op_imul(c, lib, ex):
    c *= 3
    return c


def _op_pop(c, lib, ex):
    popped = c.pop(1)
    assert type(popped).__name__ == "Linear"
    return c


def _op_pop_slice(c, lib, ex):
    popped = c.pop(slice(1, 3))
    assert [k for k, _ in popped.named_children()] == ["1", "2"]
    return c


SEQ_OPS = {
    "slice": lambda c, lib, ex: c[1:3],
    "slice_step_neg": lambda c, lib, ex: c[::-2],
    "setitem": _op_set,
    "setitem_neg": _op_set_neg,
    "del": _op_del,
    "del_neg": _op_del_neg,
    "del_slice": _op_del_slice,
    "del_slice_all": _op_del_slice_all,
    "insert": lambda c, lib, ex: c.insert(1, ex[0]),
    "insert_neg": lambda c, lib, ex: c.insert(-1, ex[0]),
    "insert_end": lambda c, lib, ex: c.insert(4, ex[0]),
    "insert_front_neg": lambda c, lib, ex: c.insert(-4, ex[0]),
    "append": lambda c, lib, ex: c.append(ex[0]),
    "extend": lambda c, lib, ex: c.extend(lib.Sequential(*ex)),
    "extend_list": lambda c, lib, ex: c.extend(ex),
    "pop": _op_pop,
    "pop_slice": _op_pop_slice,
    "add": lambda c, lib, ex: c + lib.Sequential(*ex),
    "iadd": _op_iadd,
    "mul": lambda c, lib, ex: c * 2,
    "rmul": lambda c, lib, ex: 2 * c,
    "imul": _op_imul,
}


@pytest.mark.parametrize("op", list(SEQ_OPS))
def test_sequential_mutations_match_torch(op):
    outs = []
    for lib in (TORCH, JM):
        c = _seq(lib)
        ex = _linears(lib, 2, offset=10)
        outs.append(SEQ_OPS[op](c, lib, ex))
    _same_structure(outs[1], outs[0])


def test_sequential_ordered_dict_keys_and_slicing():
    def build(lib):
        return lib.Sequential(
            OrderedDict(
                [("conv", lib.Linear(2, 3)), ("act", lib.Tanh()), ("head", lib.Linear(3, 1))]
            )
        )

    t, j = build(TORCH), build(JM)
    _same_structure(j, t)
    _same_structure(j[1:], t[1:])
    _same_structure(j[::2], t[::2])
    assert type(j[-1]) is nn.Linear and j[-3] is j.conv
    del t[0], j[0]
    _same_structure(j, t)  # re-numbered like torch: '0', '1'


def test_sequential_nested_repr_and_forward_after_loading_torch_state():
    def build(lib):
        return lib.Sequential(
            lib.Linear(4, 8),
            lib.Tanh(),
            lib.Sequential(lib.Linear(8, 8), lib.Tanh()),
            lib.Linear(8, 3),
        )

    t, j = build(TORCH), build(JM)
    _same_structure(j, t)
    j.load_state_dict(t.state_dict())
    x = randn(5, 4)
    assert_close(j(jnp.asarray(x)), t(to_torch(x)))
    assert_close(jax.jit(lambda m, v: m(v))(j, jnp.asarray(x)), t(to_torch(x)))


def test_sequential_iteration_len_and_dir():
    j = _seq(JM)
    assert len(j) == 4 and list(j) == list(j._modules.values())
    assert [m.in_features for m in j] == [1, 2, 3, 4]
    assert not any(k.isdigit() for k in dir(j)) and "append" in dir(j)


SEQ_ERRORS = {
    "index_high": lambda lib: _seq(lib)[4],
    "index_low": lambda lib: _seq(lib)[-5],
    "index_str": lambda lib: _seq(lib)["0"],
    "setitem_out_of_range": lambda lib: _seq(lib).__setitem__(7, lib.Linear(1, 1)),
    "setitem_not_module": lambda lib: _seq(lib).__setitem__(0, 3),
    "del_out_of_range": lambda lib: _seq(lib).__delitem__(9),
    "add_non_sequential": lambda lib: _seq(lib) + lib.ModuleList(),
    "iadd_non_sequential": lambda lib: _seq(lib).__iadd__([lib.Linear(1, 1)]),
    "mul_float": lambda lib: _seq(lib) * 1.5,
    "mul_zero": lambda lib: _seq(lib) * 0,
    "imul_negative": lambda lib: _seq(lib).__imul__(-1),
    "insert_not_module": lambda lib: _seq(lib).insert(0, 3),
    "insert_out_of_range": lambda lib: _seq(lib).insert(6, lib.Linear(1, 1)),
    "insert_out_of_range_neg": lambda lib: _seq(lib).insert(-5, lib.Linear(1, 1)),
    "append_not_module": lambda lib: _seq(lib).append(3),
    "ctor_not_module": lambda lib: lib.Sequential(lib.Linear(1, 1), "x"),
    "pop_empty": lambda lib: lib.Sequential().pop(0),
}


@pytest.mark.parametrize("case", list(SEQ_ERRORS))
def test_sequential_errors_match_torch(case):
    _same_error(SEQ_ERRORS[case])


def test_sequential_error_messages():
    with pytest.raises(IndexError, match="index 4 is out of range"):
        _seq(JM)[4]
    with pytest.raises(ValueError, match="Non-positive multiplication factor 0"):
        _seq(JM) * 0
    with pytest.raises(IndexError, match="Index out of range: 6"):
        _seq(JM).insert(6, nn.Linear(1, 1))
    with pytest.raises(ValueError, match="add operator supports only objects of Sequential class"):
        _seq(JM) + nn.ModuleList()


# ---- ModuleList --------------------------------------------------------------------------------


def _ml(lib):
    return lib.ModuleList(_linears(lib, 4))


def _ml_iadd(c, lib, ex):
    c += ex
    return c


def _ml_del_slice(c, lib, ex):
    del c[1::2]
    return c


def _ml_del_neg(c, lib, ex):
    del c[-3]
    return c


def _ml_set(c, lib, ex):
    c[-1] = ex[1]
    return c


def _ml_insert(index):
    def op(c, lib, ex):
        c.insert(index, ex[0])
        return c

    return op


def _ml_pop(c, lib, ex):
    assert c.pop(-2).in_features == 3
    return c


ML_OPS = {
    "slice": lambda c, lib, ex: c[1:],
    "slice_neg_step": lambda c, lib, ex: c[::-1],
    "setitem_neg": _ml_set,
    "del_neg": _ml_del_neg,
    "del_slice": _ml_del_slice,
    "insert_front": _ml_insert(0),
    "insert_mid": _ml_insert(2),
    "insert_end": _ml_insert(4),
    "append": lambda c, lib, ex: c.append(ex[0]),
    "extend": lambda c, lib, ex: c.extend(ex),
    "extend_generator": lambda c, lib, ex: c.extend(m for m in ex),
    "iadd": _ml_iadd,
    "add_list": lambda c, lib, ex: c + ex,
    "add_modulelist": lambda c, lib, ex: c + lib.ModuleList(ex),
    "pop": _ml_pop,
    "shared_module": lambda c, lib, ex: c.extend([c[0], c[0]]),
}


@pytest.mark.parametrize("op", list(ML_OPS))
def test_modulelist_mutations_match_torch(op):
    outs = []
    for lib in (TORCH, JM):
        outs.append(ML_OPS[op](_ml(lib), lib, _linears(lib, 2, offset=10)))
    _same_structure(outs[1], outs[0])


def test_modulelist_compressed_repr_matches_torch():
    def build(lib):
        inner = [lib.Sequential(lib.Linear(1, 1), lib.Tanh()) for _ in range(2)]
        return lib.ModuleList(
            [
                lib.Linear(2, 2),
                lib.Linear(2, 2),
                lib.Linear(2, 2),
                lib.Tanh(),
                *inner,
                lib.Linear(2, 2),
                lib.ModuleList(),
                lib.ModuleList([lib.Tanh()] * 3),
            ]
        )

    t, j = build(TORCH), build(JM)
    assert repr(j) == repr(t)
    assert "(0-2): 3 x Linear(in_features=2, out_features=2, bias=True)" in repr(j)
    assert repr(JM.ModuleList()) == repr(TORCH.ModuleList()) == "ModuleList()"
    outer = [
        lib.Sequential(lib.ModuleList([lib.Linear(3, 3)] * 2), lib.Tanh()) for lib in (TORCH, JM)
    ]
    assert repr(outer[1]) == repr(outer[0])


def test_modulelist_in_a_model_loads_torch_state_and_matches():
    class JNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(3)])

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = self.layers[i // 2](x) + layer(x)
            return x

    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(3, 3) for _ in range(3)])

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = self.layers[i // 2](x) + layer(x)
            return x

    t, j = TNet(), JNet()
    assert list(j.state_dict()) == list(t.state_dict())
    j.load_state_dict(t.state_dict())
    x = randn(2, 3)
    assert_close(j(jnp.asarray(x)), t(to_torch(x)))
    grads = jax.grad(lambda m: m(jnp.asarray(x)).sum())(j)
    t(to_torch(x)).sum().backward()
    leaves = jax.tree.leaves(grads)
    assert len(leaves) == len(list(t.parameters())) == 6
    for tp, jp in zip(t.parameters(), leaves):
        assert_close(jp, tp.grad)


ML_ERRORS = {
    "index_high": lambda lib: _ml(lib)[4],
    "index_low": lambda lib: _ml(lib)[-5],
    "index_float": lambda lib: _ml(lib)[1.0],
    "setitem_not_module": lambda lib: _ml(lib).__setitem__(0, "x"),
    "setitem_out_of_range": lambda lib: _ml(lib).__setitem__(4, lib.Linear(1, 1)),
    "del_out_of_range": lambda lib: _ml(lib).__delitem__(-9),
    "extend_not_iterable": lambda lib: _ml(lib).extend(lib.Linear(1, 1)),
    "extend_int": lambda lib: _ml(lib).extend(3),
    "ctor_not_iterable": lambda lib: lib.ModuleList(5),
    "append_not_module": lambda lib: _ml(lib).append(1),
    "insert_negative": lambda lib: _ml(lib).insert(-1, lib.Linear(1, 1)),
}


@pytest.mark.parametrize("case", list(ML_ERRORS))
def test_modulelist_errors_match_torch(case):
    _same_error(ML_ERRORS[case])


def test_modulelist_extend_message():
    with pytest.raises(
        TypeError, match="ModuleList.extend should be called with an iterable, but got Linear"
    ):
        nn.ModuleList().extend(nn.Linear(1, 1))


# ---- ModuleDict --------------------------------------------------------------------------------


def _md(lib):
    return lib.ModuleDict({"b": lib.Linear(1, 2), "a": lib.Linear(2, 3)})


def _md_set(c, lib, ex):
    c["z"] = ex[0]
    c["b"] = ex[1]
    return c


def _md_del(c, lib, ex):
    del c["b"]
    return c


def _md_pop(c, lib, ex):
    assert c.pop("a").in_features == 2
    return c


def _md_clear(c, lib, ex):
    c.clear()
    return c


def _md_update(arg):
    def op(c, lib, ex):
        c.update(arg(lib, ex))
        return c

    return op


MD_OPS = {
    "setitem": _md_set,
    "delitem": _md_del,
    "pop": _md_pop,
    "clear": _md_clear,
    "update_pairs": _md_update(lambda lib, ex: [("y", ex[0]), ["b", ex[1]]]),
    "update_dict": _md_update(lambda lib, ex: {"y": ex[0], "x": ex[1]}),
    "update_ordered": _md_update(lambda lib, ex: OrderedDict([("y", ex[0]), ("x", ex[1])])),
    "update_moduledict": _md_update(lambda lib, ex: lib.ModuleDict({"y": ex[0]})),
}


@pytest.mark.parametrize("op", list(MD_OPS))
def test_moduledict_mutations_match_torch(op):
    outs = [MD_OPS[op](_md(lib), lib, _linears(lib, 2, offset=10)) for lib in (TORCH, JM)]
    _same_structure(outs[1], outs[0])
    assert list(outs[1]) == list(outs[0]) == list(outs[1].keys())
    assert [type(v).__name__ for v in outs[1].values()] == [
        type(v).__name__ for v in outs[0].values()
    ]
    assert [k for k, _ in outs[1].items()] == [k for k, _ in outs[0].items()]


def test_moduledict_dict_api():
    d = _md(JM)
    assert "a" in d and "q" not in d and len(d) == 2 and d["a"] is d.a


MD_ERRORS = {
    "missing_key": lambda lib: _md(lib)["nope"],
    "del_missing": lambda lib: _md(lib).__delitem__("nope"),
    "update_not_iterable": lambda lib: _md(lib).update(5),
    "update_element_not_iterable": lambda lib: _md(lib).update([5]),
    "update_element_wrong_length": lambda lib: _md(lib).update([("a", lib.Linear(1, 1), 3)]),
    "setitem_not_module": lambda lib: _md(lib).__setitem__("c", 3),
    "setitem_dotted_key": lambda lib: _md(lib).__setitem__("c.d", lib.Linear(1, 1)),
    "setitem_existing_attribute": lambda lib: _md(lib).__setitem__("training", lib.Linear(1, 1)),
}


@pytest.mark.parametrize("case", list(MD_ERRORS))
def test_moduledict_errors_match_torch(case):
    _same_error(MD_ERRORS[case])


def test_moduledict_update_messages():
    with pytest.raises(ValueError, match="element #0 has length 3; 2 is required"):
        nn.ModuleDict().update([("a", nn.Linear(1, 1), 3)])
    with pytest.raises(TypeError, match="iterable of key/value pairs, but got int"):
        nn.ModuleDict().update(5)


# ---- ParameterList / ParameterDict --------------------------------------------------------------


def _torch_repr_as_jax(text):
    """torch prints torch dtypes/tensor types; jaxmodule prints the jax dtype name."""
    for a, b in (
        ("torch.FloatTensor", "float32"),
        ("torch.DoubleTensor", "float64"),
        ("torch.float32", "float32"),
        ("torch.int32", "int32"),
        ("torch.IntTensor", "int32"),
    ):
        text = text.replace(a, b)
    return text


def _pl(lib, arrays):
    conv = (lambda a: torch.from_numpy(np.asarray(a))) if lib is TORCH else jnp.asarray
    return lib.ParameterList(
        [lib.Parameter(conv(arrays[0])), conv(arrays[1]), "note", conv(arrays[2])]
    )


def test_parameterlist_matches_torch():
    arrays = [randn(2, 3), randn(4, seed=1), np.array(2.0, np.float32)]
    t, j = _pl(TORCH, arrays), _pl(JM, arrays)
    _same_structure(j, t)
    assert repr(j) == _torch_repr_as_jax(repr(t))
    assert isinstance(j[1], nn.Parameter) and j[2] == "note" and j[-1].shape == ()
    assert [type(v).__name__ for v in j] == ["Parameter", "Parameter", "str", "Parameter"]
    j.load_state_dict(t.state_dict())
    for a, b in zip(j.parameters(), t.parameters()):
        assert_close(a, b)
    for lib_list in (t, j):
        lib_list.append(randn(1) if lib_list is j else torch.zeros(1))
        lib_list[0] = torch.ones(2, 3) if lib_list is t else jnp.ones((2, 3))
        lib_list.extend(["x"])
    _same_structure(j, t)
    assert repr(j[1:4]) == _torch_repr_as_jax(repr(t[1:4]))
    assert repr(j[::-2]) == _torch_repr_as_jax(repr(t[::-2]))
    assert (
        repr(JM.ParameterList([jnp.zeros((), jnp.int32)]))
        == "ParameterList(  (0): Parameter containing: [int32 of size ])"
    )


def test_parameterlist_is_a_pytree():
    pl = nn.ParameterList([jnp.ones(2), "note", jnp.zeros((1, 2))])
    out = jax.jit(lambda m: jax.tree.map(lambda v: v + 1, m))(pl)
    assert type(out) is nn.ParameterList and len(out) == 3 and out[1] == "note"
    assert_close(out[2], np.ones((1, 2), np.float32))
    g = jax.grad(lambda m: (m[0] * 3).sum() + m[2].sum())(pl)
    assert_close(g[0], np.full(2, 3.0, np.float32))


PL_ERRORS = {
    "call": lambda lib: lib.ParameterList()(1),
    "index_high": lambda lib: lib.ParameterList([lib.Parameter(_ones(lib))])[1],
    "extend_array": lambda lib: lib.ParameterList().extend(_ones(lib)),
    "extend_int": lambda lib: lib.ParameterList().extend(3),
    "replace_parameter_by_object": lambda lib: lib.ParameterList([_ones(lib)]).__setitem__(0, "x"),
}


def _ones(lib):
    return torch.ones(2) if lib is TORCH else jnp.ones(2)


@pytest.mark.parametrize("case", list(PL_ERRORS))
def test_parameterlist_errors_match_torch(case):
    msgs = _same_error(PL_ERRORS[case])
    if case == "call":
        assert msgs[0] == msgs[1] == "ParameterList should not be called."


def _pd(lib):
    conv = (lambda a: torch.from_numpy(np.asarray(a))) if lib is TORCH else jnp.asarray
    return lib.ParameterDict(
        {"w": conv(randn(2, 3)), "b": lib.Parameter(conv(randn(3, seed=2))), "n": 7}
    )


def test_parameterdict_matches_torch():
    t, j = _pd(TORCH), _pd(JM)
    _same_structure(j, t)
    assert repr(j) == _torch_repr_as_jax(repr(t))
    assert list(j) == list(t) == ["b", "n", "w"]  # a plain dict is inserted sorted, as in torch
    j.load_state_dict(t.state_dict())
    assert_close(j["w"], t["w"])
    for d in (t, j):
        d.update([("z", _ones(TORCH if d is t else JM)), ("a", "text")])
        d["b"] = _ones(TORCH if d is t else JM)
        del d["n"]
        assert d.setdefault("n", None) is None
        assert d.get("missing", 3) == 3
    _same_structure(j, t)
    assert list(j.keys()) == list(t.keys())
    assert [type(v).__name__ for v in j.values()] == [type(v).__name__ for v in t.values()]
    assert list(reversed(j)) == list(reversed(t))
    kj, vj = j.popitem()
    kt, vt = t.popitem()
    assert kj == kt and type(vj).__name__ == type(vt).__name__
    assert list(j.pop("w").shape) == list(t.pop("w").shape)
    _same_structure(j, t)
    _same_structure(j.copy(), t.copy())
    _same_structure(
        j | JM.ParameterDict({"q": jnp.ones(1)}), t | TORCH.ParameterDict({"q": torch.ones(1)})
    )
    _same_structure(
        JM.ParameterDict().fromkeys(["x", "y"]), TORCH.ParameterDict().fromkeys(["x", "y"])
    )
    j.clear()
    t.clear()
    _same_structure(j, t)


PD_ERRORS = {
    "call": lambda lib: lib.ParameterDict()(1),
    "non_string_key": lambda lib: lib.ParameterDict().__setitem__(1, _ones(lib)),
    "missing": lambda lib: lib.ParameterDict()["x"],
    "dotted_key": lambda lib: lib.ParameterDict({"a.b": _ones(lib)}),
    "update_not_iterable": lambda lib: lib.ParameterDict().update(3),
    "update_wrong_length": lambda lib: lib.ParameterDict().update([("a",)]),
    "popitem_empty": lambda lib: lib.ParameterDict().popitem(),
}


@pytest.mark.parametrize("case", list(PD_ERRORS))
def test_parameterdict_errors_match_torch(case):
    msgs = _same_error(PD_ERRORS[case])
    if case in ("call", "non_string_key"):
        assert msgs[0] == msgs[1]


def test_parameterdict_pytree_copies_do_not_share_keys():
    pd = nn.ParameterDict({"a": jnp.ones(2)})
    twin = jax.tree.map(lambda v: v * 2, pd)
    twin["b"] = jnp.zeros(1)
    del twin["a"]
    assert list(pd.keys()) == ["a"] and list(twin.keys()) == ["b"]
    assert_close(pd["a"], np.ones(2, np.float32))


def test_parameterdict_rejected_key_is_not_recorded():
    pd = nn.ParameterDict()
    with pytest.raises(KeyError):
        pd["a.b"] = jnp.ones(1)
    with pytest.raises(TypeError, match="not a string"):
        pd[3] = jnp.ones(1)
    assert len(pd) == 0


def test_container_is_deprecated():
    with pytest.warns(FutureWarning, match="nn.Container` is deprecated"):
        c = nn.Container(fc=nn.Linear(1, 2))
    assert list(c.state_dict()) == ["fc.weight", "fc.bias"]
