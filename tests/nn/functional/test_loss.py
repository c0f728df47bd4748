"""nn.functional losses against torch.nn.functional: values and gradients for every reduction."""

import warnings

import jax
import jax.numpy as jnp
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from jaxmodule.nn import Buffer

from tests.helpers import assert_close, randn

REDUCTIONS = ["none", "mean", "sum"]
RNG = np.random.default_rng(0)


def _check(name, args, kw=None, diff=(0,), rtol=1e-5, atol=1e-6, tkw=None):
    """Run F.name and TF.name on the same numpy args; compare output and grads of args in `diff`."""
    kw = kw or {}
    tkw = kw if tkw is None else tkw
    jargs = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    targs = [
        torch.tensor(a, requires_grad=i in diff) if isinstance(a, np.ndarray) else a
        for i, a in enumerate(args)
    ]
    jfn, tfn = getattr(F, name), getattr(TF, name)
    out, tout = jfn(*jargs, **kw), tfn(*targs, **tkw)
    assert_close(out, tout, rtol, atol)
    ct = randn(*np.shape(out), seed=11) + 1.5

    def scalar(*d):
        full = [d[diff.index(i)] if i in diff else a for i, a in enumerate(jargs)]
        return jnp.sum(jfn(*full, **kw) * ct)

    grads = jax.grad(scalar, argnums=tuple(range(len(diff))))(*[jargs[i] for i in diff])
    (tout * torch.tensor(ct)).sum().backward()
    for g, i in zip(grads, diff):
        assert_close(g, targs[i].grad, rtol, atol)


def _probs(*shape, seed=0, axis=1):
    p = np.abs(randn(*shape, seed=seed)) + 0.1
    return (p / p.sum(axis, keepdims=True)).astype(np.float32)


# ---- regression ----------------------------------------------------------------------------
X = randn(4, 5, seed=1)
Y = randn(4, 5, seed=2)
Y_TIES = X.copy()
Y_TIES[0] = X[0] - 0.5  # |d| == 0.5 (beta/delta boundary) on row 0
Y_TIES[1] = X[1]  # d == 0 on row 1 (abs kink)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "name,kw",
    [
        ("l1_loss", {}),
        ("mse_loss", {}),
        ("huber_loss", {}),
        ("huber_loss", {"delta": 0.5}),
        ("smooth_l1_loss", {}),
        ("smooth_l1_loss", {"beta": 0.5}),
        ("smooth_l1_loss", {"beta": 0.0}),
    ],
)
def test_regression(name, kw, reduction):
    _check(name, [X, Y], {**kw, "reduction": reduction}, diff=(0, 1))
    _check(name, [X, Y_TIES], {**kw, "reduction": reduction}, diff=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "huber_loss"])
def test_regression_weight(name, reduction):
    w = np.abs(randn(4, 5, seed=3))
    _check(
        name,
        [X, Y],
        {"reduction": reduction, "weight": w},
        diff=(0, 1),
        tkw={"reduction": reduction, "weight": torch.tensor(w)},
    )


def test_regression_errors_and_warning():
    with pytest.raises(ValueError, match="Weights and input must have the same size"):
        F.mse_loss(jnp.ones(3), jnp.ones(3), weight=jnp.ones(2))
    with pytest.raises(ValueError, match="Invalid reduction mode: foo"):
        F.l1_loss(jnp.ones(3), jnp.ones(3), weight=jnp.ones(3), reduction="foo")
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.l1_loss(jnp.ones(3), jnp.ones(3), reduction="foo")
    with pytest.raises(RuntimeError, match="does not support negative values for beta"):
        F.smooth_l1_loss(jnp.ones(3), jnp.ones(3), beta=-1.0)
    with pytest.warns(
        UserWarning,
        match=r"Using a target size \(\(3, 1\)\) that is different to the input size \(\(3,\)\)",
    ):
        F.mse_loss(jnp.ones(3), jnp.ones((3, 1)))
    with pytest.raises(NotImplementedError, match="size_average"):
        F.mse_loss(jnp.ones(3), jnp.ones(3), size_average=True)


