"""Errors that teach, the remaining cases (issue 14): torch habits on jax arrays inside a compiled
step (`loss.backward()`), and tracer errors raised when the step is traced again (new input
shape or dtype, a Python float, train()/eval(), a rebound global) or inside a nested function
or module forward, which must name the user's argument and line as the first trace does."""

import inspect
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxmodule
import pytest
from jaxmodule import nn, optim
from jaxmodule._compile import _teach

HERE = __file__
DOCS = Path(__file__).resolve().parents[2] / "docs"
INTERNALS = (
    "probe",
    "pure",
    "_program.py",
    "_function.py",
    "_teach.py",
    "_fast_path",
    "dyn[",
    "values[",
    "const_vals",
    "mutated_vals",
    "states[",
    "grads[",
    "kw[",
    "kwargs[",
)
TRACER_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
)


def _line_of(fn, text):
    """`HERE:N` of the line of `fn`'s source containing `text`."""
    lines, first = inspect.getsourcelines(fn)
    for k, line in enumerate(lines):
        if text in line:
            return f"{HERE}:{first + k}"
    raise AssertionError(f"{text!r} not in {fn.__name__}")


def _raised(kind, step, *args, **kwargs):
    with pytest.raises(kind) as info:
        step(*args, **kwargs)
    return info.value, str(info.value), "\n".join(getattr(info.value, "__notes__", []))


def _no_internals(text):
    for internal in INTERNALS:
        assert internal not in text, f"{internal!r} in {text!r}"


def _model_and_step():
    model, crit = nn.Linear(3, 2), nn.MSELoss()
    opt = optim.SGD(model.parameters(), lr=0.1)

    def train_step(x, y):
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()  # the torch habit
        opt.step()
        return loss

    return model, train_step


# ---- loss.backward() and other torch habits on jax arrays ---------------------------------------


def test_loss_backward_in_a_compiled_step_keeps_attributeerror_and_teaches_jaxmodule_backward():
    model, train_step = _model_and_step()
    before = jnp.array(model.weight, copy=True)
    e, msg, note = _raised(
        AttributeError, jaxmodule.compile(train_step), jnp.ones((4, 3)), jnp.zeros((4, 2))
    )
    assert "backward" in msg  # jax's own message is kept
    assert (
        f"{_line_of(train_step, 'loss.backward()')} (`loss.backward()  # the torch habit`)" in note
    )
    assert "jax arrays have no `.backward()`" in note
    assert "jaxmodule.backward(lambda: criterion(model(x), y))" in note
    assert "jaxmodule.backward(loss_fn, model, x, y)" in note and "`.grad`" in note
    assert "docs/coming_from_pytorch.md" in note
    assert note.count("jaxmodule.compile:") == 1
    _no_internals(note)
    assert jnp.array_equal(model.weight, before)  # the failed step changed nothing


def test_the_fix_the_note_gives_runs():
    model, crit = nn.Linear(3, 2), nn.MSELoss()
    opt = optim.SGD(model.parameters(), lr=0.1)

    @jaxmodule.compile
    def train_step(x, y):
        opt.zero_grad()
        loss = jaxmodule.backward(lambda: crit(model(x), y))
        opt.step()
        return loss

    before = jnp.array(model.weight, copy=True)
    train_step(jnp.ones((4, 3)), jnp.zeros((4, 2)))
    assert not jnp.array_equal(model.weight, before)


def test_loss_backward_on_a_retrace_is_taught_too():
    model = nn.Linear(3, 1)

    @jaxmodule.compile
    def step(x):
        loss = model(x).sum()
        if x.shape[0] > 2:  # only the new shape reaches the habit
            loss.backward()
        return loss

    step(jnp.ones((2, 3)))
    e, msg, note = _raised(AttributeError, step, jnp.ones((4, 3)))
    assert f"{_line_of(step.fn, 'loss.backward()')} (`loss.backward()`)" in note
    assert "jaxmodule.backward(" in note and "<locals>.step` (" in note
    _no_internals(note)


