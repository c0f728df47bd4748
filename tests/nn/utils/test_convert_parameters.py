"""Differential tests of parameters_to_vector / vector_to_parameters against torch."""

import jax
import jax.numpy as jnp
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn import utils

from tests.helpers import assert_close, randn, to_torch


def _models():
    t = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Linear(4, 2, bias=False), torch.nn.Bilinear(2, 2, 3)
    )
    j = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2, bias=False), nn.Bilinear(2, 2, 3))
    j.load_state_dict(t.state_dict())
    return t, j


def test_parameters_to_vector_matches_torch():
    t, j = _models()
    vec = utils.parameters_to_vector(j.parameters())
    assert isinstance(vec, jax.Array)
    assert_close(vec, torch.nn.utils.parameters_to_vector(t.parameters()))


@pytest.mark.parametrize("source", ["jax", "numpy", "torch"])
def test_vector_to_parameters_matches_torch(source):
    t, j = _models()
    n = sum(p.numel() for p in t.parameters())
    vec = randn(n, seed=3)
    torch.nn.utils.vector_to_parameters(to_torch(vec), t.parameters())
    arg = {"jax": jnp.asarray(vec), "numpy": vec, "torch": to_torch(vec)}[source]
    params_before = list(j.parameters())
    utils.vector_to_parameters(arg, j.parameters())
    assert list(j.parameters()) == params_before  # the same Parameter objects, new values
    for (name, tp), (jname, jp) in zip(t.named_parameters(), j.named_parameters()):
        assert name == jname and jp.shape == tuple(tp.shape)
        assert_close(jp, tp)
    x = randn(2, 3)
    assert_close(j[:2](jnp.asarray(x)), t[:2](to_torch(x)), atol=1e-5)  # Bilinear takes two inputs


def test_round_trip():
    _, j = _models()
    vec = utils.parameters_to_vector(j.parameters())
    utils.vector_to_parameters(vec * 2, j.parameters())
    assert_close(utils.parameters_to_vector(j.parameters()), vec * 2)


def test_errors():
    _, j = _models()
    with pytest.raises(TypeError) as t_err:
        torch.nn.utils.vector_to_parameters([1.0, 2.0], torch.nn.Linear(1, 1).parameters())
    with pytest.raises(type(t_err.value), match="expected `vec` to be an array .* but got: list"):
        utils.vector_to_parameters([1.0, 2.0], j.parameters())
    with pytest.raises(RuntimeError) as t_err:
        torch.nn.utils.vector_to_parameters(torch.zeros(5), torch.nn.Linear(3, 4).parameters())
    with pytest.raises(
        RuntimeError, match=r"shape '\[4, 3\]' is invalid for input of size 5"
    ) as j_err:
        utils.vector_to_parameters(jnp.zeros(5), nn.Linear(3, 4).parameters())
    assert str(j_err.value) == str(t_err.value)
    with pytest.raises(ValueError) as t_err:
        torch.nn.utils.parameters_to_vector([])
    with pytest.raises(ValueError) as j_err:
        utils.parameters_to_vector([])
    assert str(j_err.value) == str(t_err.value)
