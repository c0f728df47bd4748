"""Indexing against torch: gather/scatter (index smaller than input), masks, where, nonzero, ..."""

import jax
import jaxmodule
import numpy as np
import pytest

from tests.functions._harness import C, E, check, check_error, randint, randn

X = randn(3, 4)
X3 = randn(2, 3, 4, seed=1)
INTS = randint(-5, 6, 3, 4)
IDX1 = randint(0, 3, 2, 4, seed=2)  # gather/scatter along dim 0, smaller in dim 0
IDX_SMALL = randint(0, 4, 2, 2, seed=3)  # smaller than X in both dims
PERM = np.array(
    [[2, 0, 1, 3], [1, 3, 0, 2], [0, 1, 3, 2]], np.int64
)  # distinct per row (deterministic scatter)
SRC = randn(3, 4, seed=4)
MASK = randn(3, 4, seed=5) > 0
ROWMASK = np.array([True, False, True, False])
VEC_IDX = np.array([2, 0, 2], np.int64)

CASES = [
    C("gather", X, 0, IDX1),
    C("gather", X, 1, IDX_SMALL),
    C("gather", X, -1, PERM),
    C("gather", INTS, 1, PERM),
    C("gather", X3, 2, randint(0, 4, 2, 3, 2, seed=6)),
    C("scatter", X, 1, PERM, SRC),
    C("scatter", X, 1, PERM[:, :2].copy(), SRC),
    C("scatter", X, 1, PERM, 9.0),
    C("scatter", X, 1, PERM, value=-1.0),
    C("scatter", X, 1, IDX_SMALL, SRC, reduce="add"),
    C("scatter", X, 1, IDX_SMALL, SRC, reduce="multiply"),
    C("scatter", INTS, -1, PERM, randint(0, 3, 3, 4)),
    C("scatter_add", X, 1, IDX_SMALL, SRC),
    C("scatter_add", X, 0, IDX1, SRC),
    C("scatter_add", INTS, 1, PERM, INTS),
    *[
        C("scatter_reduce", X, 1, IDX_SMALL, SRC, r)
        for r in ("sum", "prod", "mean", "amax", "amin")
    ],
    *[
        C("scatter_reduce", X, 0, IDX1, SRC, r, include_self=False)
        for r in ("sum", "prod", "mean", "amax", "amin")
    ],
    C("scatter_reduce", INTS, 1, IDX_SMALL, INTS, "mean"),
    C("index_select", X, 0, VEC_IDX),
    C("index_select", X, 1, np.array([3, 1], np.int64)),
    C("index_select", X3, -1, np.array(2, np.int64)),
    C("index_select", INTS, 0, VEC_IDX),
    C("index_add", X, 0, np.array([0, 2, 0], np.int64), SRC),
    C("index_add", X, 1, np.array([1, 0, 3, 2], np.int64), SRC, alpha=2.0),
    C("index_copy", X, 0, np.array([2, 0, 1], np.int64), SRC),
    C("index_fill", X, 1, np.array([0, 3], np.int64), -2.0),
    C("masked_fill", X, MASK, 0.0),
    C("masked_fill", X, ROWMASK, -np.inf),
    C("masked_fill", INTS, MASK, 7),
    C("masked_fill", X, MASK, np.array(3.5, np.float32)),
    C("masked_fill", INTS, MASK, 2.7),
    C("masked_select", X, MASK, jit=False),
    C("masked_select", X, ROWMASK, jit=False),
    C("where", MASK, X, SRC),
    C("where", MASK, X, 0.0),
    C("where", MASK, INTS, 1.5),
    C("where", ROWMASK, X, INTS),
    C("where", MASK, 1.0, 0.0),
    C("where", MASK, jit=False),
    C("nonzero", INTS, jit=False),
    C("nonzero", INTS, as_tuple=True, jit=False),
    C("nonzero", MASK, jit=False),
    C("argwhere", X3 > 0, jit=False),
    C("take_along_dim", X, PERM, 1),
    C("take_along_dim", X, np.array([[0], [2], [1]], np.int64), 1),
    C("take_along_dim", X, np.array([1, 5, 11], np.int64)),
    C("take_along_dim", X3, randint(0, 2, 1, 3, 4), 0),
    C("take", X, np.array([[0, 11], [5, -1]], np.int64)),
]


@pytest.mark.filterwarnings(
    "ignore:The reduce argument of torch.scatter:UserWarning"
)  # torch's deprecation
@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    check(case, CASES)


ERRORS = [
    E("gather", X, 2, IDX1, exc=IndexError, match="Dimension out of range"),
    E("gather", X, 0, randint(0, 2, 4), exc=RuntimeError, match="same number of dimensions"),
    E(
        "gather",
        X,
        1,
        randint(0, 2, 4, 2),
        exc=RuntimeError,
        match="Size does not match at dimension 0",
    ),
    E("gather", X, 1, X, exc=RuntimeError, match="Expected dtype int64 for index"),
    E("masked_fill", X, INTS, 0.0, exc=RuntimeError, match="only supports boolean masks"),
    E(
        "masked_fill",
        X,
        MASK,
        np.ones(2, np.float32),
        exc=RuntimeError,
        match="0-dimensional value tensor",
    ),
    E("where", INTS, X, SRC, exc=RuntimeError, match="boolean tensor"),
    E("index_select", X, 0, PERM, exc=IndexError, match="Index is supposed to be a vector"),
    E(
        "scatter",
        X,
        1,
        PERM,
        SRC,
        reduce="max",
        exc=RuntimeError,
        match="reduce argument must be either add or multiply",
    ),
]


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_torch(case):
    check_error(case)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: jaxmodule.nonzero(x),
        lambda x: jaxmodule.masked_select(x, x > 0),
        lambda x: jaxmodule.where(x > 0),
    ],
)
def test_value_dependent_shapes_raise_clearly_under_jit(fn):
    with pytest.raises(RuntimeError, match="output shape depends on the values"):
        jax.jit(fn)(X)