@pytest.mark.parametrize(
    "code, name, hint",
    [
        (lambda x, model: model.weight.grad.zero_(), "zero_", "optimizer.zero_grad()"),
        (lambda x, model: x.add_(1.0), "add_", "jaxmodule.Tensor.add(x, ...)"),
        (lambda x, model: x.detach(), "detach", "jaxmodule.Tensor.detach(x, ...)"),
        (lambda x, model: x.cpu(), "cpu", "jaxmodule.Tensor.cpu(x, ...)"),
        (lambda x, model: x.requires_grad_(), "requires_grad_", "jax.grad(f)(x)"),
        (lambda x, model: x.grad_fn, "grad_fn", "carry no autograd graph"),
        (lambda x, model: x.data, "data", "drop `.data`"),
    ],
)
def test_other_torch_habits_get_their_jaxmodule_form(code, name, hint):
    model = nn.Linear(3, 1)
    model(jnp.ones((1, 3))).sum()
    jaxmodule.backward(lambda: model(jnp.ones((1, 3))).sum())  # model.weight.grad is carried in

    @jaxmodule.compile
    def step(x):
        return code(x, model)

    e, msg, note = _raised(AttributeError, step, jnp.ones(3))
    assert e.name == name and f"torch's `.{name}` on a jax array at {HERE}:" in note
    assert hint in note
    _no_internals(note)


def test_an_attribute_that_is_no_torch_habit_keeps_jax_error_alone():
    @jaxmodule.compile
    def step(x):
        return x.no_such_thing

    e, msg, note = _raised(AttributeError, step, jnp.ones(3))
    assert "no_such_thing" in msg and "jaxmodule.compile" not in note


def test_the_habit_table_names_only_attributes_jax_arrays_lack():
    x = jnp.ones(2)
    for name in _teach.TORCH_HABITS:
        assert not hasattr(x, name), name
    assert _teach._habit("sum") is not None or hasattr(x, "sum")  # arrays have sum: never reached
    assert _teach._habit("no_such_thing") is None and _teach._habit("_private") is None


# ---- eager loss.backward(): the docs say what the user sees and the fix -------------------------


def test_eager_loss_backward_is_documented_where_users_look():
    with pytest.raises(AttributeError) as info:
        jnp.ones(2).sum().backward()
    seen = str(info.value)  # what the user sees: jax's message, jaxmodule cannot intercept it
    assert seen.endswith("object has no attribute 'backward'")
    doc = jaxmodule.backward.__doc__
    assert seen in doc and "jaxmodule.backward(lambda: criterion(model(x), y))" in doc
    for page in ("porting.md", "coming_from_pytorch.md"):
        text = (DOCS / page).read_text()
        assert seen in text, page
        assert re.search(r"^#+ .*loss\.backward\(\)", text, re.M), page


# ---- tracer errors on a retrace name the user's argument and line -------------------------------


def _branchy_step():
    model = nn.Linear(3, 1)

    def train_step(batch, scale):
        loss = model(batch).sum() * scale
        if batch.shape[0] > 2 and loss > 0:  # the offending line
            return loss
        return -loss

    return train_step


@pytest.mark.parametrize("fast_path", ["1", "0"])
@pytest.mark.parametrize(
    "second",
    [
        (jnp.ones((4, 3)), jnp.float32(2.0)),  # a new input shape
        (jnp.ones((4, 3), jnp.bfloat16), jnp.bfloat16(2.0)),  # ... and dtype
    ],
)
def test_retrace_for_a_new_input_type_names_arguments_cells_and_line(
    monkeypatch, fast_path, second
):
    monkeypatch.setenv("JAXMODULE_FAST_PATH", fast_path)
    fn = _branchy_step()
    step = jaxmodule.compile(fn)
    step(jnp.ones((2, 3)), jnp.float32(2.0))
    e, msg, note = _raised(TRACER_ERRORS, step, *second)
    assert step.trace_count == 2  # it was the retrace that failed
    assert "tracing the step function `" in msg and f"train_step` ({HERE}:" in msg
    assert "depends on `model.weight`, `model.bias`, argument `batch` and argument `scale`" in msg
    assert (
        f"{_line_of(fn, 'the offending line')} (`if batch.shape[0] > 2 and loss > 0:  # the offending line`)"
        in note
    )
    assert "jnp.where" in note
    _no_internals(msg + note)


def test_retrace_names_keyword_arguments():
    @jaxmodule.compile
    def step(x, *, n):
        return x * n if x.shape[0] < 3 or (x * n).sum() > 0 else x

    step(jnp.ones(2), n=jnp.ones(2))
    e, msg, note = _raised(TRACER_ERRORS, step, jnp.ones(4), n=jnp.ones(4))
    assert "depends on argument `x` and argument `n`" in msg
    _no_internals(msg + note)


