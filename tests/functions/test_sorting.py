"""Sorting and searching against torch: tie order (stable), NaN placement, topk, searchsorted, unique."""

import numpy as np
import pytest

from tests.functions._harness import C, E, check, check_error, randint, randn

X = randn(3, 5)
TIES = np.array([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, -1.0, 0.0, 5.0]], np.float32)
NAN = np.array([1.0, np.nan, 3.0, 3.0, 2.0, 3.0], np.float32)
INTS = randint(-4, 5, 3, 6)
SORTED = np.array([1.0, 2.0, 2.0, 4.0, 7.0], np.float32)
VALUES = np.array([[0.5, 2.0, 7.0], [9.0, 1.0, 4.0]], np.float32)
BATCH_SORTED = np.sort(randn(2, 4, seed=1), axis=-1)
BATCH_VALUES = randn(2, 3, seed=2)
U = np.array([[1, 3, 1], [2, 2, 0], [1, 3, 1]], np.int64)

CASES = [
    C("sort", X),
    C("sort", X, 0),
    C("sort", X, -1, True),
    C("sort", TIES),
    C("sort", TIES, descending=True),
    C("sort", TIES, stable=True),
    C("sort", NAN),
    C("sort", NAN, descending=True),
    C("sort", INTS, 1),
    C("sort", INTS, dim=0, descending=True, stable=True),
    C("argsort", X),
    C("argsort", TIES, descending=True),
    C("argsort", INTS, 0),
    C("argsort", NAN, stable=True),
    C("msort", X),
    C("msort", INTS),
    C("topk", X, 2),
    C("topk", X, 3, 0),
    C("topk", X, 2, largest=False),
    C("topk", X, 5, -1, True, True),
    C("topk", INTS.astype(np.float32) + randn(3, 6, seed=3) * 0.01, 4, 1),
    C("topk", X, 0),
    C("bucketize", VALUES, SORTED),
    C("bucketize", VALUES, SORTED, right=True),
    C("bucketize", VALUES, SORTED, out_int32=True),
    C("searchsorted", SORTED, VALUES),
    C("searchsorted", SORTED, VALUES, right=True),
    C("searchsorted", SORTED, VALUES, side="right"),
    C("searchsorted", BATCH_SORTED, BATCH_VALUES),
    C("searchsorted", BATCH_SORTED, BATCH_VALUES, out_int32=True, side="left"),
    C(
        "searchsorted",
        np.array([4.0, 1.0, 2.0], np.float32),
        VALUES,
        sorter=np.array([1, 2, 0], np.int64),
    ),
    C("unique", U, jit=False),
    C("unique", U, return_counts=True, jit=False),
    C("unique", U, return_inverse=True, return_counts=True, jit=False),
    C("unique", U, dim=0, jit=False),
    C("unique", U, return_inverse=True, dim=1, jit=False),
    C("unique", X > 0, jit=False),
    C("unique_consecutive", np.array([1, 1, 2, 2, 3, 1, 1], np.int64), jit=False),
    C(
        "unique_consecutive",
        np.array([1, 1, 2, 2, 3, 1, 1], np.int64),
        return_inverse=True,
        return_counts=True,
        jit=False,
    ),
    C("unique_consecutive", U, dim=0, return_counts=True, jit=False),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    check(case, CASES)


def test_topk_ties_pick_lowest_indices_and_torch_values():
    """Among equal values torch's kernel may return other indices; the values always agree."""
    import jaxmodule
    import torch

    got = jaxmodule.topk(TIES, 2)
    want = torch.topk(torch.from_numpy(TIES), 2)
    np.testing.assert_array_equal(np.asarray(got.values), want.values.numpy())
    np.testing.assert_array_equal(np.asarray(got.indices), [[1, 2], [4, 0]])
    np.testing.assert_array_equal(
        np.take_along_axis(TIES, np.asarray(got.indices), 1), want.values.numpy()
    )


ERRORS = [
    E("topk", X, 6, exc=RuntimeError, match="out of range"),
    E("sort", X, 2, exc=IndexError, match="Dimension out of range"),
    E("bucketize", VALUES, VALUES, exc=RuntimeError, match="boundaries tensor must be 1 dimension"),
    E(
        "searchsorted",
        SORTED,
        VALUES,
        right=True,
        side="left",
        exc=RuntimeError,
        match="can't be set to opposites",
    ),
    E("searchsorted", BATCH_SORTED, VALUES[:1].copy(), exc=RuntimeError, match="must match"),
]


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_torch(case):
    check_error(case)
