"""Joining and splitting against torch: cat (with promotion), stack, split, chunk, narrow, ..."""

import jaxmodule
import numpy as np
import pytest

from tests.functions._harness import C, E, check, check_error, randint, randn

A = randn(2, 3)
B = randn(4, 3, seed=1)
INTS = randint(0, 9, 2, 3)
V = randn(5, seed=2)
X = randn(7, 4, 3, seed=3)
EMPTY = np.zeros((0,), np.float32)

CASES = [
    C("cat", [A, B]),
    C("cat", (A, A), 1),
    C("cat", [A, A], -1),
    C("cat", [A, INTS]),
    C("cat", [INTS, INTS.astype(np.int8)]),
    C("cat", [EMPTY, A]),
    C("cat", [A]),
    C("concat", [A, B], dim=0),
    C("concatenate", [A, A], axis=1),
    C("stack", [A, A]),
    C("stack", [A, A], 1),
    C("stack", [A, A], -1),
    C("stack", [A, INTS], 2),
    C("stack", [np.array(1.0, np.float32), np.array(2.0, np.float32)]),
    C("hstack", [A, A]),
    C("hstack", [V, V]),
    C("vstack", [A, B]),
    C("vstack", [V, V]),
    C("row_stack", [V, V]),
    C("dstack", [A, A]),
    C("dstack", [V, V]),
    C("column_stack", [V, V]),
    C("column_stack", [A, A[:, :1].copy()]),
    C("split", X, 2),
    C("split", X, 3, 1),
    C("split", X, [1, 2, 4]),
    C("split", X, [1, 2], dim=-1),
    C("split", X, 7),
    C("split", X, 10),
    C("split", X, [3, 0, 4]),
    C("chunk", X, 2),
    C("chunk", X, 3, 1),
    C("chunk", X, 4, -1),
    C("chunk", X, 10),
    C("chunk", V, 3),
    C("unbind", X),
    C("unbind", X, 1),
    C("unbind", X, -1),
    C("narrow", X, 0, 1, 3),
    C("narrow", X, -1, 1, 2),
    C("narrow", X, 1, -2, 2),
    C("narrow", X, 0, 0, 0),
    C("narrow", X, 0, np.array(2, np.int64), 3),
    C("tensor_split", X, 3),
    C("tensor_split", X, 2, 1),
    C("tensor_split", X, [1, 4]),
    C("tensor_split", X, (1, 5), dim=0),
    C("tensor_split", X, [-1, 10]),
    C("tensor_split", X, [4, 2]),
    C("tensor_split", V, 4),
    C("tensor_split", X, np.array(3, np.int64), jit=False),
    C("tensor_split", X, np.array([2, 3], np.int64), jit=False),
    C("hsplit", A, 3),
    C("hsplit", V, [1, 3]),
    C("vsplit", B, 2),
    C("vsplit", B, [1]),
    C("dsplit", X, 3),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    check(case, CASES)


ERRORS = [
    E(
        "cat",
        [A, randn(2, 4)],
        exc=RuntimeError,
        match="Sizes of tensors must match except in dimension 0",
    ),
    E("cat", [], exc=ValueError, match="non-empty list"),
    E("cat", [np.array(1.0, np.float32)], exc=RuntimeError, match="zero-dimensional tensor"),
    E("cat", A, exc=TypeError, match="must be tuple of Tensors"),
    E("cat", [A, A], 2, exc=IndexError, match="Dimension out of range"),
    E("stack", [A, B], exc=RuntimeError, match="stack expects each tensor to be equal size"),
    E(
        "split",
        X,
        [1, 2],
        exc=RuntimeError,
        match="split_with_sizes expects split_sizes to sum exactly to 7",
    ),
    E("split", X, 0, exc=RuntimeError, match="split_size can only be 0"),
    E("chunk", X, 0, exc=RuntimeError, match="chunk expects `chunks` to be greater than 0"),
    E(
        "narrow",
        X,
        0,
        5,
        3,
        exc=RuntimeError,
        match=r"start \(5\) \+ length \(3\) exceeds dimension size \(7\)",
    ),
    E("narrow", X, 0, -8, 1, exc=IndexError, match="start out of range"),
    E("tensor_split", X, 0, exc=RuntimeError, match="number of sections must be larger than 0"),
    E("hsplit", randn(2, 5), 2, exc=RuntimeError, match="not divisible by the split_size 2"),
    E("vsplit", V, 1, exc=RuntimeError, match="at least 2 dimension"),
]


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_torch(case):
    check_error(case)


def test_narrow_with_traced_start():
    import jax

    got = jax.jit(lambda s: jaxmodule.narrow(X, 0, s, 3))(np.int32(2))
    np.testing.assert_array_equal(np.asarray(got), X[2:5])