def test_broadcast_matches_torch():
    a, b = randn(3, 1, seed=4), randn(1, 4, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check("mse_loss", [a, b], {}, diff=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input,full", [(True, False), (False, True), (True, True)])
def test_poisson_nll(log_input, full, reduction):
    x = np.abs(X) + 0.1 if not log_input else X
    t = np.floor(np.abs(Y) * 3).astype(np.float32)  # counts, several > 1 for the Stirling term
    # torch's target gradient with full=True is NaN at targets 0 (0 * log 0 in the masked-out Stirling
    # term); jaxmodule's is finite there, so only the input gradient is compared in that case.
    _check(
        "poisson_nll_loss",
        [x, t],
        {"log_input": log_input, "full": full, "reduction": reduction},
        diff=(0,) if full else (0, 1),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", [(4, 5), (4,), (4, 1), (1, 5)])
def test_gaussian_nll(var_shape, reduction):
    var = np.abs(randn(*var_shape, seed=6)) + 0.05
    var.flat[0] = 1e-8  # below eps: clamped, gradient passes straight through as in torch
    _check(
        "gaussian_nll_loss",
        [X, Y, var],
        {"reduction": reduction, "full": True},
        diff=(0, 1, 2),
        rtol=1e-5,
        atol=1e-5,
    )


def test_gaussian_nll_float_var_and_errors():
    _check("gaussian_nll_loss", [X, Y, 0.7], {}, diff=(0, 1))
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(jnp.ones(3), jnp.ones(3), -1.0)
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(jnp.ones(3), jnp.ones(3), -jnp.ones(3))
    with pytest.raises(ValueError, match="var is of incorrect size"):
        F.gaussian_nll_loss(jnp.ones((4, 5)), jnp.ones((4, 5)), jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="foo is not valid"):
        F.gaussian_nll_loss(jnp.ones(3), jnp.ones(3), jnp.ones(3), reduction="foo")


# ---- classification --------------------------------------------------------------------------
CE_SHAPES = [((5,), ()), ((4, 5), (4,)), ((2, 5, 3), (2, 3)), ((2, 5, 2, 3), (2, 2, 3))]


def _with_class_weight(kw, c):
    """`kw` for jaxmodule and a copy for torch, each with a `(c,)` class weight when c is not None."""
    kw, tkw = dict(kw), dict(kw)
    if c is not None:
        w = np.linspace(0.5, 2.0, c).astype(np.float32)
        kw["weight"], tkw["weight"] = jnp.asarray(w), torch.tensor(w)
    return kw, tkw


def _index_target(tshape, c, seed=0, ignore=None):
    t = np.random.default_rng(seed).integers(0, c, tshape)
    if ignore is not None and t.ndim:
        t.flat[0] = ignore
    return np.asarray(t, np.int64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,tshape", CE_SHAPES)
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"weight": True},
        {"ignore_index": 1},
        {"label_smoothing": 0.2},
        {"weight": True, "ignore_index": 2, "label_smoothing": 0.1},
    ],
)
def test_cross_entropy_indices(shape, tshape, opts, reduction):
    x = randn(*shape, seed=7)
    c = shape[0] if len(shape) == 1 else shape[1]
    t = _index_target(tshape, c, ignore=opts.get("ignore_index"))
    kw, tkw = _with_class_weight(
        {**{k: v for k, v in opts.items() if k != "weight"}, "reduction": reduction},
        c if opts.get("weight") else None,
    )
    _check("cross_entropy", [x, t], kw, tkw=tkw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5,), (4, 5), (2, 5, 3)])
