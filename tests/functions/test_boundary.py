"""torch objects meeting jaxmodule: torch tensors passed to layers, torch.nn.init on Parameters."""

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn.modules import _torch_inputs

T = torch.randn(4, 3)


class Gate(nn.Module):
    def forward(self, x, *, scale):
        return jnp.tanh(x) * scale


@pytest.mark.parametrize(
    "make,call,layer",
    [
        (lambda: nn.Linear(3, 2), lambda m: m(T), "Linear"),
        (
            lambda: nn.Sequential(nn.Linear(3, 2), nn.ReLU()),
            lambda m: m(T),
            "Linear",
        ),  # the innermost layer
        (lambda: nn.ReLU(), lambda m: m(T), "ReLU"),
        (lambda: nn.LayerNorm(3), lambda m: m(T), "LayerNorm"),
    ],
)
def test_torch_tensor_to_a_layer_names_layer_and_conversion(make, call, layer):
    with pytest.raises(
        TypeError,
        match=rf"(?s)^{layer} was called with a torch.Tensor \(argument 0\).*"
        r"x = jaxmodule.tensor\(t\).*t.detach\(\).cpu\(\).numpy\(\)",
    ):
        call(make())


def test_compiled_module_gets_the_same_message():
    m = nn.Linear(3, 2)
    m.compile()
    with pytest.raises(
        _torch_inputs.TorchInputError, match="Linear was called with a torch.Tensor"
    ):
        m(T)
    assert m(jnp.ones((4, 3))).shape == (4, 2)


def test_the_message_points_at_the_argument():
    with pytest.raises(
        TypeError, match=r"^Gate was called with a torch.Tensor \(argument 'scale'\)"
    ):
        Gate()(jnp.ones(3), scale=T)
    with pytest.raises(TypeError, match=r"\(argument 0\[1\]\)"):
        Gate()([jnp.ones(3), T], scale=1.0)


def test_losses_convert_torch_tensors():
    want = nn.MSELoss()(jnp.asarray(T.numpy()), jnp.zeros((4, 3)))
    got = nn.MSELoss()(T, jnp.zeros((4, 3)))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)


def test_other_errors_are_untouched():
    """A shape mismatch keeps its own (torch-style) error, not the torch-input one."""
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied") as info:
        nn.Linear(3, 2)(jnp.ones((4, 5)))
    assert not isinstance(info.value, _torch_inputs.TorchInputError)


def test_no_inspection_on_the_normal_call_path(monkeypatch):
    def fail(*args):
        raise AssertionError("argument inspection ran on a successful call")

    monkeypatch.setattr(_torch_inputs, "raise_if_torch_input", fail)
    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    assert m(jnp.ones((4, 3))).shape == (4, 2)
    m.register_forward_hook(lambda mod, a, out: out)
    assert m(jnp.ones((4, 3))).shape == (4, 2)


# torch.nn.init's functions reach a cell in three ways: __torch_function__ (normal_, uniform_,
# constant_, kaiming_uniform_), an in-place method under torch.no_grad (zeros_, ones_, xavier_*,
# kaiming_normal_), or `is_meta` first (trunc_normal_, orthogonal_, sparse_, dirac_).
@pytest.mark.parametrize(
    "fn,args",
    [
        ("normal_", ()),
        ("uniform_", (-1.0, 1.0)),
        ("constant_", (0.5,)),
        ("kaiming_uniform_", ()),
        ("zeros_", ()),
        ("ones_", ()),
        ("xavier_uniform_", ()),
        ("xavier_normal_", ()),
        ("kaiming_normal_", ()),
        ("eye_", ()),
        ("trunc_normal_", ()),
        ("orthogonal_", ()),
        ("sparse_", (0.5,)),
    ],
)
def test_torch_init_on_a_parameter_points_to_jaxmodule_init(fn, args):
    p = nn.Parameter(jnp.ones((4, 3)))
    with pytest.raises(
        TypeError,
        match=rf"torch.nn.init.{fn} cannot initialise a jaxmodule Parameter: use "
        rf"jaxmodule.nn.init.{fn}\(param, ...\)",
    ):
        getattr(torch.nn.init, fn)(p, *args)
    getattr(jaxmodule.nn.init, fn)(p, *args)  # the pointed-to function exists and works


def test_torch_dirac_init_points_to_jaxmodule_init():
    with pytest.raises(TypeError, match=r"use jaxmodule.nn.init.dirac_\(param, ...\)"):
        torch.nn.init.dirac_(nn.Parameter(jnp.ones((4, 3, 3))))


def test_torch_functions_on_cells_say_what_to_use():
    with pytest.raises(
        TypeError, match="torch function add was given a jaxmodule Buffer: use jaxmodule.add"
    ):
        torch.add(nn.Buffer(jnp.ones(2)), 1)


def test_torch_tensor_from_a_cell_is_a_copy():
    p = nn.Parameter(jnp.arange(6.0).reshape(2, 3))
    for t in (torch.tensor(p), torch.as_tensor(p), torch.tensor(p.data)):
        np.testing.assert_array_equal(t.numpy(), np.arange(6.0).reshape(2, 3))
        t.add_(1)  # writing to it leaves the Parameter alone
        np.testing.assert_array_equal(np.asarray(p), np.arange(6.0).reshape(2, 3))
