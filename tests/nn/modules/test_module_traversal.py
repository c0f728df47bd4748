"""Traversal (`parameters`, `named_*`, `children`, `modules`, `get_*`) against torch on one tree."""

import numpy as np
import pytest

from tests.helpers import to_numpy
from tests.nn.modules._module_trees import JM, RICH, TORCH, build, same_error


@pytest.fixture(scope="module")
def trees():
    return build(TORCH, RICH), build(JM, RICH)


def _described(items):
    """(name, shape, dtype, values) for (name, array) pairs; modules by class name."""
    out = []
    for name, v in items:
        if hasattr(v, "shape"):
            a = to_numpy(v)
            out.append((name, a.shape, str(a.dtype), a.tolist()))
        else:
            out.append((name, type(v).__name__))
    return out


@pytest.mark.parametrize(
    "method,kwargs",
    [
        ("named_parameters", {}),
        ("named_parameters", {"prefix": "model"}),
        ("named_parameters", {"recurse": False}),
        ("named_parameters", {"remove_duplicate": False}),
        ("named_parameters", {"prefix": "p", "recurse": False, "remove_duplicate": False}),
        ("named_buffers", {}),
        ("named_buffers", {"prefix": "x.y"}),
        ("named_buffers", {"recurse": False}),
        ("named_buffers", {"remove_duplicate": False}),
        ("named_children", {}),
        ("named_modules", {}),
        ("named_modules", {"prefix": "root"}),
        ("named_modules", {"remove_duplicate": False}),
        ("named_modules", {"memo": "fresh-set"}),
    ],
)
def test_named_iterators(trees, method, kwargs):
    t, j = trees
    tk = dict(kwargs)
    jk = dict(kwargs)
    if kwargs.get("memo") == "fresh-set":
        tk["memo"], jk["memo"] = set(), set()
    assert _described(getattr(j, method)(**jk)) == _described(getattr(t, method)(**tk))


@pytest.mark.parametrize(
    "method,kwargs",
    [
        ("parameters", {}),
        ("parameters", {"recurse": False}),
        ("buffers", {}),
        ("buffers", {"recurse": False}),
        ("children", {}),
        ("modules", {}),
    ],
)
def test_unnamed_iterators(trees, method, kwargs):
    t, j = trees
    got = list(getattr(j, method)(**kwargs))
    want = list(getattr(t, method)(**kwargs))
    assert _described(enumerate(got)) == _described(enumerate(want))


def test_memo_skips_modules_already_seen(trees):
    t, j = trees
    tm = {t.enc}
    jm = {j.enc}
    assert [n for n, _ in j.named_modules(memo=jm)] == [n for n, _ in t.named_modules(memo=tm)]
    assert j.enc in jm and j.dec.inner in jm


def test_shared_and_tied_objects_are_the_same(trees):
    _, j = trees
    assert j.dec.again is j.enc.lin and j.enc_alias is j.enc
    assert j.dec.tied is j.enc.w
    params = list(j.parameters())
    assert len(params) == len({id(p) for p in params})
    assert sum(p is j.enc.w for p in j.parameters()) == 1


def test_iterators_are_lazy_generators(trees):
    _, j = trees
    import types

    for method in (
        "parameters",
        "named_parameters",
        "buffers",
        "named_buffers",
        "children",
        "named_children",
        "modules",
        "named_modules",
    ):
        assert isinstance(getattr(j, method)(), types.GeneratorType)


@pytest.mark.parametrize(
    "target", ["", "enc", "enc.lin", "dec.inner", "dec.again", "enc_alias.nob", "leaf"]
)
def test_get_submodule(trees, target):
    t, j = trees
    assert type(j.get_submodule(target)).__name__ == type(t.get_submodule(target)).__name__
    assert [n for n, _ in j.get_submodule(target).named_parameters()] == [
        n for n, _ in t.get_submodule(target).named_parameters()
    ]


@pytest.mark.parametrize(
    "target", ["alpha", "enc.w", "enc.lin.weight", "dec.tied", "dec.again.bias", "leaf.weight"]
)
def test_get_parameter(trees, target):
    t, j = trees
    np.testing.assert_array_equal(
        to_numpy(j.get_parameter(target)), to_numpy(t.get_parameter(target))
    )
    assert (
        j.get_parameter(target)
        is j.get_submodule(target.rpartition(".")[0])._parameters[target.rpartition(".")[2]]
    )


@pytest.mark.parametrize("target", ["stat", "scratch", "enc.mask", "dec.inner.b", "leaf.count"])
def test_get_buffer(trees, target):
    t, j = trees
    np.testing.assert_array_equal(to_numpy(j.get_buffer(target)), to_numpy(t.get_buffer(target)))


@pytest.mark.parametrize(
    "getter,target,part",
    [
        ("get_submodule", "nope", "Block has no attribute `nope`"),
        ("get_submodule", "enc.nope", "Block has no attribute `nope`"),
        ("get_submodule", "alpha", "`alpha` is not an nn.Module"),
        ("get_submodule", "enc.lin.weight", "`weight` is not an nn.Module"),
        ("get_submodule", "leaf.count.x", "`count` is not an nn.Module"),
        ("get_parameter", "nope", "Block has no attribute `nope`"),
        ("get_parameter", "enc.lin.nope", "Linear has no attribute `nope`"),
        ("get_parameter", "stat", "`stat` is not an nn.Parameter"),
        ("get_parameter", "enc", "`enc` is not an nn.Parameter"),
        ("get_parameter", "gone", "`gone` is not an nn.Parameter"),
        ("get_parameter", "x.weight", "Block has no attribute `x`"),
        ("get_buffer", "nope", "Block has no attribute `nope`"),
        ("get_buffer", "alpha", "`alpha` is not a buffer"),
        ("get_buffer", "enc.lin.weight", "`weight` is not a buffer"),
        ("get_buffer", "training", "`training` is not a buffer"),
    ],
)
def test_get_errors(trees, getter, target, part):
    t, j = trees
    same_error(lambda: getattr(t, getter)(target), lambda: getattr(j, getter)(target), part)


def test_none_entries_are_skipped(trees):
    t, j = trees
    assert "gone" in j._parameters and j.gone is None
    assert "empty" in j._buffers and j.empty is None
    assert all(n != "gone" for n, _ in j.named_parameters())
    assert all(n != "empty" for n, _ in j.named_buffers())


def test_none_child_is_skipped():
    t, j = build(TORCH, RICH), build(JM, RICH)
    t.add_module("hole", None)
    j.add_module("hole", None)
    for method in ("named_children", "named_modules", "named_parameters"):
        assert [n for n, _ in getattr(j, method)()] == [n for n, _ in getattr(t, method)()]
    assert repr(j) == repr(t)


def test_prefix_with_recurse_false_and_duplicates():
    """Tied parameter inside one module: remove_duplicate=False yields both names."""
    t, j = build(TORCH, RICH), build(JM, RICH)
    t.enc.w2 = t.enc.w
    j.enc.w2 = j.enc.w
    for kw in ({}, {"remove_duplicate": False}, {"prefix": "q", "recurse": False}):
        assert [n for n, _ in j.enc.named_parameters(**kw)] == [
            n for n, _ in t.enc.named_parameters(**kw)
        ]
