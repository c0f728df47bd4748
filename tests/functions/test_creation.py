"""Creation functions added for issue 10 against torch: linspace, logspace, eye, *_like, ..."""

import jaxmodule
import numpy as np
import pytest

from tests.functions._harness import C, E, assert_same, check, check_error, randn, to_jax, to_torch

A = randn(2, 3)
INTS = np.arange(6, dtype=np.int64).reshape(2, 3)

CASES = [
    C("linspace", 0.0, 1.0, 5),
    C("linspace", -3, 7, 11),
    C("linspace", 2.0, 2.0, 1),
    C("linspace", 0.0, 1.0, 0),
    C("linspace", 0.1, 0.9, 7, dtype=np.float16),
    C("linspace", 1.0, 1000.0, 101),
    C("logspace", 0.0, 3.0, 4),
    C("logspace", -1.0, 1.0, 5, base=2.0),
    C("eye", 3),
    C("eye", 2, 4),
    C("eye", 3, dtype=np.int32),
    C("eye", 3, dtype=np.bool_),
    C("full_like", A, 7.0),
    C("full_like", INTS, 3),
    C("full_like", A, 2, dtype=np.int32),
    C("full_like", INTS, 2.5),
    C("zeros_like", INTS),
    C("ones_like", A),
    C("as_tensor", [1.0, 2.0], jit=False),
    C("as_tensor", [1, 2], jit=False),
    C("as_tensor", A, jit=False),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    check(case, CASES)


def test_empty_like_shape_and_dtype():
    import torch

    for x, kw in ((A, {}), (INTS, {}), (A, {"dtype": np.int32})):
        got = jaxmodule.empty_like(to_jax(x), **kw)
        want = torch.empty_like(to_torch(x), **to_torch(kw))
        assert got.shape == tuple(want.shape) and str(got.dtype) == str(want.dtype).replace(
            "torch.", ""
        ).replace("int64", "int32")


def test_from_numpy_keeps_the_dtype():
    import torch

    for a in (np.arange(4, dtype=np.int16), A, np.ones(2, np.float64)):
        assert_same(jaxmodule.from_numpy(a), torch.from_numpy(a))
    with pytest.raises(TypeError, match="expected np.ndarray"):
        jaxmodule.from_numpy([1, 2])


def test_tril_triu_indices_dtype_argument():
    import torch

    assert_same(
        jaxmodule.tril_indices(3, 3, dtype=np.int32), torch.tril_indices(3, 3, dtype=torch.int32)
    )


ERRORS = [
    E("linspace", 0.0, 1.0, -1, exc=RuntimeError, match="number of steps must be non-negative")
]


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_torch(case):
    check_error(case)
