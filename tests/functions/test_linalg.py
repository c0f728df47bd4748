"""Products, norms, triangles and diagonals against torch."""

import numpy as np
import pytest

from tests.functions._harness import C, E, check, check_error, randint, randn

A = randn(3, 4)
B = randn(4, 5, seed=1)
V4 = randn(4, seed=2)
V3 = randn(3, seed=3)
B1 = randn(2, 3, 4, seed=4)
B2 = randn(2, 4, 5, seed=5)
BIAS = randn(2, 3, 5, seed=6)
M35 = randn(3, 5, seed=7)
IA = randint(-3, 4, 3, 4)
IB = randint(-3, 4, 4, 2, seed=1)
SQ = randn(4, 4, seed=8)
NANS = np.full((3, 5), np.nan, np.float32)
P1 = randn(2, 6, 3, seed=9)
P2 = randn(2, 4, 3, seed=10)
BIG1 = randn(30, 3, seed=11)

CASES = [
    C("matmul", A, B),
    C("matmul", A, V4),
    C("matmul", V3, A),
    C("matmul", V4, V4),
    C("matmul", B1, B2),
    C("matmul", B1, B),
    C("matmul", randn(5, 1, 3, 4, seed=12), B2),
    C("matmul", IA, IB),
    C("mm", A, B),
    C("mm", IA, IB),
    C("bmm", B1, B2),
    C("mv", A, V4),
    C("baddbmm", BIAS, B1, B2),
    C("baddbmm", BIAS, B1, B2, beta=0.5, alpha=2.0),
    C("baddbmm", M35, B1, B2),
    C("baddbmm", np.full((2, 3, 5), np.nan, np.float32), B1, B2, beta=0),
    C("addmm", M35, A, B),
    C("addmm", randn(5, seed=13), A, B, beta=2, alpha=-1),
    C("addmm", NANS, A, B, beta=0.0),
    C("addmv", V3, A, V4, alpha=0.5),
    C("addbmm", M35, B1, B2),
    C("einsum", "ij,jk->ik", A, B),
    C("einsum", "bij,bjk->bik", B1, B2),
    C("einsum", "ii", SQ),
    C("einsum", "i,j->ij", [V3, V4]),
    C("einsum", "...ij->...ji", B1),
    C("einsum", "bij->b", B1),
    C("outer", V3, V4),
    C("outer", V3, randint(0, 3, 4)),
    C("ger", V3, V4),
    C("dot", V4, V4),
    C("dot", randint(0, 5, 4), randint(0, 5, 4, seed=1)),
    C("inner", A, randn(2, 4, seed=14)),
    C("inner", V4, V4),
    C("tensordot", A, B, 1),
    C("tensordot", B1, B2, ([2], [1])),
    C("tensordot", A, A, 2),
    C("kron", A[:2, :2].copy(), SQ[:2, :3].copy()),
    C("cross", randn(4, 3, seed=15), randn(4, 3, seed=16), dim=1),
    C("cross", randn(3, 2, seed=17), randn(3, 2, seed=18), dim=0),
    C("norm", A),
    C("norm", A, 1),
    C("norm", A, 2, 1),
    C("norm", A, float("inf"), 0),
    C("norm", A, 0, 1),
    C("norm", A, "fro", (0, 1)),
    C("norm", A, dim=-1, keepdim=True),
    C("norm", B1, 3, (1, 2)),
    C("norm", A, float("-inf")),
    C("norm", A, 0.5, 1),
    C("norm", A, "nuc"),
    C("norm", B1, "nuc", (1, 2)),
    C("norm", A, p=2, dim=1, dtype=np.float32),
    C("dist", A, randn(3, 4, seed=19)),
    C("dist", A, randn(3, 4, seed=19), 1),
    C("cdist", P1, P2),
    C("cdist", P1, P2, 1.0),
    C("cdist", P1, P2, 0.0),
    C("cdist", P1, P2, float("inf")),
    C("cdist", P1[0].copy(), P2[0].copy(), 3.0),
    C("cdist", BIG1[:5].copy(), BIG1[5:].copy(), compute_mode="donot_use_mm_for_euclid_dist"),
    C("tril", A),
    C("tril", A, 1),
    C("tril", B1, -1),
    C("triu", A),
    C("triu", B1, 2),
    C("triu", IA, -1),
    C("diag", V4),
    C("diag", V4, 1),
    C("diag", V4, -2),
    C("diag", A),
    C("diag", A, 1),
    C("diag", A, -1),
    C("diagonal", A),
    C("diagonal", A, 1),
    C("diagonal", B1, 0, 1, 2),
    C("diagonal", B1, -1, -1, 0),
    C("diag_embed", V4),
    C("diag_embed", A, 1),
    C("diag_embed", A, -1, 0, 2),
    C("diag_embed", B1, 0, -1, -2),
    C("diagflat", A),
    C("diagflat", V3, 1),
    C("trace", SQ),
    C("trace", IA),
    C("tril_indices", 4, 3, jit=False),
    C("tril_indices", 3, 5, 1, jit=False),
    C("triu_indices", 4, 4, -1, jit=False),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    check(case, CASES)


def test_cdist_matmul_path_close_to_torch():
    """With more than 25 rows torch switches to |a|^2 + |b|^2 - 2ab, as jaxmodule does: both lose
    accuracy for nearby points, so compare at float32 matmul accuracy (1e-4 relative)."""
    import jaxmodule
    import torch

    got = np.asarray(jaxmodule.cdist(BIG1, BIG1[::-1].copy()))
    want = torch.cdist(torch.from_numpy(BIG1), torch.from_numpy(BIG1[::-1].copy())).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


ERRORS = [
    E("matmul", A, A, exc=RuntimeError, match=r"shapes cannot be multiplied \(3x4 and 3x4\)"),
    E("matmul", A, IB, exc=RuntimeError, match="same dtype"),
    E("matmul", np.array(1.0, np.float32), A, exc=RuntimeError, match="at least 1D"),
    E("mm", B1, B, exc=RuntimeError, match="must be a 2D tensor"),
    E("bmm", A, B, exc=RuntimeError, match="must be a 3D tensor"),
    E("dot", V4, V3, exc=RuntimeError, match="inconsistent tensor size"),
    E("dot", A, A, exc=RuntimeError, match="1D tensors expected"),
    E("tril", V4, exc=RuntimeError, match="at least 2 dimensions"),
    E("diag", B1, exc=RuntimeError, match="1D or 2D"),
    E("diagonal", A, 0, 1, 1, exc=RuntimeError, match="cannot be identical"),
    E("norm", IA, exc=RuntimeError, match="floating point"),
    E("cdist", A, randn(3, 5), exc=RuntimeError, match="same number of columns"),
    E("cdist", A, A, -1.0, exc=RuntimeError, match="non-negative p"),
]


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_torch(case):
    check_error(case)
