"""Loss layers against torch.nn: repr, buffers/state_dict, output, input gradients, jit."""

import warnings

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn

N, C = 4, 5
LOGITS = randn(N, C, seed=0)
OTHER = randn(N, C, seed=1)
IDX = np.array([0, 4, 2, 1])
SIGNS = np.where(randn(N, C, seed=2) > 0, 1.0, -1.0).astype(np.float32)
PROBS = (1 / (1 + np.exp(-LOGITS))).astype(np.float32)
W = np.linspace(0.5, 2.0, C).astype(np.float32)
T_, S_ = 8, 3
CTC_LP = np.log(np.asarray(jax.nn.softmax(jnp.asarray(randn(T_, 2, C, seed=3)), -1)))


def _inputs(name):
    """The positional forward arguments for each loss (numpy; the first one is differentiated)."""
    return {
        "L1Loss": [LOGITS, OTHER],
        "MSELoss": [LOGITS, OTHER],
        "SmoothL1Loss": [LOGITS, OTHER],
        "HuberLoss": [LOGITS, OTHER],
        "NLLLoss": [np.log(np.asarray(jax.nn.softmax(LOGITS))), IDX],
        "NLLLoss2d": [
            np.log(np.asarray(jax.nn.softmax(randn(2, C, 3, 3, seed=4), 1))),
            np.random.default_rng(0).integers(0, C, (2, 3, 3)),
        ],
        "CrossEntropyLoss": [LOGITS, IDX],
        "PoissonNLLLoss": [LOGITS, np.floor(np.abs(OTHER) * 3).astype(np.float32)],
        "GaussianNLLLoss": [LOGITS, OTHER, np.abs(OTHER) + 0.1],
        "KLDivLoss": [
            np.log(PROBS / PROBS.sum(1, keepdims=True)),
            (PROBS / PROBS.sum(1, keepdims=True))[::-1].copy(),
        ],
        "BCELoss": [PROBS, (OTHER > 0).astype(np.float32)],
        "BCEWithLogitsLoss": [LOGITS, (OTHER > 0).astype(np.float32)],
        "HingeEmbeddingLoss": [LOGITS, SIGNS],
        "MultiLabelMarginLoss": [
            LOGITS,
            np.array([[0, 3, -1, 1, 2], [4, -1, 0, 0, 0], [1, 2, 3, 4, 0], [-1, 1, 2, 3, 4]]),
        ],
        "SoftMarginLoss": [LOGITS, SIGNS],
        "MultiLabelSoftMarginLoss": [LOGITS, (SIGNS > 0).astype(np.float32)],
        "CosineEmbeddingLoss": [LOGITS, OTHER, np.array([1.0, -1.0, 1.0, -1.0], np.float32)],
        "MarginRankingLoss": [LOGITS[:, 0].copy(), OTHER[:, 0].copy(), SIGNS[:, 0].copy()],
        "MultiMarginLoss": [LOGITS, IDX],
        "TripletMarginLoss": [LOGITS, OTHER, randn(N, C, seed=5)],
        "TripletMarginWithDistanceLoss": [LOGITS, OTHER, randn(N, C, seed=5)],
        "CTCLoss": [CTC_LP, np.array([[1, 2, 2], [3, 1, 0]]), np.array([8, 6]), np.array([3, 2])],
        "LinearCrossEntropyLoss": [randn(N, 3, seed=6), IDX],
    }[name]


