"""Shape functions against torch: reshape, squeeze, permute, broadcast, flip, roll, repeat, ..."""

import jaxmodule
import numpy as np
import pytest

from tests.functions._harness import C, E, check, check_error, randint, randn

X = randn(2, 3, 4)
S = randn(1, 3, 1, 2, seed=1)
V = randn(5, seed=2)
Z = np.array(1.5, np.float32)
INTS = randint(0, 9, 2, 3)

CASES = [
    C("reshape", X, (6, 4)),
    C("reshape", X, (-1,)),
    C("reshape", X, [4, -1]),
    C("reshape", Z, (1, 1)),
    C("flatten", X),
    C("flatten", X, 1),
    C("flatten", X, 0, 1),
    C("flatten", X, -2, -1),
    C("flatten", Z),
    C("unflatten", X, 2, (2, 2)),
    C("unflatten", X, -1, (2, -1)),
    C("unflatten", X, 0, (1, 2)),
    C("ravel", X),
    C("squeeze", S),
    C("squeeze", S, 0),
    C("squeeze", S, 1),
    C("squeeze", S, (0, 2)),
    C("squeeze", S, -2),
    C("squeeze", S, (1, -1)),
    C("squeeze", Z),
    C("squeeze", Z, 0),
    C("unsqueeze", X, 0),
    C("unsqueeze", X, -1),
    C("unsqueeze", X, 3),
    C("unsqueeze", X, -4),
    C("unsqueeze", Z, 0),
    C("permute", X, (2, 0, 1)),
    C("permute", X, [-1, 1, 0]),
    C("transpose", X, 0, 2),
    C("transpose", X, -1, -2),
    C("transpose", X, 1, 1),
    C("swapaxes", X, 0, 1),
    C("swapdims", X, 2, 0),
    C("t", INTS),
    C("t", V),
    C("t", Z),
    C("adjoint", X),
    C("movedim", X, 0, -1),
    C("movedim", X, (0, 1), (2, 0)),
    C("moveaxis", X, -1, 0),
    C("flip", X, (0,)),
    C("flip", X, (0, 2)),
    C("flip", X, [-1]),
    C("fliplr", INTS),
    C("flipud", V),
    C("roll", X, 1),
    C("roll", X, -2, 1),
    C("roll", X, (1, 2), (0, -1)),
    C("roll", V, 7, 0),
    C("rot90", INTS),
    C("rot90", X, 2, (1, 2)),
    C("rot90", INTS, -1, [0, 1]),
    C("repeat_interleave", X, 2),
    C("repeat_interleave", X, 2, 1),
    C("repeat_interleave", X, 3, dim=-1),
    C("repeat_interleave", INTS, np.array([1, 0, 2], np.int64), 1, jit=False),
    C("repeat_interleave", INTS, np.array([1, 0, 2], np.int64), 1, output_size=3),
    C("repeat_interleave", np.array([2, 0, 1], np.int64), jit=False),
    C("repeat_interleave", V, np.array(2, np.int64), 0, jit=False),
    C("tile", X, (2,)),
    C("tile", X, (2, 1, 1)),
    C("tile", INTS, (1, 2, 2)),
    C("tile", V, [3]),
    C("broadcast_to", V, (3, 5)),
    C("broadcast_to", S, (2, 1, 3, 4, 2)),
    C("broadcast_to", S, (-1, 3, 5, -1)),
    C("broadcast_to", Z, (2, 2)),
    C("broadcast_tensors", V, randn(3, 1, seed=3)),
    C(
        "broadcast_shapes",
        (2, 1),
        (3,),
        1,
        jit=False,
        tfn=lambda *a: __import__("torch").broadcast_shapes(*a),
    ),
    C("atleast_1d", Z),
    C("atleast_2d", V),
    C("atleast_3d", INTS),
    C("atleast_3d", V),
    C("atleast_2d", [Z, V]),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    check(case, CASES)


ERRORS = [
    E("reshape", X, (5, -1), exc=RuntimeError, match="is invalid for input of size 24"),
    E("reshape", X, (-1, -1), exc=RuntimeError, match="only one dimension can be inferred"),
    E("unsqueeze", X, 4, exc=IndexError, match="Dimension out of range"),
    E("squeeze", X, 3, exc=IndexError, match="Dimension out of range"),
    E("permute", X, (0, 1), exc=RuntimeError, match="number of dimensions"),
    E("permute", X, (0, 1, 1), exc=RuntimeError, match="appears multiple times"),
    E("transpose", X, 0, 3, exc=IndexError, match="Dimension out of range"),
    E("flatten", X, 2, 1, exc=RuntimeError, match="start_dim cannot come after end_dim"),
    E("unflatten", X, 1, (2, 2), exc=RuntimeError, match="don't multiply up"),
    E("t", X, exc=RuntimeError, match="<= 2 dimensions"),
    E("broadcast_to", V, (3, 4), exc=RuntimeError, match="must match the existing size"),
    E("broadcast_to", V, (-1, 5), exc=RuntimeError, match="leading, non-existing dimension"),
    E("roll", X, (1, 2), 0, exc=RuntimeError, match="shifts and dimensions must align"),
    E("fliplr", V, exc=RuntimeError, match=">= 2-d"),
]


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_torch(case):
    check_error(case)


def test_repeat_interleave_with_array_repeats_needs_output_size_under_jit():
    import jax

    with pytest.raises(RuntimeError, match="output_size"):
        jax.jit(lambda r: jaxmodule.repeat_interleave(V, r, 0))(np.ones(5, np.int32))
