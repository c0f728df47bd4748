"""Registry of layer cases that drives the generic checks in `test_generic_layers.py`.

Like torch's `ModuleInfo`: one or more `Case`s per layer class of `jaxmodule.nn` that also exists
in `torch.nn` (same name). A case names the class, its constructor arguments, how to make its
forward inputs, and the few facts the generic checks cannot discover themselves (random in train
mode, how to vmap it, a looser tolerance and why). Everything else (is it stateful, which inputs
are differentiable, what the outputs are) is found by running the torch layer.

Input specs (`F`, `I`, `B`, `Fixed`, `None`) are turned into numpy arrays with a per-case seeded
generator; both libraries get the same numbers. A spec may be nested in a tuple (LSTM's
`(h_0, c_0)`).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Arr", "F", "I", "B", "Fixed", "Case", "CASES", "EXCLUDED", "cases_for"]


# ---- input specs --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Arr:
    """A concrete forward input: the numpy value and whether gradients flow to it."""

    value: np.ndarray
    grad: bool


@dataclasses.dataclass(frozen=True)
class F:
    """float32 input: normal(0, scale), or uniform(lo, hi) when both are given."""

    shape: tuple
    scale: float = 1.0
    lo: float | None = None
    hi: float | None = None
    grad: bool = True

    def make(self, rng: np.random.Generator) -> Arr:
        if self.lo is not None:
            v = rng.uniform(self.lo, self.hi, self.shape)
        else:
            v = rng.standard_normal(self.shape) * self.scale
        return Arr(v.astype(np.float32), self.grad)


def f(*shape: int, **kw: Any) -> F:
    return F(tuple(shape), **kw)


@dataclasses.dataclass(frozen=True)
class I:  # noqa: E742 - short name for an integer input spec
    """Integer input, uniform in [low, high)."""

    high: int
    shape: tuple
    low: int = 0

    def make(self, rng: np.random.Generator) -> Arr:
        return Arr(rng.integers(self.low, self.high, self.shape).astype(np.int64), False)


def i(high: int, *shape: int, low: int = 0) -> I:
    return I(high, tuple(shape), low)


@dataclasses.dataclass(frozen=True)
class B:
    """Boolean input (masks), True with probability p."""

    shape: tuple
    p: float = 0.3

    def make(self, rng: np.random.Generator) -> Arr:
        return Arr(rng.uniform(size=self.shape) < self.p, False)


@dataclasses.dataclass(frozen=True)
class Fixed:
    """Input made by a function of the generator (returns an Arr or a tuple of them)."""

    fn: Callable[[np.random.Generator], Any]

    def make(self, rng: np.random.Generator) -> Any:
        return self.fn(rng)


def make_inputs(spec: Any, rng: np.random.Generator) -> Any:
    if spec is None:
        return None
    if isinstance(spec, tuple):
        return tuple(make_inputs(s, rng) for s in spec)
    return spec.make(rng)


def sign_target(*shape: int) -> Fixed:
    """+-1 float targets (margin losses)."""
    return Fixed(
        lambda rng: Arr(
            np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0).astype(np.float32), False
        )
    )


def binary_target(*shape: int) -> Fixed:
    """{0, 1} float targets (multi-label losses)."""
    return Fixed(lambda rng: Arr((rng.uniform(size=shape) < 0.5).astype(np.float32), False))


def uniforms(*shape: int) -> np.ndarray:
    """Fixed U(0, 1) samples (FractionalMaxPool's `_random_samples`)."""
    return np.random.default_rng(sum(shape)).uniform(size=shape).astype(np.float32)


def softmax_np(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def probs(*shape: int, axis: int = 1, grad: bool = False) -> Fixed:
    return Fixed(
        lambda rng: Arr(softmax_np(rng.standard_normal(shape), axis).astype(np.float32), grad)
    )


def log_probs(*shape: int, axis: int = 1, grad: bool = True) -> Fixed:
    return Fixed(
        lambda rng: Arr(
            np.log(softmax_np(rng.standard_normal(shape), axis)).astype(np.float32), grad
        )
    )


def pooled(dims: int, shape: tuple, kernel: int) -> Fixed:
    """(output, indices) of torch's max_pool{dims}d over a random input: MaxUnpool's inputs."""

    def fn(rng: np.random.Generator) -> tuple:
        import torch

        x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        pool = getattr(torch.nn.functional, f"max_pool{dims}d")
        out, idx = pool(x, kernel, return_indices=True)
        return Arr(out.numpy(), True), Arr(idx.numpy(), False)

    return Fixed(fn)


def multilabel_target(n: int, c: int) -> Fixed:
    """MultiLabelMarginLoss targets: class indices, each row ended by -1 (or full)."""

    def fn(rng: np.random.Generator) -> Arr:
        t = np.full((n, c), -1, np.int64)
        for r in range(n):
            k = int(rng.integers(1, c + 1))
            t[r, :k] = rng.permutation(c)[:k]
        return Arr(t, False)

    return Fixed(fn)


def ctc_inputs(t: int, n: int, c: int, s: int) -> tuple:
    """log_probs (T, N, C), targets (N, S) in [1, C), input_lengths (N,), target_lengths (N,)."""
    in_len = np.full((n,), t, np.int64)
    in_len[0] = t - 1
    return (
        log_probs(t, n, c, axis=2),
        i(c, n, s, low=1),
        Fixed(lambda rng: Arr(in_len, False)),
        Fixed(lambda rng: Arr(rng.integers(1, s + 1, (n,)).astype(np.int64), False)),
    )


def _log_softmax_first(F: Any, a: tuple) -> tuple:
    return (F.log_softmax(a[0], dim=-1), *a[1:])


def causal_mask(n: int) -> np.ndarray:
    return np.triu(np.full((n, n), -np.inf, np.float32), 1)


# ---- cases ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    """One layer configuration.

    Args:
        cls: class name in both `torch.nn` and `jaxmodule.nn`.
        args, kwargs: constructor arguments. numpy arrays among them are converted to each
            library's array type. `build(nn, arr)` replaces them when the arguments are modules
            (containers, TransformerEncoder): `nn` is `torch.nn` or `jaxmodule.nn`, `arr` turns a
            numpy array into that library's array.
        inputs: forward input specs (positional), or one `Fixed` that returns all of them;
            `fwd_kwargs`: python values or numpy arrays.
        pre: `pre(F, inputs) -> inputs`, applied (differentiably) before the layer, with `F` the
            library's `nn.functional`.
        random_train: train-mode output is random (dropout with p > 0): exact comparisons run in
            eval mode, train mode is checked for shape and dtype only.
        vmap: "stack" vmaps over a stack of two input sets and compares with the two eager calls;
            "example" vmaps over axis 0 of every input (per-example unbatched calls) and compares
            with the batched eager call; None: not vmapped. "auto" (default): "stack" for the
            first case of a class, None for the others (one vmap compilation per class keeps the
            file fast).
        forward: False for containers without a forward (state_dict and repr only).
        lazy: a Lazy* layer: both are materialized by one forward before state is copied. The
            materialized layer is the concrete class (LazyLinear becomes Linear, as in torch),
            which has its own cases: a lazy case checks state_dict, repr and the eager forward.
        repr_subs: (torch text, jaxmodule text) replacements applied to torch's repr before the
            comparison, for a documented difference only.
        rtol, atol: tolerance for outputs and gradients; a looser one says why in `why`.
    """

    cls: str
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    inputs: tuple = ()
    fwd_kwargs: dict = dataclasses.field(default_factory=dict)
    build: Callable | None = None
    pre: Callable | None = None
    random_train: bool = False
    vmap: str | None = "auto"
    forward: bool = True
    lazy: bool = False
    repr_subs: tuple = ()
    rtol: float = 1e-5
    atol: float = 1e-6
    why: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if self.atol > 1e-6 or self.rtol > 1e-5:
            assert self.why, f"{self.cls}: a looser tolerance needs a reason"
        if not self.id:
            parts = [_short(a) for a in self.args]
            parts += [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
            self.id = f"{self.cls}({','.join(parts)})"


def _short(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return "arr"
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(_short(x) for x in v) + ")"
    if callable(v) and hasattr(v, "__name__"):
        return v.__name__
    return str(v)


# Transformers chain matmuls, softmax and layer norms: float32 rounding in a different order
# leaves a few outputs and gradients near zero up to ~2e-6 apart (measured; 1e-6 fails).
DEEP_TOL = dict(atol=5e-6, why="chained matmuls, softmax and layer norms: rounding order differs")

C: list[Case] = []


def add(*cases: Case) -> None:
    C.extend(cases)


# linear
add(
    Case("Identity", inputs=(f(2, 3),)),
    Case("Identity", (54,), dict(unused_argument1=0.1), inputs=(f(2, 3),)),
    Case("Linear", (3, 4), inputs=(f(2, 3),), vmap="example"),
    Case("Linear", (3, 4), dict(bias=False), inputs=(f(2, 5, 3),)),
    Case("Bilinear", (3, 4, 5), inputs=(f(2, 3), f(2, 4))),
    Case("Bilinear", (3, 2, 4), dict(bias=False), inputs=(f(3, 3), f(3, 2))),
    Case("LazyLinear", (4,), inputs=(f(2, 3),), lazy=True),
)

# convolutions
add(
    Case("Conv1d", (2, 4, 3), inputs=(f(2, 2, 7),), vmap="example"),
    Case(
        "Conv1d",
        (4, 4, 3),
        dict(stride=2, padding=2, dilation=2, groups=2, bias=False, padding_mode="circular"),
        inputs=(f(2, 4, 9),),
    ),
    Case("Conv2d", (2, 4, 3), inputs=(f(2, 2, 6, 5),), vmap="example"),
    Case(
        "Conv2d",
        (4, 6, (3, 2)),
        dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, padding_mode="reflect"),
        inputs=(f(2, 4, 6, 6),),
    ),
    Case("Conv3d", (2, 3, 2), inputs=(f(1, 2, 3, 4, 3),)),
    Case(
        "Conv3d",
        (2, 4, 3),
        dict(padding="same", groups=2, padding_mode="zeros"),
        inputs=(f(1, 2, 3, 3, 3),),
        vmap=None,
    ),
    Case("ConvTranspose1d", (2, 3, 3), dict(stride=2), inputs=(f(2, 2, 5),), vmap="example"),
    Case(
        "ConvTranspose1d",
        (4, 2, 3),
        dict(stride=2, padding=1, output_padding=1, groups=2, dilation=2, bias=False),
        inputs=(f(2, 4, 5),),
    ),
    Case(
        "ConvTranspose2d",
        (2, 3, 3),
        dict(stride=2, padding=1, output_padding=1),
        inputs=(f(2, 2, 4, 4),),
    ),
    Case(
        "ConvTranspose2d",
        (2, 3, 3),
        dict(stride=2),
        inputs=(f(1, 2, 4, 4),),
        fwd_kwargs=dict(output_size=(10, 10)),
        id="ConvTranspose2d(2,3,3,stride=2)-output_size",
    ),
    Case(
        "ConvTranspose2d",
        (4, 4, (2, 3)),
        dict(stride=(2, 1), groups=2, dilation=(1, 2), bias=False),
        inputs=(f(2, 4, 3, 4),),
    ),
    Case("ConvTranspose3d", (2, 2, 2), dict(stride=2), inputs=(f(1, 2, 2, 3, 2),)),
    Case("LazyConv1d", (4, 3), inputs=(f(2, 2, 6),), lazy=True),
    Case("LazyConv2d", (4, 3), dict(padding=1), inputs=(f(2, 2, 5, 5),), lazy=True),
    Case("LazyConv3d", (3, 2), inputs=(f(1, 2, 3, 3, 3),), lazy=True),
    Case("LazyConvTranspose1d", (3, 2), dict(stride=2), inputs=(f(2, 2, 4),), lazy=True),
    Case("LazyConvTranspose2d", (3, 2), inputs=(f(2, 2, 3, 3),), lazy=True),
    Case("LazyConvTranspose3d", (2, 2), inputs=(f(1, 2, 2, 2, 2),), lazy=True),
)

# pooling
add(
    Case("MaxPool1d", (3,), dict(stride=2), inputs=(f(2, 3, 9),), vmap="example"),
    Case("MaxPool1d", (2,), dict(return_indices=True, ceil_mode=True), inputs=(f(2, 3, 7),)),
    Case("MaxPool2d", (2,), inputs=(f(2, 3, 6, 6),), vmap="example"),
    Case(
        "MaxPool2d",
        (3,),
        dict(stride=2, padding=1, return_indices=True, ceil_mode=True),
        inputs=(f(2, 2, 7, 7),),
    ),
    Case("MaxPool3d", (2,), dict(return_indices=True), inputs=(f(1, 2, 4, 4, 4),)),
    Case("MaxPool3d", (3,), dict(stride=2, padding=1), inputs=(f(1, 2, 5, 4, 5),)),
    Case(
        "AvgPool1d",
        (3,),
        dict(stride=2, padding=1, count_include_pad=False),
        inputs=(f(2, 3, 8),),
        vmap="example",
    ),
    Case(
        "AvgPool2d",
        (3,),
        dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        inputs=(f(2, 3, 7, 7),),
    ),
    Case("AvgPool2d", (2,), dict(divisor_override=3), inputs=(f(2, 3, 4, 6),)),
    Case("AvgPool3d", (2,), dict(stride=1, padding=1), inputs=(f(1, 2, 3, 4, 4),)),
    Case("AdaptiveAvgPool1d", (4,), inputs=(f(2, 3, 10),), vmap="example"),
    Case("AdaptiveAvgPool2d", ((3, None),), inputs=(f(2, 3, 7, 5),)),
    Case("AdaptiveAvgPool3d", ((2, 3, 1),), inputs=(f(1, 2, 4, 5, 3),)),
    Case("AdaptiveMaxPool1d", (3,), dict(return_indices=True), inputs=(f(2, 3, 8),)),
    Case("AdaptiveMaxPool2d", ((3, 2),), inputs=(f(2, 3, 7, 5),)),
    Case("AdaptiveMaxPool3d", (2,), dict(return_indices=True), inputs=(f(1, 2, 4, 5, 3),)),
    Case("LPPool1d", (2, 3), dict(stride=2), inputs=(f(2, 3, 9),)),
    # a fractional norm takes x ** p of the inputs: positive inputs keep it real
    Case("LPPool2d", (1.5, 2), inputs=(f(2, 3, 6, 6, lo=0.5, hi=2.0),)),
    Case("LPPool2d", (2, (2, 3)), dict(ceil_mode=True), inputs=(f(2, 3, 5, 7),)),
    Case("LPPool3d", (2, 2), inputs=(f(1, 2, 4, 4, 4),)),
    # the random path cannot match torch's generator: fixed `_random_samples` (a buffer) instead
    Case(
        "FractionalMaxPool2d",
        (2,),
        dict(output_size=(3, 3), _random_samples=uniforms(2, 3, 2)),
        inputs=(f(2, 3, 6, 7),),
    ),
    Case(
        "FractionalMaxPool2d",
        ((2, 3),),
        dict(output_ratio=0.5, return_indices=True, _random_samples=uniforms(1, 2, 2)),
        inputs=(f(1, 2, 8, 9),),
    ),
    Case(
        "FractionalMaxPool3d",
        (2,),
        dict(output_size=(2, 3, 2), return_indices=True, _random_samples=uniforms(1, 2, 3)),
        inputs=(f(1, 2, 4, 5, 4),),
    ),
    Case("MaxUnpool1d", (2,), inputs=pooled(1, (2, 3, 8), 2)),
    Case(
        "MaxUnpool2d",
        (2,),
        dict(stride=2),
        inputs=pooled(2, (2, 2, 5, 5), 2),
        fwd_kwargs=dict(output_size=(5, 5)),
    ),
    Case("MaxUnpool3d", (2,), inputs=pooled(3, (1, 2, 4, 4, 4), 2)),
)

# padding
add(
    Case("ConstantPad1d", (2, 3.5), inputs=(f(2, 3, 4),), vmap="example"),
    Case("ConstantPad2d", ((1, 0, 2, 1), -1.0), inputs=(f(2, 3, 4, 4),)),
    Case("ConstantPad3d", (1, 0.5), inputs=(f(1, 2, 2, 3, 2),)),
    Case("ZeroPad1d", ((1, 2),), inputs=(f(2, 3, 4),)),
    Case("ZeroPad2d", (1,), inputs=(f(1, 2, 3, 3),), vmap="example"),
    Case("ZeroPad2d", ((-1, 1, 0, 2),), inputs=(f(1, 2, 3, 3),)),
    Case("ZeroPad3d", ((1, 0, 1, 0, 0, 1),), inputs=(f(1, 2, 2, 2, 2),)),
    Case("ReflectionPad1d", (2,), inputs=(f(2, 3, 5),), vmap="example"),
    Case("ReflectionPad2d", ((1, 2, 2, 0),), inputs=(f(2, 2, 4, 4),)),
    Case("ReflectionPad3d", (1,), inputs=(f(1, 2, 3, 3, 3),)),
    Case("ReplicationPad1d", ((2, 1),), inputs=(f(2, 3, 4),)),
    Case("ReplicationPad2d", (2,), inputs=(f(2, 2, 3, 3),), vmap="example"),
    Case("ReplicationPad3d", ((1, 0, 2, 1, 0, 1),), inputs=(f(1, 2, 2, 3, 2),)),
    Case("CircularPad1d", (2,), inputs=(f(2, 3, 4),)),
    Case("CircularPad2d", ((1, 2, 0, 1),), inputs=(f(2, 2, 3, 4),), vmap="example"),
    Case("CircularPad3d", (1,), inputs=(f(1, 2, 2, 3, 2),)),
)

# normalization. Stateful layers vmap in eval mode (a train-mode update of a buffer from inside
# vmap would store a batched value), which is also where the running statistics are used.
add(
    Case("BatchNorm1d", (3,), inputs=(f(4, 3),)),
    Case("BatchNorm1d", (3,), dict(momentum=None, affine=False), inputs=(f(4, 3, 5),)),
    Case("BatchNorm1d", (3,), dict(track_running_stats=False), inputs=(f(4, 3),)),
    Case("BatchNorm2d", (3,), inputs=(f(2, 3, 4, 4),)),
    Case("BatchNorm2d", (3,), dict(eps=1e-3, momentum=0.3, bias=False), inputs=(f(2, 3, 3, 2),)),
    Case("BatchNorm3d", (2,), inputs=(f(2, 2, 3, 3, 2),)),
    Case("LazyBatchNorm1d", (), inputs=(f(4, 3),), lazy=True),
    Case("LazyBatchNorm2d", (), dict(momentum=0.2), inputs=(f(2, 3, 2, 2),), lazy=True),
    Case("LazyBatchNorm3d", (), inputs=(f(2, 2, 2, 2, 2),), lazy=True),
    Case("SyncBatchNorm", (3,), inputs=(f(4, 3, 5),)),
    Case("InstanceNorm1d", (3,), inputs=(f(2, 3, 6),), vmap="example"),
    Case("InstanceNorm1d", (3,), dict(affine=True, track_running_stats=True), inputs=(f(2, 3, 6),)),
    Case("InstanceNorm2d", (3,), dict(affine=True), inputs=(f(2, 3, 4, 4),)),
    Case(
        "InstanceNorm2d",
        (3,),
        dict(track_running_stats=True, momentum=0.2),
        inputs=(f(2, 3, 3, 4),),
    ),
    Case("InstanceNorm3d", (2,), inputs=(f(2, 2, 3, 3, 3),)),
    Case("LazyInstanceNorm1d", (), dict(affine=True), inputs=(f(2, 3, 6),), lazy=True),
    Case(
        "LazyInstanceNorm2d", (), dict(track_running_stats=True), inputs=(f(2, 3, 3, 3),), lazy=True
    ),
    Case("LazyInstanceNorm3d", (), inputs=(f(2, 2, 2, 3, 2),), lazy=True),
    Case("LayerNorm", (5,), inputs=(f(2, 3, 5),), vmap="example"),
    Case("LayerNorm", ((3, 5),), dict(bias=False, eps=1e-3), inputs=(f(2, 3, 5),)),
    Case("GroupNorm", (2, 4), inputs=(f(2, 4, 3, 3),)),
    Case("GroupNorm", (3, 6), dict(affine=False, eps=1e-3), inputs=(f(2, 6, 5),)),
    Case("RMSNorm", (5,), inputs=(f(2, 3, 5),)),
    Case("RMSNorm", (4,), dict(elementwise_affine=False), inputs=(f(3, 4),)),
    Case("LocalResponseNorm", (3,), inputs=(f(2, 5, 4, 4),)),
    Case("LocalResponseNorm", (2,), dict(alpha=1e-2, beta=0.5, k=2.0), inputs=(f(2, 4, 6),)),
    Case("CrossMapLRN2d", (3,), dict(alpha=1e-2), inputs=(f(2, 5, 3, 3),)),
)

# dropout: p > 0 is random in train mode (cannot match torch's generator bitwise)
add(
    Case("Dropout", (0.0,), inputs=(f(2, 3),)),
    Case("Dropout", (), inputs=(f(4, 5),), random_train=True),
    Case("Dropout", (0.3,), dict(inplace=True), inputs=(f(4, 5),), random_train=True),
    Case("Dropout1d", (0.0,), inputs=(f(2, 3, 4),)),
    Case("Dropout1d", (0.5,), inputs=(f(2, 3, 4),), random_train=True),
    Case("Dropout2d", (0.5,), inputs=(f(2, 3, 4, 4),), random_train=True),
    Case("Dropout3d", (0.5,), inputs=(f(2, 3, 2, 2, 2),), random_train=True),
    Case("AlphaDropout", (0.0,), inputs=(f(4, 5),)),
    Case("AlphaDropout", (0.5,), inputs=(f(4, 5),), random_train=True),
    Case("FeatureAlphaDropout", (0.5,), inputs=(f(2, 3, 4, 4),), random_train=True),
)

# sparse
add(
    Case("Embedding", (10, 3), inputs=(i(10, 2, 4),), vmap="example"),
    Case("Embedding", (10, 3), dict(padding_idx=1), inputs=(i(3, 3, 5),)),
    # torch renormalizes the looked-up rows of the weight in place during forward
    Case("Embedding", (10, 3), dict(max_norm=1.0), inputs=(i(10, 2, 4),)),
    Case("Embedding", (6, 3), dict(scale_grad_by_freq=True), inputs=(i(3, 2, 5),)),
    Case("EmbeddingBag", (10, 3), dict(mode="sum"), inputs=(i(10, 2, 4),)),
    Case("EmbeddingBag", (10, 3), dict(mode="max"), inputs=(i(10, 3, 2),)),
    Case(
        "EmbeddingBag",
        (10, 3),
        inputs=(i(10, 7), Fixed(lambda rng: Arr(np.array([0, 2, 5]), False))),
        id="EmbeddingBag(10,3)-offsets",
    ),
    Case(
        "EmbeddingBag",
        (10, 3),
        dict(mode="sum"),
        inputs=(i(10, 2, 3), None, f(2, 3)),
        id="EmbeddingBag(10,3,mode=sum)-per_sample_weights",
    ),
    Case(
        "EmbeddingBag",
        (10, 3),
        dict(padding_idx=0, include_last_offset=True),
        inputs=(i(4, 7), Fixed(lambda rng: Arr(np.array([0, 3, 3, 7]), False))),
    ),
)

# recurrent (sums over the hidden size at every step). These and the transformers are the
# slowest cases: each class has one vmap case, the others skip it (vmap=None).
add(
    Case("RNN", (3, 4), inputs=(f(5, 2, 3),)),
    Case(
        "RNN",
        (3, 4),
        dict(num_layers=2, nonlinearity="relu", batch_first=True, bidirectional=True, bias=False),
        inputs=(f(2, 5, 3), f(4, 2, 4)),
        vmap=None,
    ),
    Case("LSTM", (3, 4), inputs=(f(5, 2, 3), (f(1, 2, 4), f(1, 2, 4)))),
    Case(
        "LSTM",
        (3, 4),
        dict(proj_size=2, batch_first=True, num_layers=2, bidirectional=True),
        inputs=(f(2, 4, 3),),
        vmap=None,
    ),
    Case("LSTM", (3, 4), inputs=(f(5, 3),), vmap=None, id="LSTM(3,4)-unbatched"),
    Case("GRU", (3, 4), dict(num_layers=2, bias=False), inputs=(f(5, 2, 3),), vmap=None),
    Case(
        "GRU", (3, 4), dict(bidirectional=True, batch_first=True), inputs=(f(2, 4, 3), f(2, 2, 4))
    ),
    Case("RNNCell", (3, 4), inputs=(f(2, 3), f(2, 4)), vmap="example"),
    Case("RNNCell", (3, 4), dict(nonlinearity="relu", bias=False), inputs=(f(2, 3),), vmap=None),
    Case("LSTMCell", (3, 4), inputs=(f(2, 3), (f(2, 4), f(2, 4))), vmap="example"),
    Case(
        "LSTMCell",
        (3, 4),
        dict(bias=False),
        inputs=(
            f(
                3,
            ),
        ),
        vmap=None,
        id="LSTMCell(3,4,bias=False)-unbatched",
    ),
    Case("GRUCell", (3, 4), inputs=(f(2, 3), f(2, 4)), vmap="example"),
    Case(
        "GRUCell",
        (3, 4),
        dict(bias=False),
        inputs=(f(2, 3),),
        vmap=None,
        id="GRUCell(3,4,bias=False)-no_hx",
    ),
)

# attention and transformers (dropout=0.0: train mode is deterministic). Masks are per batch:
# the cases with masks are not vmapped.
add(
    Case("MultiheadAttention", (8, 2), inputs=(f(4, 2, 8), f(4, 2, 8), f(4, 2, 8)), vmap=None),
    Case(
        "MultiheadAttention",
        (8, 2),
        dict(batch_first=True, kdim=5, vdim=6, bias=False),
        inputs=(f(2, 4, 8), f(2, 3, 5), f(2, 3, 6)),
        fwd_kwargs=dict(average_attn_weights=False),
        vmap="example",
    ),
    Case(
        "MultiheadAttention",
        (8, 2),
        dict(add_bias_kv=True, add_zero_attn=True),
        inputs=(f(4, 2, 8), f(3, 2, 8), f(3, 2, 8)),
        fwd_kwargs=dict(
            key_padding_mask=np.array([[False, False, True], [False, True, False]]),
            attn_mask=np.array([[False, True, False]] * 4),
            need_weights=False,
        ),
        vmap=None,
        id="MultiheadAttention(8,2,add_bias_kv,add_zero_attn)-masks",
    ),
    Case(
        "MultiheadAttention",
        (8, 2),
        dict(dropout=0.5),
        inputs=(f(3, 2, 8), f(3, 2, 8), f(3, 2, 8)),
        random_train=True,
        vmap=None,
    ),
)
add(
    Case("TransformerEncoderLayer", (8, 2, 16, 0.0), inputs=(f(5, 2, 8),), vmap=None, **DEEP_TOL),
    Case(
        "TransformerEncoderLayer",
        (8, 2, 16, 0.0),
        dict(batch_first=True, norm_first=True, activation="gelu"),
        inputs=(f(2, 5, 8),),
        vmap="example",
        **DEEP_TOL,
    ),
    Case(
        "TransformerDecoderLayer",
        (8, 2, 16, 0.0),
        dict(batch_first=True, norm_first=True, bias=False),
        inputs=(f(2, 4, 8), f(2, 5, 8)),
        fwd_kwargs=dict(tgt_mask=causal_mask(4)),
        vmap="example",
        **DEEP_TOL,
    ),
    Case(
        "TransformerEncoder",
        build=lambda nn, arr: nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16, 0.0),
            2,
            norm=nn.LayerNorm(8),
            enable_nested_tensor=False,
        ),
        inputs=(f(5, 2, 8),),
        id="TransformerEncoder(layer,2,norm=LayerNorm)",
        **DEEP_TOL,
    ),
    # enable_nested_tensor=False: with nested tensors torch's eval fast path writes 0 at padded
    # positions, where jaxmodule (and torch's own slow path) compute a value
    Case(
        "TransformerEncoder",
        build=lambda nn, arr: nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True),
            2,
            enable_nested_tensor=False,
        ),
        inputs=(f(2, 4, 8),),
        fwd_kwargs=dict(src_key_padding_mask=np.array([[False] * 4, [False, False, False, True]])),
        vmap=None,
        id="TransformerEncoder(layer(batch_first),2)-padding_mask",
        **DEEP_TOL,
    ),
    Case(
        "TransformerDecoder",
        build=lambda nn, arr: nn.TransformerDecoder(
            nn.TransformerDecoderLayer(8, 2, 16, 0.0), 2, norm=nn.LayerNorm(8)
        ),
        inputs=(f(4, 2, 8), f(5, 2, 8)),
        id="TransformerDecoder(layer,2,norm=LayerNorm)",
        **DEEP_TOL,
    ),
    Case(
        "Transformer",
        (),
        dict(
            d_model=8,
            nhead=2,
            num_encoder_layers=1,
            num_decoder_layers=1,
            dim_feedforward=16,
            dropout=0.0,
            batch_first=True,
        ),
        inputs=(f(2, 5, 8), f(2, 4, 8)),
        fwd_kwargs=dict(tgt_mask=causal_mask(4)),
        vmap="example",
        **DEEP_TOL,
    ),
)

# shape and vision layers
add(
    Case("Flatten", (), inputs=(f(2, 3, 4),)),
    Case("Unflatten", (1, (2, 3)), inputs=(f(2, 6, 4),)),
    Case("Unflatten", (-1, (2, -1)), inputs=(f(2, 3, 8),)),
    Case("Upsample", (), dict(scale_factor=2, mode="nearest"), inputs=(f(2, 3, 4, 4),)),
    Case(
        "Upsample",
        (),
        dict(size=(5, 7), mode="bilinear", align_corners=True),
        inputs=(f(2, 3, 3, 4),),
    ),
    Case("Upsample", (), dict(scale_factor=1.5, mode="bicubic"), inputs=(f(1, 2, 4, 4),)),
    Case("Upsample", (), dict(size=6, mode="linear"), inputs=(f(2, 3, 4),)),
    Case("Upsample", (), dict(scale_factor=2, mode="trilinear"), inputs=(f(1, 2, 2, 3, 2),)),
    Case("Upsample", (), dict(scale_factor=(2, 3), mode="nearest-exact"), inputs=(f(1, 2, 3, 3),)),
    Case("UpsamplingNearest2d", (), dict(scale_factor=2), inputs=(f(1, 2, 3, 3),)),
    Case("UpsamplingBilinear2d", (), dict(size=(5, 4)), inputs=(f(1, 2, 3, 3),)),
    Case("PixelShuffle", (2,), inputs=(f(2, 8, 3, 3),), vmap="example"),
    Case("PixelUnshuffle", (2,), inputs=(f(2, 2, 4, 6),)),
    Case("ChannelShuffle", (2,), inputs=(f(2, 6, 3, 3),)),
    Case("Fold", (), dict(output_size=(4, 5), kernel_size=2), inputs=(f(2, 12, 12),)),
    Case(
        "Fold",
        (),
        dict(output_size=(5, 6), kernel_size=(2, 3), stride=2, padding=1, dilation=1),
        inputs=(f(1, 12, 9),),
    ),
    Case("Unfold", (), dict(kernel_size=2), inputs=(f(2, 3, 4, 5),), vmap="example"),
    Case(
        "Unfold",
        (),
        dict(kernel_size=(2, 3), dilation=2, padding=1, stride=(1, 2)),
        inputs=(f(2, 2, 5, 6),),
    ),
    Case("CosineSimilarity", (), inputs=(f(3, 5), f(3, 5))),
    Case("CosineSimilarity", (), dict(dim=0, eps=1e-6), inputs=(f(4, 3), f(4, 3))),
    Case("PairwiseDistance", (), inputs=(f(3, 5), f(3, 5))),
    Case("PairwiseDistance", (), dict(p=1.0, eps=1e-4, keepdim=True), inputs=(f(3, 5), f(3, 5))),
)

# containers
add(
    Case(
        "Sequential",
        build=lambda nn, arr: nn.Sequential(
            nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 4)
        ),
        inputs=(f(2, 2, 4, 4),),
        id="Sequential(Conv2d,BatchNorm2d,Flatten,Linear)",
    ),
    Case(
        "Sequential",
        build=lambda nn, arr: nn.Sequential(
            OrderedDict(lin=nn.Linear(3, 4), norm=nn.LayerNorm(4), drop=nn.Dropout(0.0))
        ),
        inputs=(f(2, 3),),
        id="Sequential(OrderedDict)",
    ),
    Case(
        "ModuleList",
        build=lambda nn, arr: nn.ModuleList([nn.Linear(2, 3), nn.Conv1d(3, 2, 1)]),
        forward=False,
        id="ModuleList(Linear,Conv1d)",
    ),
    Case(
        "ModuleDict",
        build=lambda nn, arr: nn.ModuleDict(dict(b=nn.Linear(2, 3), a=nn.BatchNorm1d(3))),
        forward=False,
        id="ModuleDict(b=Linear,a=BatchNorm1d)",
    ),
    # documented difference (container.py docstrings): the repr names the jax dtype where torch
    # prints `torch.float32` (ParameterList) or the tensor type `torch.FloatTensor` (ParameterDict)
    Case(
        "ParameterList",
        build=lambda nn, arr: nn.ParameterList(
            [
                nn.Parameter(arr(np.ones((2, 3), np.float32))),
                nn.Parameter(arr(np.zeros((4,), np.float32))),
            ]
        ),
        forward=False,
        repr_subs=(("torch.float32", "float32"),),
        id="ParameterList",
    ),
    Case(
        "ParameterDict",
        build=lambda nn, arr: nn.ParameterDict(
            dict(
                w=nn.Parameter(arr(np.ones((2, 3), np.float32))),
                b=nn.Parameter(arr(np.zeros((4,), np.float32))),
            )
        ),
        forward=False,
        repr_subs=(("torch.FloatTensor", "float32"),),
        id="ParameterDict",
    ),
    Case(
        "Container",
        build=lambda nn, arr: nn.Container(lin=nn.Linear(2, 3)),
        forward=False,
        id="Container(lin=Linear)",
    ),
    Case("Module", forward=False),
    Case("RNNBase", ("LSTM", 3, 4), forward=False),
    Case("RNNCellBase", (3, 4, True, 3), forward=False),
)

# activations (inputs scaled so that every piece of a piecewise function is hit)
add(
    Case("ReLU", inputs=(f(2, 3, 4),)),
    Case("ReLU", (True,), inputs=(f(2, 3),)),
    Case("ReLU6", inputs=(f(2, 3, 4, scale=4.0),)),
    Case("Threshold", (0.1, 20.0), inputs=(f(2, 3, 4),)),
    Case("Hardtanh", (-0.5, 1.5), inputs=(f(2, 3, 4, scale=2.0),)),
    Case("Sigmoid", inputs=(f(2, 3, 4),)),
    Case("Hardsigmoid", inputs=(f(2, 3, 4, scale=4.0),)),
    Case("Tanh", inputs=(f(2, 3, 4),)),
    Case("SiLU", inputs=(f(2, 3, 4),)),
    Case("Mish", inputs=(f(2, 3, 4),)),
    Case("Hardswish", inputs=(f(2, 3, 4, scale=4.0),)),
    Case("ELU", (0.5,), inputs=(f(2, 3, 4),)),
    Case("CELU", (1.5,), inputs=(f(2, 3, 4),)),
    Case("SELU", inputs=(f(2, 3, 4),)),
    Case("GLU", inputs=(f(2, 3, 4),)),
    Case("GLU", (1,), inputs=(f(2, 4, 3),)),
    Case("GELU", inputs=(f(2, 3, 4),)),
    Case("GELU", ("tanh",), inputs=(f(2, 3, 4),)),
    Case("Hardshrink", (0.3,), inputs=(f(2, 3, 4),)),
    Case("LeakyReLU", (0.2,), inputs=(f(2, 3, 4),)),
    Case("LogSigmoid", inputs=(f(2, 3, 4),)),
    Case("Softplus", (), dict(beta=2.0, threshold=1.0), inputs=(f(2, 3, 4),)),
    Case("Softshrink", (0.4,), inputs=(f(2, 3, 4),)),
    Case("PReLU", inputs=(f(2, 3, 4),)),
    Case("PReLU", (3,), dict(init=0.1), inputs=(f(2, 3, 4),)),
    Case("RReLU", inputs=(f(2, 3, 4),), random_train=True),
    Case("RReLU", (0.1, 0.3), inputs=(f(2, 3, 4),), random_train=True),
    Case("Softsign", inputs=(f(2, 3, 4),)),
    Case("Tanhshrink", inputs=(f(2, 3, 4),)),
    Case("Softmin", (1,), inputs=(f(2, 3, 4),)),
    Case("Softmax", (-1,), inputs=(f(2, 3, 4),), vmap="example"),
    Case("Softmax2d", inputs=(f(2, 3, 4, 4),)),
    Case("LogSoftmax", (1,), inputs=(f(2, 3, 4),)),
)


# losses: (input, target, ...); targets that torch cannot differentiate have grad=False
W5 = np.array([0.2, 1.0, 0.5, 2.0, 1.5], np.float32)
W4 = np.array([0.5, 1.0, 2.0, 1.5], np.float32)
add(
    Case("L1Loss", inputs=(f(3, 4), f(3, 4))),
    Case("MSELoss", inputs=(f(3, 4), f(3, 4))),
    Case("MSELoss", (), dict(reduction="sum"), inputs=(f(3, 4), f(3, 4))),
    Case("CrossEntropyLoss", inputs=(f(4, 5), i(5, 4))),
    Case(
        "CrossEntropyLoss",
        (),
        dict(weight=W5, ignore_index=1, label_smoothing=0.1),
        inputs=(f(6, 5), i(5, 6)),
    ),
    Case("CrossEntropyLoss", (), dict(reduction="none"), inputs=(f(2, 5, 3, 3), i(5, 2, 3, 3))),
    Case(
        "CrossEntropyLoss",
        (),
        dict(label_smoothing=0.2),
        inputs=(f(4, 5), probs(4, 5)),
        id="CrossEntropyLoss(label_smoothing=0.2)-prob_target",
    ),
    Case("NLLLoss", inputs=(log_probs(4, 5), i(5, 4))),
    Case(
        "NLLLoss",
        (),
        dict(weight=W5, ignore_index=0, reduction="sum"),
        inputs=(log_probs(6, 5), i(5, 6)),
    ),
    Case("NLLLoss2d", inputs=(log_probs(2, 5, 3, 3), i(5, 2, 3, 3))),
    # binary_cross_entropy has no derivative for the target in torch
    Case("BCELoss", inputs=(f(3, 4, lo=0.05, hi=0.95), f(3, 4, lo=0.0, hi=1.0, grad=False))),
    Case(
        "BCELoss",
        (),
        dict(weight=W4, reduction="sum"),
        inputs=(f(3, 4, lo=0.05, hi=0.95), f(3, 4, lo=0.0, hi=1.0, grad=False)),
    ),
    Case("BCEWithLogitsLoss", inputs=(f(3, 4), f(3, 4, lo=0.0, hi=1.0))),
    Case(
        "BCEWithLogitsLoss",
        (),
        dict(pos_weight=np.array([0.5, 1.0, 2.0, 3.0], np.float32), reduction="none"),
        inputs=(f(3, 4), f(3, 4, lo=0.0, hi=1.0)),
    ),
    Case(
        "KLDivLoss",
        (),
        dict(reduction="batchmean"),
        inputs=(log_probs(3, 5), probs(3, 5, grad=True)),
    ),
    Case(
        "KLDivLoss",
        (),
        dict(log_target=True, reduction="sum"),
        inputs=(log_probs(3, 5), log_probs(3, 5)),
    ),
    Case("HuberLoss", (), dict(delta=0.5), inputs=(f(3, 4), f(3, 4))),
    Case("SmoothL1Loss", (), dict(beta=0.5), inputs=(f(3, 4), f(3, 4))),
    Case("SoftMarginLoss", inputs=(f(3, 4), sign_target(3, 4))),
    Case("MultiLabelSoftMarginLoss", inputs=(f(3, 4), binary_target(3, 4))),
    Case(
        "MultiLabelSoftMarginLoss",
        (),
        dict(weight=W4, reduction="none"),
        inputs=(f(3, 4), binary_target(3, 4)),
    ),
    Case("MultiLabelMarginLoss", inputs=(f(3, 4), multilabel_target(3, 4))),
    Case("MultiMarginLoss", inputs=(f(4, 5), i(5, 4))),
    Case(
        "MultiMarginLoss",
        (),
        dict(p=2, margin=0.5, weight=W5, reduction="sum"),
        inputs=(f(4, 5), i(5, 4)),
    ),
    Case("HingeEmbeddingLoss", (), dict(margin=0.5), inputs=(f(3, 4), sign_target(3, 4))),
    Case("CosineEmbeddingLoss", (), dict(margin=0.2), inputs=(f(4, 5), f(4, 5), sign_target(4))),
    Case("MarginRankingLoss", (), dict(margin=0.1), inputs=(f(4), f(4), sign_target(4))),
    Case("TripletMarginLoss", inputs=(f(3, 5), f(3, 5), f(3, 5))),
    Case(
        "TripletMarginLoss",
        (),
        dict(margin=0.5, p=1.0, swap=True, reduction="none"),
        inputs=(f(3, 5), f(3, 5), f(3, 5)),
    ),
    Case("TripletMarginWithDistanceLoss", inputs=(f(3, 5), f(3, 5), f(3, 5))),
    Case(
        "TripletMarginWithDistanceLoss",
        (),
        dict(margin=0.3, swap=True),
        inputs=(f(3, 5), f(3, 5), f(3, 5)),
    ),
    Case("PoissonNLLLoss", inputs=(f(3, 4), f(3, 4, lo=0.0, hi=4.0))),
    Case(
        "PoissonNLLLoss",
        (),
        dict(log_input=False, full=True),
        inputs=(f(3, 4, lo=0.5, hi=3.0), f(3, 4, lo=0.0, hi=4.0)),
    ),
    Case("GaussianNLLLoss", inputs=(f(3, 4), f(3, 4), f(3, 4, lo=0.1, hi=2.0))),
    Case(
        "GaussianNLLLoss",
        (),
        dict(full=True, eps=1e-3, reduction="sum"),
        inputs=(f(3, 4), f(3, 4), f(3, 1, lo=0.1, hi=2.0)),
    ),
    # CTCLoss is used after a log_softmax; the cases feed it one (its log_probs gradient follows
    # torch's kernel convention and is also compared directly in tests/nn/modules/test_loss.py)
    Case("CTCLoss", inputs=ctc_inputs(6, 2, 4, 3), pre=_log_softmax_first),
    Case(
        "CTCLoss",
        (),
        dict(blank=0, reduction="sum", zero_infinity=True),
        inputs=ctc_inputs(5, 3, 5, 2),
        pre=_log_softmax_first,
    ),
    Case("AdaptiveLogSoftmaxWithLoss", (8, 10, [4, 8]), inputs=(f(5, 8), i(10, 5))),
    Case(
        "AdaptiveLogSoftmaxWithLoss",
        (8, 10, [3]),
        dict(div_value=2.0, head_bias=True),
        inputs=(f(5, 8), i(10, 5)),
    ),
    Case("LinearCrossEntropyLoss", (8, 5), inputs=(f(4, 8), i(5, 4))),
    Case(
        "LinearCrossEntropyLoss",
        (8, 5),
        dict(bias=True, label_smoothing=0.1, ignore_index=2),
        inputs=(f(6, 8), i(5, 6)),
    ),
)

# Layers of jaxmodule.nn that share a torch.nn name but have no case, and why.
EXCLUDED: dict[str, str] = {}

CASES: list[Case] = C


def cases_for(names: set[str]) -> list[Case]:
    """The cases whose class exists in both libraries (others arrive later or never)."""
    out, seen, vmapped = [], {}, set()
    for c in CASES:
        if c.vmap == "auto":
            c.vmap = None if c.cls in vmapped else "stack"
        if c.vmap:
            vmapped.add(c.cls)
        if c.cls in names:
            n = seen.get(c.id, 0)
            seen[c.id] = n + 1
            if n:
                c.id = f"{c.id}#{n}"
            out.append(c)
    return out