CASES = [
    ("L1Loss", {}),
    ("L1Loss", {"reduction": "sum"}),
    ("MSELoss", {}),
    ("MSELoss", {"reduction": "none"}),
    ("SmoothL1Loss", {"beta": 0.5}),
    ("HuberLoss", {"delta": 0.5, "reduction": "sum"}),
    ("NLLLoss", {}),
    ("NLLLoss", {"weight": W, "ignore_index": 2, "reduction": "sum"}),
    ("NLLLoss2d", {"weight": W}),
    ("CrossEntropyLoss", {}),
    ("CrossEntropyLoss", {"weight": W, "label_smoothing": 0.1}),
    ("CrossEntropyLoss", {"ignore_index": 4, "reduction": "none"}),
    ("PoissonNLLLoss", {}),
    ("PoissonNLLLoss", {"log_input": True, "full": True, "eps": 1e-6}),
    ("GaussianNLLLoss", {}),
    ("GaussianNLLLoss", {"full": True, "eps": 1e-3, "reduction": "sum"}),
    ("KLDivLoss", {"reduction": "batchmean"}),
    ("KLDivLoss", {"reduction": "sum", "log_target": False}),
    ("BCELoss", {}),
    ("BCELoss", {"weight": W}),
    ("BCEWithLogitsLoss", {}),
    ("BCEWithLogitsLoss", {"weight": W, "pos_weight": W[::-1].copy()}),
    ("HingeEmbeddingLoss", {"margin": 0.5}),
    ("MultiLabelMarginLoss", {}),
    ("SoftMarginLoss", {}),
    ("MultiLabelSoftMarginLoss", {"weight": W}),
    ("CosineEmbeddingLoss", {"margin": 0.2}),
    ("MarginRankingLoss", {"margin": 0.3}),
    ("MultiMarginLoss", {}),
    ("MultiMarginLoss", {"p": 2, "margin": 0.5, "weight": W}),
    ("TripletMarginLoss", {}),
    ("TripletMarginLoss", {"margin": 0.5, "p": 1.0, "swap": True}),
    ("TripletMarginWithDistanceLoss", {}),
    ("TripletMarginWithDistanceLoss", {"margin": 0.5, "swap": True}),
    ("CTCLoss", {}),
    ("CTCLoss", {"blank": 4, "reduction": "sum", "zero_infinity": True}),
]
IDS = [f"{n}-{sorted(k)}" for n, k in CASES]


