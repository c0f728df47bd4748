"""The first mistakes a torch user makes get an error that says what to do (issue 14)."""

import jax
import jax.numpy as jnp
import jaxmodule
import jaxmodule.nn.functional as F
import numpy as np
import pytest
from jaxmodule import nn, optim


def test_saving_a_module_suggests_its_state_dict(tmp_path):
    model = nn.Linear(4, 3)
    with pytest.raises(
        TypeError, match=r"obj is a Linear.*\n\s+jaxmodule\.save\(model\.state_dict\(\), path\)"
    ):
        jaxmodule.save(model, tmp_path / "m")
    with pytest.raises(TypeError, match=r"model\.load_state_dict\(jaxmodule\.load\(path\)\)"):
        jaxmodule.save(model, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_saving_an_optimizer_or_a_nested_module_names_it(tmp_path):
    model = nn.Linear(4, 3)
    with pytest.raises(
        TypeError, match=r"obj is a SGD.*\n\s+jaxmodule\.save\(optimizer\.state_dict\(\), path\)"
    ):
        jaxmodule.save(optim.SGD(model.parameters(), lr=0.1), tmp_path / "o")
    with pytest.raises(TypeError, match=r"obj\['model'\] is a Linear"):
        jaxmodule.save({"model": model, "step": 3}, tmp_path / "c")


def test_pth_path_gets_a_file_torch_loads_and_the_docstring_says_so(tmp_path):
    """Decision (issue 14): a `.pth`/`.pt`/`.bin` path gets torch's own file format (written
    without torch), so `torch.load` reads what `jaxmodule.save(sd, 'x.pth')` wrote."""
    torch = pytest.importorskip("torch")
    sd = nn.Linear(4, 3).state_dict()
    jaxmodule.save(sd, tmp_path / "x.pth")
    assert (tmp_path / "x.pth").is_file()
    assert np.array_equal(
        torch.load(tmp_path / "x.pth", weights_only=True)["weight"].numpy(),
        np.asarray(sd["weight"]),
    )
    assert jnp.array_equal(jaxmodule.load(tmp_path / "x.pth")["weight"], sd["weight"])
    doc = jaxmodule.save.__doc__
    assert "torch.load" in doc and ".pth" in doc


def test_to_torch_state_dict_then_torch_save_gives_a_file_torch_loads(tmp_path):
    torch = pytest.importorskip("torch")
    model = nn.Linear(4, 3)
    torch.save(jaxmodule.utils.to_torch_state_dict(model), tmp_path / "x.pth")
    out = torch.load(tmp_path / "x.pth")
    assert out["weight"].shape == (3, 4)


@pytest.mark.parametrize("call", ["positional", "keyword", "list"])
def test_summary_accepts_torchinfo_input_size(call):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    if call == "positional":
        s = jaxmodule.summary(model, (1, 1, 28, 28))
    elif call == "keyword":
        s = jaxmodule.summary(model, input_size=(1, 1, 28, 28))
    else:
        s = jaxmodule.summary(model, input_size=[(1, 1, 28, 28)])
    assert s.layers[1].output_shape == [1, 4, 26, 26] and s.layers[-1].output_shape == [1, 10]
    assert s.input_bytes == 28 * 28 * 4  # float32 zeros
    assert "Total params: 27,090" in str(s)


def test_summary_input_size_errors():
    model = nn.Linear(4, 3)
    with pytest.raises(TypeError, match=r"`input_size` must be a shape such as \(1, 3, 28, 28\)"):
        jaxmodule.summary(model, input_size="4")
    with pytest.raises(TypeError, match="not both"):
        jaxmodule.summary(model, jnp.ones((1, 4)), input_size=(1, 4))


@pytest.mark.parametrize("shape, text", [((2, 5), "2x5"), ((2, 7, 5), "14x5"), ((5,), "1x5")])
def test_linear_shape_mismatch_reads_as_torch(shape, text):
    torch = pytest.importorskip("torch")
    expected = f"mat1 and mat2 shapes cannot be multiplied ({text} and 4x3)"
    with pytest.raises(RuntimeError) as theirs:
        torch.nn.Linear(4, 3)(torch.ones(shape))
    assert str(theirs.value) == expected
    with pytest.raises(RuntimeError) as ours:
        nn.Linear(4, 3)(jnp.ones(shape))
    assert str(ours.value) == expected
    assert (
        "in Linear(in_features=4, out_features=3, bias=True): the input's last dimension (5) "
        "must be in_features (4)" in ours.value.__notes__
    )


def test_linear_shape_mismatch_under_jit_and_in_functional():
    with pytest.raises(
        RuntimeError, match=r"^mat1 and mat2 shapes cannot be multiplied \(2x5 and 4x3\)\n"
    ):
        jax.jit(nn.Linear(4, 3))(jnp.ones((2, 5)))
    with pytest.raises(RuntimeError, match=r"\(3x2 and 4x6\)"):
        F.linear(jnp.ones((3, 2)), jnp.ones((6, 4)))
    with pytest.raises(
        TypeError, match="dot_general"
    ):  # not a linear shape problem: jax's own error
        F.linear(jnp.ones((2, 4)), jnp.ones((3,)))


# ---- tracer errors inside jaxmodule.compile name the step, the line and the argument --------------


def _tracer_error(step, *args, **kwargs):
    with pytest.raises(
        (
            jax.errors.ConcretizationTypeError,
            jax.errors.TracerArrayConversionError,
            jax.errors.TracerIntegerConversionError,
        )
    ) as info:
        step(*args, **kwargs)
    return str(info.value), "\n".join(getattr(info.value, "__notes__", []))


def _no_internals(text):
    for internal in ("probe", "_program.py", "dyn[", "values[", "states[", "kw["):
        assert internal not in text, f"{internal!r} in {text!r}"


def test_python_if_on_a_traced_loss_names_the_step_line_and_arguments():
    model = nn.Linear(3, 1)

    @jaxmodule.compile
    def train_step(batch, scale):
        loss = model(batch).sum() * scale
        if loss > 0:  # the offending line
            return loss
        return -loss

    msg, note = _tracer_error(train_step, jnp.ones((2, 3)), jnp.float32(2.0))
    assert "tracing the step function `" in msg and "train_step` (" in msg and __file__ in msg
    assert "depends on `model.weight`, `model.bias`, argument `batch` and argument `scale`" in msg
    assert f"{__file__}:" in note and "(`if loss > 0:  # the offending line`)" in note
    assert "jnp.where" in note and "jax.lax.cond" in note and "int or bool" in note
    _no_internals(msg + note)


@pytest.mark.parametrize(
    "convert,line",
    [
        (lambda x: float(x.sum()), "float(x.sum())"),
        (lambda x: int(x.sum()), "int(x.sum())"),
        (lambda x: np.asarray(x), "np.asarray(x)"),
    ],
)
def test_conversions_to_python_values_name_the_line_and_the_argument(convert, line):
    @jaxmodule.compile
    def step(x, *, n):
        return convert(x * n)

    msg, note = _tracer_error(step, jnp.ones(3), n=jnp.ones(3))
    assert "depends on argument `x` and argument `n`" in msg
    assert line in note and "return it from the step" in note
    _no_internals(msg + note)


def test_python_float_argument_deciding_a_branch_keeps_the_float_note():
    @jaxmodule.compile
    def step(x, p):
        return x if p > 0.5 else -x

    msg, note = _tracer_error(step, jnp.ones(2), 0.7)
    assert "depends on argument `p`" in msg and "(`return x if p > 0.5 else -x`)" in note
    assert "traces Python floats (argument 1)" in note
    _no_internals(msg)