def test_retrace_names_the_cells_a_training_step_writes():
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)

    @jaxmodule.compile
    def step(x):
        opt.zero_grad()
        loss = jaxmodule.backward(lambda: model(x).sum())
        opt.step()
        if x.shape[0] > 2 and model.weight.sum() > 0:  # reads an updated parameter
            return -loss
        return loss

    step(jnp.ones((2, 3)))
    e, msg, note = _raised(TRACER_ERRORS, step, jnp.ones((4, 3)))
    assert "`model.weight`" in msg and "argument `x`" in msg
    assert f"{_line_of(step.fn, 'reads an updated parameter')} (`" in note
    _no_internals(msg + note)


def test_retrace_with_a_python_float_keeps_the_float_note():
    step = jaxmodule.compile(_branchy_step())
    step(jnp.ones((2, 3)), 0.5)
    step(jnp.ones((2, 3)), 0.7)  # a new float value is no retrace
    assert step.trace_count == 1
    e, msg, note = _raised(TRACER_ERRORS, step, jnp.ones((4, 3)), 0.5)
    assert "argument `scale`" in msg and "traces Python floats (argument 1)" in note
    _no_internals(msg + note)


def test_switching_to_eval_names_the_line_of_the_eval_branch():
    model = nn.Sequential(nn.Linear(3, 1), nn.Dropout(0.5))

    @jaxmodule.compile
    def step(x):
        out = model(x).sum()
        if not model.training and out > 0:  # eval only
            return -out
        return out

    step(jnp.ones((2, 3)))
    model.eval()
    e, msg, note = _raised(TRACER_ERRORS, step, jnp.ones((2, 3)))
    assert "depends on `model.0.weight`, `model.0.bias` and argument `x`" in msg
    assert f"{_line_of(step.fn, '# eval only')} (`" in note
    _no_internals(msg + note)
    model.train()
    step(jnp.ones((2, 3)))  # the train program still runs


MODE = "plain"


def test_a_rebound_global_retraces_and_names_the_line():
    global MODE
    model = nn.Linear(3, 1)

    @jaxmodule.compile
    def step(x):
        out = model(x).sum()
        if MODE == "check" and out > 0:  # reached after the rebind
            return -out
        return out

    step(jnp.ones((2, 3)))
    MODE = "check"
    try:
        e, msg, note = _raised(TRACER_ERRORS, step, jnp.ones((2, 3)))
    finally:
        MODE = "plain"
    assert "argument `x`" in msg and f"{_line_of(step.fn, 'reached after the rebind')} (`" in note
    _no_internals(msg + note)


# ---- the error is raised in a nested function or module forward -----------------------------------


class Gate(nn.Module):
    def __init__(self, check):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.check = check

    def forward(self, x):
        h = self.fc(x)
        if self.check and x.shape[0] > 2 and h.mean() > 0:  # inside forward
            h = -h
        return h


def _helper(h):
    if h.shape[0] > 2 and float(h.sum()) > 0:  # inside a helper
        return h
    return -h


@pytest.mark.parametrize("where", ["forward", "helper"])
@pytest.mark.parametrize("retrace", [False, True])
def test_nested_forward_or_helper_is_the_line_named(where, retrace):
    model = Gate(check=where == "forward")

    @jaxmodule.compile
    def step(x):
        h = model(x)
        return (h if where == "forward" else _helper(h)).sum()

    if retrace:
        step(jnp.ones((2, 3)))
    e, msg, note = _raised(TRACER_ERRORS, step, jnp.ones((4, 3)))
    fn, text = (
        (Gate.forward, "# inside forward") if where == "forward" else (_helper, "# inside a helper")
    )
    assert f"{_line_of(fn, text)} (`" in note
    assert f"step` ({HERE}:" in msg and "argument `x`" in msg and "`model.fc.weight`" in msg
    _no_internals(msg + note)


def test_a_compiled_step_inside_another_is_taught_once():
    model = nn.Linear(3, 1)

    @jaxmodule.compile
    def inner(x):
        loss = model(x).sum()
        loss.backward()
        return loss

    @jaxmodule.compile
    def outer(x):
        return inner(x)

    e, msg, note = _raised(AttributeError, outer, jnp.ones((2, 3)))
    assert note.count("jaxmodule.compile:") == 1