def _kw(kwargs, lib):
    conv = (lambda a: torch.tensor(a)) if lib == "torch" else jnp.asarray
    return {k: conv(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


def _pair(name, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # NLLLoss2d
        return getattr(nn, name)(**_kw(kwargs, "jm")), getattr(torch.nn, name)(
            **_kw(kwargs, "torch")
        )


def test_every_torch_loss_is_covered():
    import torch.nn.modules.loss as tloss

    assert set(tloss.__all__) == set(nn.modules.loss.__all__)
    assert set(tloss.__all__) - {"LinearCrossEntropyLoss"} == {n for n, _ in CASES}


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_matches_torch(name, kwargs):
    jm, tm = _pair(name, kwargs)
    assert repr(jm) == repr(tm)
    jsd, tsd = jm.state_dict(), tm.state_dict()
    assert [(k, tuple(v.shape)) for k, v in jsd.items()] == [
        (k, tuple(v.shape)) for k, v in tsd.items()
    ]
    for k in tsd:
        assert_close(jsd[k], tsd[k])

    args = _inputs(name)
    if name == "CTCLoss" and kwargs.get("blank") == 4:
        args = [args[0], np.where(args[1] == 4, 1, args[1]), *args[2:]]
    jargs = [jnp.asarray(a) for a in args]
    targs = [torch.tensor(a, requires_grad=i == 0) for i, a in enumerate(args)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, tout = jm(*jargs), tm(*targs)
    assert_close(out, tout, atol=1e-5)

    ct = randn(*tout.shape, seed=7) + 1.5
    (tout * torch.tensor(ct)).sum().backward()
    g = jax.grad(lambda v: jnp.sum(jm(v, *jargs[1:]) * ct))(jargs[0])
    # CTC's log_probs gradient follows torch's kernel (exp(log_probs) - posterior), so it is
    # compared directly.
    assert_close(g, targs[0].grad, atol=1e-5)

    assert_close(jax.jit(lambda m, *a: m(*a))(jm, *jargs), out, atol=1e-5)


def test_weight_buffers_load_from_torch():
    jm = nn.CrossEntropyLoss(weight=jnp.ones(C), label_smoothing=0.2)
    tm = torch.nn.CrossEntropyLoss(weight=torch.tensor(W), label_smoothing=0.2)
    jm.load_state_dict(tm.state_dict())
    assert_close(jm.weight, W)
    assert_close(
        jm(jnp.asarray(LOGITS), jnp.asarray(IDX)), tm(torch.tensor(LOGITS), torch.tensor(IDX))
    )
    b = nn.BCEWithLogitsLoss(pos_weight=jnp.ones(C))
    assert list(b.state_dict()) == ["pos_weight"] and b.weight is None
    assert isinstance(b._buffers["pos_weight"], nn.Buffer)


def test_linear_cross_entropy_loss():
    for kw in [
        {},
        {"bias": True, "label_smoothing": 0.1, "weight": W},
        {"out_features": (2,), "bias": True},
    ]:
        jm = nn.LinearCrossEntropyLoss(3, C, **_kw(kw, "jm"))
        tm = torch.nn.LinearCrossEntropyLoss(3, C, **_kw(kw, "torch"))
        assert repr(jm) == repr(tm)
        assert list(jm.state_dict()) == list(tm.state_dict())
        jm.load_state_dict(tm.state_dict())
        x = randn(N, 3, seed=8)
        t = IDX if "out_features" not in kw else np.random.default_rng(1).integers(0, C, (N, 2))
        tx = torch.tensor(x, requires_grad=True)
        tout = tm(tx, torch.tensor(t))
        tout.backward()
        out, grads = jaxmodule.value_and_grad(
            lambda m, v, t=t: m(v, jnp.asarray(t)), argnums=(0, 1)
        )(jm, jnp.asarray(x))
        assert_close(out, tout)
        assert_close(grads[1], tx.grad)
        assert_close(grads[0].linear.weight, tm.linear.weight.grad)
    with pytest.raises(NotImplementedError, match="options"):
        nn.LinearCrossEntropyLoss(3, C, options=object())
    with pytest.raises(RuntimeError, match=r"expected weight shape to be \(5,\), got \(3,\)"):
        nn.LinearCrossEntropyLoss(3, C, weight=jnp.ones(3))


def test_constructor_errors():
    with pytest.raises(NotImplementedError, match="size_average"):
        nn.MSELoss(size_average=False)
    with pytest.raises(NotImplementedError, match="size_average"):
        nn.CrossEntropyLoss(reduce=False)
    with pytest.raises(ValueError, match="only p == 1 and p == 2 supported"):
        nn.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="expected weight to be None or 1D tensor, got 2D instead"):
        nn.MultiMarginLoss(weight=jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="TripletMarginLoss: expected margin to be greater than 0"):
        nn.TripletMarginLoss(margin=0)
    with pytest.raises(
        ValueError, match="TripletMarginWithDistanceLoss: expected margin to be greater than 0"
    ):
        nn.TripletMarginWithDistanceLoss(margin=-1)
    with pytest.raises(TypeError, match="delta must be a float or int"):
        nn.HuberLoss(delta="1")
    with pytest.warns(FutureWarning, match="`NLLLoss2d` has been deprecated"):
        nn.NLLLoss2d()


def test_custom_distance_function():
    def dist(a, b):
        return jnp.abs(a - b).sum(-1)

    jm = nn.TripletMarginWithDistanceLoss(distance_function=dist, margin=0.5)
    tm = torch.nn.TripletMarginWithDistanceLoss(
        distance_function=lambda a, b: (a - b).abs().sum(-1), margin=0.5
    )
    args = _inputs("TripletMarginWithDistanceLoss")
    assert repr(jm) == repr(tm) == "TripletMarginWithDistanceLoss()"
    assert_close(jm(*map(jnp.asarray, args)), tm(*map(torch.tensor, args)))


def test_training_step_compiles():
    model = nn.Linear(3, C)
    loss_fn = nn.CrossEntropyLoss(weight=jnp.asarray(W), label_smoothing=0.1)
    opt = jaxmodule.optim.SGD(model.parameters(), lr=0.5)
    x, y = jnp.asarray(randn(N, 3, seed=9)), jnp.asarray(IDX)

    @jaxmodule.compile
    def step(model, loss_fn, opt, x, y):
        opt.zero_grad()
        loss = jaxmodule.backward(lambda m: loss_fn(m(x), y), model)
        opt.step()
        return loss

    first = float(step(model, loss_fn, opt, x, y))
    for _ in range(20):
        last = float(step(model, loss_fn, opt, x, y))
    assert last < first
