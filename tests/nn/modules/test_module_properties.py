"""Property tests over random module trees: torch parity of structure, and lossless round trips
through state_dict/load_state_dict, pickle, deepcopy and pytree flatten/unflatten."""

import copy
import pickle

import jax
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import to_numpy
from tests.nn.modules._module_trees import JM, TORCH, build, errors, snapshot
from tests.nn.modules.test_module_registration import MISUSE, OPS, SMALL

SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

_shape = st.one_of(st.none(), st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple))
_leaf = st.one_of(
    st.builds(
        lambda i, o, b: {"kind": "linear", "in": i, "out": o, "bias": b},
        st.integers(1, 3),
        st.integers(1, 3),
        st.booleans(),
    ),
    st.just({"kind": "leaf"}),
)


def _block(children):
    return st.builds(
        lambda params, buffers, kids, extra: {
            "kind": "block",
            "params": [(f"p{i}", s) for i, s in enumerate(params)],
            "buffers": [(f"b{i}", s, pers) for i, (s, pers) in enumerate(buffers)],
            "children": [(f"c{i}", k) for i, k in enumerate(kids)],
            "extra": extra,
        },
        st.lists(_shape, max_size=3),
        st.lists(st.tuples(_shape, st.booleans()), max_size=2),
        st.lists(children, max_size=3),
        st.sampled_from([None, "k=1", "a\nb"]),
    )


_node = st.recursive(_leaf, _block, max_leaves=6)
_root = _block(_node)


@st.composite
def trees(draw):
    """A random tree description plus shared children, tied parameters and eval() calls."""
    root = draw(_root)
    probe = build(TORCH, {"root": root})
    blocks = [n for n, m in probe.named_modules() if type(m).__name__ == "Block"]
    modules = [n for n, _ in probe.named_modules() if n]
    params = [n for n, _ in probe.named_parameters()]
    share, tie = [], []
    for i in range(draw(st.integers(0, 2))):
        if not modules:
            break
        parent, source = draw(st.sampled_from(blocks)), draw(st.sampled_from(modules))
        if parent == source or parent.startswith(source + "."):
            continue  # would make a cycle
        share.append((parent, f"s{i}", source))
    for i in range(draw(st.integers(0, 2))):
        if params:
            tie.append((draw(st.sampled_from(blocks)), f"t{i}", draw(st.sampled_from(params))))
    evals = draw(st.lists(st.sampled_from([""] + modules), max_size=2))
    return {"root": root, "share": share, "tie": tie}, evals


def _make(lib, desc, seed=0):
    tree, evals = desc
    m = build(lib, tree, seed)
    for path in evals:
        m.get_submodule(path).eval()
    return m


def _full(m):
    """Names, order, values, classes, flags of everything in the tree."""
    return {
        "sd": [
            (k, str(to_numpy(v).dtype), to_numpy(v).tolist()) for k, v in m.state_dict().items()
        ],
        "params": [(n, p.requires_grad) for n, p in m.named_parameters(remove_duplicate=False)],
        "buffers": [(n, to_numpy(b).tolist()) for n, b in m.named_buffers(remove_duplicate=False)],
        "modules": [
            (n, type(x).__name__, x.training, sorted(x._non_persistent_buffers_set))
            for n, x in m.named_modules(remove_duplicate=False)
        ],
        "repr": repr(m),
        "ties": [
            n
            for n, p in m.named_parameters(remove_duplicate=False)
            if any(p is q for k, q in m.named_parameters() if k != n)
        ],
    }


@SETTINGS
@given(trees())
def test_structure_matches_torch(desc):
    t, j = _make(TORCH, desc), _make(JM, desc)
    assert list(j.state_dict()) == list(t.state_dict())
    for method in ("named_parameters", "named_buffers", "named_modules"):
        for dup in (True, False):
            assert [n for n, _ in getattr(j, method)(remove_duplicate=dup)] == [
                n for n, _ in getattr(t, method)(remove_duplicate=dup)
            ]
    assert [(n, x.training) for n, x in j.named_modules()] == [
        (n, x.training) for n, x in t.named_modules()
    ]
    assert repr(j) == repr(t)


@SETTINGS
@given(trees())
def test_state_dict_round_trip(desc):
    src, dst = _make(JM, desc, seed=0), _make(JM, desc, seed=1)
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    want, got = _full(src), _full(dst)
    # non-persistent buffers are not in the state_dict: they keep dst's own values
    assert got["sd"] == want["sd"] and got["modules"] == want["modules"]
    assert got["repr"] == want["repr"] and got["ties"] == want["ties"]
    # and torch loads the same state_dict into the same architecture
    t = _make(TORCH, desc, seed=1)
    import torch

    t.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in src.state_dict().items()})
    assert [(k, to_numpy(v).tolist()) for k, v in t.state_dict().items()] == [
        (k, v) for k, _, v in want["sd"]
    ]


@SETTINGS
@given(trees())
def test_pickle_and_deepcopy_round_trip(desc):
    m = _make(JM, desc)
    want = _full(m)
    for cp in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert _full(cp) == want
        assert all(a is not b for a, b in zip(cp.parameters(), m.parameters()))


@SETTINGS
@given(trees())
def test_pytree_round_trip(desc):
    m = _make(JM, desc)
    want = _full(m)
    leaves, treedef = jax.tree.flatten(m)
    back = jax.tree.unflatten(treedef, leaves)
    assert type(back) is type(m) and _full(back) == want
    n_unique = len({id(c) for c in (*m.parameters(), *m.buffers())})
    assert len(leaves) == n_unique
    mapped = jax.tree.map(lambda x: x, m)
    assert _full(mapped) == want
    assert jax.tree.structure(mapped) == treedef


@SETTINGS
@given(st.lists(st.sampled_from(sorted(OPS) + sorted(MISUSE)), min_size=1, max_size=6))
def test_random_registration_sequences_match_torch(ops):
    """Any sequence of registration operations and misuses: same outcome as torch after each."""
    t, j = build(TORCH, SMALL), build(JM, SMALL)
    for op in ops:
        fn = OPS[op] if op in OPS else MISUSE[op][0]
        te, je = errors(lambda: fn(TORCH, t)), errors(lambda: fn(JM, j))  # noqa: B023
        assert type(je) is type(te), (op, je, te)
        assert snapshot(j) == snapshot(t), op
        assert sorted(j._non_persistent_buffers_set) == sorted(t._non_persistent_buffers_set)
