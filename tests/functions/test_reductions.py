"""Reductions and scans against torch: dims (negative, tuples), keepdim, dtypes, named tuples."""

import numpy as np
import pytest

from tests.functions._harness import C, E, check, check_error, randint, randn

X = randn(3, 4, 5)
X2 = randn(4, 6, seed=1)
INTS = randint(-5, 6, 3, 4)  # int64 on the torch side, int32 on jaxmodule's
B = randn(3, 4, seed=2) > 0
TIES = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 1.0, 5.0]], np.float32)
NAN = np.array([[1.0, np.nan, 3.0], [2.0, 0.5, 4.0]], np.float32)
MODE = np.array([[1, 2, 2, 1, 3], [4, 4, 0, 0, 0]], np.int64)

CASES = [
    C("sum", X),
    C("sum", X, 1),
    C("sum", X, dim=-1),
    C("sum", X, dim=(0, -1), keepdim=True),
    C("sum", X, dim=[2, 0]),
    C("sum", INTS),
    C("sum", INTS, 0),
    C("sum", B, 1),
    C("sum", X, 1, dtype=np.float16),
    C("nansum", NAN, 1),
    C("nansum", NAN),
    C("mean", X),
    C("mean", X, (1, 2)),
    C("mean", X, -2, True),
    C("mean", INTS, 1, dtype=np.float32),
    C("nanmean", NAN, 1),
    C("prod", X2),
    C("prod", X2, 1),
    C("prod", X2, -1, keepdim=True),
    C("prod", INTS, 0),
    C("std", X),
    C("std", X, 1),
    C("std", X, dim=(0, 2), keepdim=True),
    C("std", X, 1, False),
    C("std", X, 1, correction=0),
    C("std", X, dim=-1, correction=2),
    C("std", X, False),
    C("var", X),
    C("var", X, 0),
    C("var", X, dim=-1, unbiased=False, keepdim=True),
    C("var", X, [0, 1], correction=0),
    C("std_mean", X, 1),
    C("var_mean", X, dim=(0, 1), keepdim=True),
    C("var_mean", X, correction=0),
    C("max", X),
    C("max", X, 1),
    C("max", X, -1, True),
    C("max", X, X[::-1].copy()),
    C("max", INTS, 0),
    C("max", TIES, 1),
    C("max", NAN, 1),
    C("max", B, 0),
    C("min", X),
    C("min", X, 0),
    C("min", X, dim=2, keepdim=True),
    C("min", INTS, -1),
    C("min", TIES, 1),
    C("min", NAN, 1),
    C("amax", X),
    C("amax", X, (0, 2)),
    C("amax", X, -1, True),
    C("amin", X, 1),
    C("amin", INTS, (0, 1)),
    C("aminmax", X, dim=1),
    C("aminmax", X),
    C("aminmax", INTS, dim=0, keepdim=True),
    C("argmax", X),
    C("argmax", X, 1),
    C("argmax", X, -1, True),
    C("argmax", TIES, 1),
    C("argmax", NAN, 1),
    C("argmin", X, 0),
    C("argmin", INTS, 1),
    C("argmin", TIES, -1),
    C("all", B),
    C("all", B, 1),
    C("all", B, -1, True),
    C("all", INTS),
    C("all", INTS, (0, 1)),
    C("any", B),
    C("any", B, 0),
    C("any", X, (0, 1)),
    C("any", INTS.astype(np.uint8), 1),
    C("all", INTS.astype(np.uint8)),
    C("count_nonzero", INTS),
    C("count_nonzero", INTS, 1),
    C("count_nonzero", B, (0, 1)),
    C("logsumexp", X, 1),
    C("logsumexp", X, (0, 2), True),
    C("logsumexp", INTS, 1),
    C("logsumexp", np.array([[-np.inf, -np.inf], [0.0, 1.0]], np.float32), 1),
    C("cumsum", X, 1),
    C("cumsum", X, -1),
    C("cumsum", INTS, 0),
    C("cumsum", B, 1),
    C("cumsum", X, 0, dtype=np.float16),
    C("cumprod", X2, 1),
    C("cumprod", INTS, -1),
    C("cummax", X, 1),
    C("cummax", np.array([1, 3, 3, 2, 3, 0], np.int64), 0),
    C("cummax", np.array([1.0, np.nan, 3.0, np.nan, 0.0], np.float32), 0),
    C("cummin", TIES, 1),
    C("cummin", X, -1),
    C("median", X),
    C("median", X, 1),
    C("median", X2, 0, True),
    C("median", INTS, 1),
    C("median", np.array([1.0, 2, 2, 1, 3, 4], np.float32), 0),
    C("median", NAN, 1),
    C("median", NAN),
    C("nanmedian", NAN, 1),
    C("nanmedian", NAN),
    C("nanmedian", X, -1),
    C("kthvalue", X, 2),
    C("kthvalue", X, 1, 0),
    C("kthvalue", X2, 3, 1, True),
    C("kthvalue", INTS, 2, 0),
    C("mode", MODE),
    C("mode", MODE, 0),
    C("mode", MODE, -1, True),
    C("mode", TIES, 1),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    check(case, CASES)


ERRORS = [
    E("sum", X, 3, exc=IndexError, match="Dimension out of range"),
    E("sum", X, (0, 0), exc=RuntimeError, match="appears multiple times"),
    E("mean", INTS, exc=RuntimeError, match="could not infer output dtype"),
    E("std", INTS, exc=RuntimeError, match="floating point"),
    E("max", np.zeros((0,), np.float32), exc=(RuntimeError, IndexError), match="numel"),
    E("kthvalue", X, 6, exc=RuntimeError, match="out of range"),
    E("argmax", X, -4, exc=IndexError, match="Dimension out of range"),
]


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_torch(case):
    check_error(case)


def test_var_rejects_unbiased_and_correction():
    import jaxmodule

    with pytest.raises(RuntimeError, match="both"):
        jaxmodule.var(X, 1, unbiased=True, correction=0)