@pytest.mark.parametrize("opts", [{}, {"weight": True}, {"label_smoothing": 0.3}])
def test_cross_entropy_probabilities(shape, opts, reduction):
    x = randn(*shape, seed=8)
    axis = 0 if len(shape) == 1 else 1
    p = _probs(*shape, seed=9, axis=axis)
    c = shape[axis]
    kw, tkw = _with_class_weight(
        {**{k: v for k, v in opts.items() if k != "weight"}, "reduction": reduction},
        c if opts.get("weight") else None,
    )
    _check("cross_entropy", [x, p], kw, diff=(0, 1), tkw=tkw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,tshape", CE_SHAPES)
def test_nll_loss(shape, tshape, reduction):
    x = randn(*shape, seed=10)
    c = shape[0] if len(shape) == 1 else shape[1]
    t = _index_target(tshape, c, seed=1, ignore=-100)
    kw, tkw = _with_class_weight({"reduction": reduction}, c)
    _check("nll_loss", [x, t], kw, tkw=tkw)
    _check("nll_loss", [x, np.where(t == -100, 1, t)], {"reduction": reduction, "ignore_index": 0})


def test_nll_weight_buffer_and_all_ignored():
    x, t = randn(3, 4, seed=12), np.array([1, 2, 3])
    out = F.nll_loss(jnp.asarray(x), jnp.asarray(t), weight=Buffer(jnp.arange(1.0, 5.0)))
    assert_close(out, TF.nll_loss(torch.tensor(x), torch.tensor(t), weight=torch.arange(1.0, 5.0)))
    out = F.cross_entropy(jnp.asarray(x), jnp.full((3,), -100))
    assert np.isnan(float(out)) and np.isnan(
        TF.cross_entropy(torch.tensor(x), torch.full((3,), -100)).item()
    )


def test_classification_errors():
    x = jnp.ones((3, 4))
    with pytest.raises(
        ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(2\)"
    ):
        F.nll_loss(x, jnp.array([0, 1]))
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        F.nll_loss(x, jnp.array([0, 1, 7]))
    with pytest.raises(IndexError, match="Target -1 is out of bounds"):
        F.cross_entropy(x, jnp.array([-1, 0, 1]))
    with pytest.raises(ValueError, match=r"Expected 1 or more dimensions \(got 0\)"):
        F.nll_loss(jnp.ones(()), jnp.array(0))
    with pytest.raises(RuntimeError, match="defined either for all 4 classes or no classes"):
        F.cross_entropy(x, jnp.array([0, 1, 2]), weight=jnp.ones(3))
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0. Got: 1.5"):
        F.cross_entropy(x, jnp.array([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(
        RuntimeError, match="ignore_index is not supported for floating point target"
    ):
        F.cross_entropy(x, jnp.ones((3, 4)), ignore_index=1)
    with pytest.raises(
        RuntimeError, match="Expected floating point type for target with class probabilities"
    ):
        F.cross_entropy(x, jnp.ones((3, 4), jnp.int32))
    with pytest.raises(RuntimeError, match=r"Expected target size \[2, 4\], got \[2, 5\]"):
        F.nll_loss(jnp.ones((2, 3, 4)), jnp.zeros((2, 5), jnp.int32))
    with pytest.raises(RuntimeError, match="expected target dtype to be an integer type"):
        F.cross_entropy(x, jnp.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="For 1D input, 1D target must have size 1"):
        F.nll_loss(jnp.ones(3), jnp.array([1, 2]))


def test_cross_entropy_under_jit():
    x, t = randn(4, 5, seed=13), np.array([0, 4, 2, 1])
    f = jax.jit(lambda a, b: F.cross_entropy(a, b, label_smoothing=0.1, ignore_index=2))
    assert_close(
        f(jnp.asarray(x), jnp.asarray(t)),
        TF.cross_entropy(torch.tensor(x), torch.tensor(t), label_smoothing=0.1, ignore_index=2),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("bias,out_features", [(False, ()), (True, ()), (True, (2,))])
def test_linear_cross_entropy(bias, out_features, reduction):
    n, d, c = 4, 3, 5
    x = randn(n, d, seed=14)
    w = randn(c, *out_features, d, seed=15)
    b = randn(c, *out_features, seed=16) if bias else None
    t = _index_target((n, *out_features), c, seed=2)
    args = [x, w, t]
    jkw = {"reduction": reduction, "linear_bias": None if b is None else jnp.asarray(b)}
    tkw = {"reduction": reduction, "linear_bias": None if b is None else torch.tensor(b)}
    _check("linear_cross_entropy", args, jkw, diff=(0, 1), tkw=tkw)
    with pytest.raises(NotImplementedError, match="options"):
        F.linear_cross_entropy(jnp.asarray(x), jnp.asarray(w), jnp.asarray(t), options=object())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(weighted, reduction):
    p = (1 / (1 + np.exp(-X))).astype(np.float32)
    p[0, :3] = [0.0, 1.0, 1e-30]  # log clamp at -100 and the 1e-12 gradient floor
    t = (Y > 0).astype(np.float32)
    t[0, 3] = 0.3  # soft target
    kw = {"reduction": reduction}
    tkw = dict(kw)
    if weighted:
        w = np.abs(randn(5, seed=17))  # broadcast over the batch
        kw["weight"], tkw["weight"] = jnp.asarray(w), torch.tensor(w)
    _check("binary_cross_entropy", [p, t], kw, diff=(0, 1), tkw=tkw, rtol=1e-5, atol=1e-5)


def test_binary_cross_entropy_errors():
    with pytest.raises(ValueError, match="that is different to the input size"):
        F.binary_cross_entropy(jnp.full(3, 0.5), jnp.ones((3, 1)))
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(jnp.array([1.5]), jnp.array([1.0]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "weighted,pos_weighted", [(False, False), (True, False), (False, True), (True, True)]
)
def test_bce_with_logits(weighted, pos_weighted, reduction):
    x = 4 * X
    x[0, 0] = 50.0  # stays finite
    t = (Y > 0).astype(np.float32)
    kw = {"reduction": reduction}
    tkw = dict(kw)
    if weighted:
        w = np.abs(randn(4, 1, seed=18))
        kw["weight"], tkw["weight"] = jnp.asarray(w), torch.tensor(w)
    if pos_weighted:
        pw = np.linspace(0.5, 3.0, 5).astype(np.float32)
        kw["pos_weight"], tkw["pos_weight"] = jnp.asarray(pw), torch.tensor(pw)
    _check("binary_cross_entropy_with_logits", [x, t], kw, diff=(0, 1), tkw=tkw)
    with pytest.raises(ValueError, match="must be the same as input size"):
        F.binary_cross_entropy_with_logits(jnp.ones(3), jnp.ones((3, 1)))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(log_target, reduction):
    x = np.log(_probs(4, 5, seed=19))
    t = _probs(4, 5, seed=20)
    if log_target:
        t = np.log(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check("kl_div", [x, t], {"reduction": reduction, "log_target": log_target}, diff=(0, 1))


def test_kl_div_zero_target_and_warning():
    x = np.log(_probs(2, 3, seed=21))
    t = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]], np.float32)
    _check("kl_div", [x, t], {"reduction": "sum"}, diff=(0,))
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(jnp.asarray(x), jnp.asarray(t))
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.kl_div(jnp.asarray(x), jnp.asarray(t), reduction="foo")


# ---- margin losses -----------------------------------------------------------------------------
SIGNS = np.where(randn(4, 5, seed=22) > 0, 1.0, -1.0).astype(np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin(reduction):
    _check("soft_margin_loss", [X, SIGNS], {"reduction": reduction})


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_multilabel_soft_margin(weighted, reduction):
    t = (SIGNS > 0).astype(np.float32)
    kw, tkw = _with_class_weight({"reduction": reduction}, 5 if weighted else None)
    _check("multilabel_soft_margin_loss", [X, t], kw, diff=(0, 1), tkw=tkw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "p,margin,weighted", [(1, 1.0, False), (2, 0.5, False), (1, 2.0, True), (2, 1.0, True)]
)
def test_multi_margin(p, margin, weighted, reduction):
    t = np.array([0, 4, 2, 1])
    kw, tkw = _with_class_weight(
        {"p": p, "margin": margin, "reduction": reduction}, 5 if weighted else None
    )
    _check("multi_margin_loss", [X, t], kw, tkw=tkw)
    _check("multi_margin_loss", [X[0], np.array(t[0])], kw, tkw=tkw)  # unbatched


def test_multi_margin_errors():
    with pytest.raises(ValueError, match="only p == 1 and p == 2 supported"):
        F.multi_margin_loss(jnp.ones((2, 3)), jnp.array([0, 1]), p=3)
    with pytest.raises(ValueError, match="weight must be one-dimensional"):
        F.multi_margin_loss(jnp.ones((2, 3)), jnp.array([0, 1]), weight=jnp.ones((3, 1)))
    with pytest.raises(RuntimeError, match="target out of range"):
        F.multi_margin_loss(jnp.ones((2, 3)), jnp.array([0, 3]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin(reduction):
    t = np.array([[0, 3, -1, 1, 2], [4, -1, 0, 0, 0], [1, 2, 3, 4, 0], [-1, 1, 2, 3, 4]])
    _check("multilabel_margin_loss", [X, t], {"reduction": reduction})
    _check("multilabel_margin_loss", [X[0], t[0]], {"reduction": reduction})


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.3, -0.2])
def test_cosine_embedding(margin, reduction):
    t = np.array([1, -1, 1, -1])
    _check(
        "cosine_embedding_loss", [X, Y, t], {"margin": margin, "reduction": reduction}, diff=(0, 1)
    )
    _check(
        "cosine_embedding_loss",
        [X[0], Y[0], np.array(-1)],
        {"margin": margin, "reduction": reduction},
        diff=(0, 1),
    )
    with pytest.raises(RuntimeError, match="1D target tensor expects 2D input tensors"):
        F.cosine_embedding_loss(jnp.ones(3), jnp.ones(3), jnp.ones(2))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking(margin, reduction):
    a, b, t = X[:, 0].copy(), Y[:, 0].copy(), SIGNS[:, 0].copy()
    b[0] = a[0] + margin * t[0]  # exactly on the hinge: torch's clamp_min passes the gradient
    _check(
        "margin_ranking_loss", [a, b, t], {"margin": margin, "reduction": reduction}, diff=(0, 1)
    )
    with pytest.raises(RuntimeError, match="All input tensors should have same dimension"):
        F.margin_ranking_loss(jnp.ones(3), jnp.ones(3), jnp.ones((3, 1)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.2])
def test_hinge_embedding(margin, reduction):
    t = SIGNS.copy()
    t[0, 0] = 0.5  # neither 1 nor -1: both terms apply, as in torch
    _check("hinge_embedding_loss", [X, t], {"margin": margin, "reduction": reduction})


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "p,swap,margin",
    [(2, False, 1.0), (2, True, 0.5), (1, False, 1.0), (3, True, 2.0), (float("inf"), False, 1.0)],
)
def test_triplet_margin(p, swap, margin, reduction):
    n = randn(4, 5, seed=23)
    _check(
        "triplet_margin_loss",
        [X, Y, n],
        {"p": p, "swap": swap, "margin": margin, "reduction": reduction},
        diff=(0, 1, 2),
    )


def test_triplet_errors():
    with pytest.raises(ValueError, match="margin must be greater than 0, got 0"):
        F.triplet_margin_loss(jnp.ones(3), jnp.ones(3), jnp.ones(3), margin=0)
    with pytest.raises(RuntimeError, match="anchor 2D, positive 2D, and negative 1D inputs"):
        F.triplet_margin_loss(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.triplet_margin_with_distance_loss(jnp.ones(3), jnp.ones(3), jnp.ones(3), reduction="foo")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("custom,swap", [(False, False), (False, True), (True, True)])
def test_triplet_with_distance(custom, swap, reduction):
    n = randn(4, 5, seed=24)
    kw = {"swap": swap, "reduction": reduction, "margin": 0.7}
    tkw = dict(kw)
    if custom:
        kw["distance_function"] = lambda a, b: (
            1 - (a * b).sum(-1) / jnp.sqrt((a * a).sum(-1) * (b * b).sum(-1))
        )
        tkw["distance_function"] = lambda a, b: 1 - TF.cosine_similarity(a, b, eps=0.0)
    _check("triplet_margin_with_distance_loss", [X, Y, n], kw, diff=(0, 1, 2), tkw=tkw)


# ---- CTC -----------------------------------------------------------------------------------------
T_, N_, C_, S_ = 10, 3, 5, 4
CTC_LOGITS = randn(T_, N_, C_, seed=25)
CTC_TARGETS = np.array([[1, 2, 2, 3], [4, 1, 0, 0], [3, 3, 1, 0]])  # repeats need a blank between
CTC_TL = np.array([4, 2, 3])
CTC_IL = np.array([10, 7, 6])


def _ctc_check(logits, targets, il, tl, kw, unbatched=False):
    """Gradient w.r.t. the logits before log_softmax (see ctc_loss's docstring)."""

    def jf(x):
        return F.ctc_loss(jax.nn.log_softmax(x, -1), jnp.asarray(targets), il, tl, **kw)

    tx = torch.tensor(logits, requires_grad=True)
    til = torch.tensor(il) if isinstance(il, np.ndarray) else il
    ttl = torch.tensor(tl) if isinstance(tl, np.ndarray) else tl
    tout = TF.ctc_loss(tx.log_softmax(-1), torch.tensor(targets), til, ttl, **kw)
    jx = jnp.asarray(logits)
    out = jf(jx)
    assert_close(out, tout, rtol=1e-5, atol=1e-5)
    ct = randn(*np.shape(out), seed=26) + 1.5
    g = jax.grad(lambda v: jnp.sum(jf(v) * ct))(jx)
    (tout * torch.tensor(ct)).sum().backward()
    assert_close(g, tx.grad, rtol=1e-4, atol=1e-5)  # sums over T * L alignment paths


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("blank", [0, 4])
def test_ctc_padded(reduction, blank):
    targets = CTC_TARGETS.copy()
    if blank == 4:
        targets = np.where(targets == 4, 0, targets)
    _ctc_check(CTC_LOGITS, targets, CTC_IL, CTC_TL, {"reduction": reduction, "blank": blank})


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_ctc_concatenated_and_tuples(reduction):
    flat = np.concatenate([CTC_TARGETS[i, : CTC_TL[i]] for i in range(N_)])
    _ctc_check(
        CTC_LOGITS,
        flat,
        tuple(int(v) for v in CTC_IL),
        tuple(int(v) for v in CTC_TL),
        {"reduction": reduction},
    )


def test_ctc_unbatched_and_empty_target():
    _ctc_check(CTC_LOGITS[:, 0], CTC_TARGETS[0], np.array(10), np.array(4), {"reduction": "none"})
    _ctc_check(CTC_LOGITS, CTC_TARGETS, CTC_IL, np.array([4, 0, 3]), {"reduction": "none"})


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_impossible(zero_infinity):
    # sample 1: target of length 4 with repeats needs 5 frames, gets 3 -> infinite loss
    il = np.array([10, 3, 6])
    kw = {"reduction": "none", "zero_infinity": zero_infinity}
    if zero_infinity:
        _ctc_check(
            CTC_LOGITS,
            np.array([[1, 2, 2, 3], [1, 1, 2, 2], [3, 3, 1, 0]]),
            il,
            np.array([4, 4, 3]),
            kw,
        )
    else:
        out = F.ctc_loss(
            jax.nn.log_softmax(jnp.asarray(CTC_LOGITS), -1),
            jnp.asarray([[1, 2, 2, 3], [1, 1, 2, 2], [3, 3, 1, 0]]),
            il,
            np.array([4, 4, 3]),
            **kw,
        )
        assert np.isinf(np.asarray(out)[1]) and np.isfinite(np.asarray(out)[[0, 2]]).all()


def test_ctc_jit():
    f = jax.jit(lambda lp, t, il, tl: F.ctc_loss(lp, t, il, tl))
    lp = jax.nn.log_softmax(jnp.asarray(CTC_LOGITS), -1)
    want = TF.ctc_loss(
        torch.tensor(CTC_LOGITS).log_softmax(-1),
        torch.tensor(CTC_TARGETS),
        torch.tensor(CTC_IL),
        torch.tensor(CTC_TL),
    )
    assert_close(
        f(lp, jnp.asarray(CTC_TARGETS), jnp.asarray(CTC_IL), jnp.asarray(CTC_TL)), want, atol=1e-5
    )


def test_ctc_errors():
    lp = jnp.zeros((5, 2, 3))
    with pytest.raises(
        RuntimeError, match="Expected input_lengths to have value at most 5, but got value 6"
    ):
        F.ctc_loss(lp, jnp.ones((2, 2), jnp.int32), [6, 5], [2, 2])
    with pytest.raises(
        RuntimeError, match="Expected tensor to have size at least 3 at dimension 1"
    ):
        F.ctc_loss(lp, jnp.ones((2, 2), jnp.int32), [5, 5], [3, 2])
    with pytest.raises(RuntimeError, match="blank must be in label range"):
        F.ctc_loss(lp, jnp.ones((2, 2), jnp.int32), [5, 5], [2, 2], blank=3)
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.ctc_loss(lp, jnp.ones((2, 2), jnp.int32), [5, 5], [2, 2], reduction="foo")


def test_signatures_match_torch():
    from jaxmodule.nn.functional import loss

    from tests.nn.functional.test_activation import _signature_mismatches

    assert _signature_mismatches(loss) == ([], set())


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ctc_log_probs_gradient_follows_torchs_kernel(reduction):
    """torch's CTC backward returns exp(log_probs) - posterior w.r.t. log_probs; so does ours."""
    lp = np.asarray(jax.nn.log_softmax(jnp.asarray(randn(9, 2, 5, seed=11)), -1))
    targets, il, tl = np.array([[1, 2, 3], [4, 4, 0]]), np.array([9, 7]), np.array([3, 2])
    tx = torch.tensor(lp, requires_grad=True)
    tout = torch.nn.functional.ctc_loss(
        tx, torch.tensor(targets), torch.tensor(il), torch.tensor(tl), reduction=reduction
    )
    tout.sum().backward()
    g = jax.grad(lambda v: F.ctc_loss(v, jnp.asarray(targets), il, tl, reduction=reduction).sum())(
        jnp.asarray(lp)
    )
    assert_close(g, tx.grad, rtol=1e-4, atol=1e-5)  # sums over T * L alignment paths
