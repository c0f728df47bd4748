"""apply, train/eval, requires_grad_, zero_grad, repr, dir, pickling and deepcopy against torch."""

import copy
import io
import pickle

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import to_numpy
from tests.nn.modules._module_trees import JM, LIBS, RICH, build, build_both, snapshot


def test_apply_visits_children_first_in_torch_order():
    t, j = build_both(RICH)
    seen = {"torch": [], "jaxmodule": []}
    assert t.apply(lambda m: seen["torch"].append((type(m).__name__, id(m)))) is t
    assert j.apply(lambda m: seen["jaxmodule"].append((type(m).__name__, id(m)))) is j
    tn = [n for n, _ in seen["torch"]]
    jn = [n for n, _ in seen["jaxmodule"]]
    assert jn == tn and jn[-1] == "Block"
    # shared modules are visited once per registration, as in torch
    assert len(jn) == len(tn) > len(list(j.modules()))


def test_apply_init_function():
    for L in LIBS:
        m = build(L, RICH)

        def init(mod, L=L):
            if isinstance(mod, L.nn.Linear):
                with L.no_grad():
                    mod.weight.fill_(0.5)

        m.apply(init)
        assert to_numpy(m.enc.lin.weight).tolist() == [[0.5] * 3] * 4
        assert to_numpy(m.enc.nob.weight).tolist() == [[0.5] * 4] * 2


def _modes(m):
    return [(n, x.training) for n, x in m.named_modules(remove_duplicate=False)]


def test_train_eval_flags_like_torch():
    t, j = build_both(RICH)
    assert _modes(j) == _modes(t)
    assert t.eval() is t and j.eval() is j
    assert _modes(j) == _modes(t) and not j.enc.lin.training
    t.enc.train()
    j.enc.train()
    assert _modes(j) == _modes(t)
    assert t.train(False) is t and j.train(False) is j
    assert _modes(j) == _modes(t)
    j.train()
    assert all(x.training for x in j.modules())


def test_train_requires_bool():
    t, j = build_both(RICH)
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="training mode is expected to be boolean"):
            t.train(bad)
        with pytest.raises(ValueError, match="training mode is expected to be boolean"):
            j.train(bad)


def test_requires_grad_():
    t, j = build_both(RICH)
    assert t.requires_grad_(False) is t and j.requires_grad_(False) is j
    assert [(n, p.requires_grad) for n, p in j.named_parameters()] == [
        (n, p.requires_grad) for n, p in t.named_parameters()
    ]
    t.enc.requires_grad_()
    j.enc.requires_grad_()
    assert [(n, p.requires_grad) for n, p in j.named_parameters()] == [
        (n, p.requires_grad) for n, p in t.named_parameters()
    ]
    assert j.dec.tied.requires_grad  # tied to enc.w


def test_zero_grad():
    j = build(JM, RICH)
    for p in j.parameters():
        p.grad = jnp.ones(p.shape)
    j.enc.zero_grad(set_to_none=False)
    assert all(float(jnp.abs(p.grad).sum()) == 0 for p in j.enc.parameters())
    assert all(p.grad.shape == p.shape for p in j.enc.parameters())
    assert float(j.alpha.grad.sum()) == 3.0
    j.zero_grad()
    assert all(p.grad is None for p in j.parameters())
    j.zero_grad(set_to_none=False)  # grads that are None stay None, as in torch
    assert all(p.grad is None for p in j.parameters())


# ---- repr ------------------------------------------------------------------------------------
def test_repr_matches_torch_text():
    t, j = build_both(RICH)
    assert repr(j) == repr(t)
    assert str(j) == str(t)
    t.eval()
    j.eval()
    assert repr(j.enc) == repr(t.enc)


@pytest.mark.parametrize("extra", ["", "single", "a=1, b=2", "first\nsecond", "x\ny\nz"])
@pytest.mark.parametrize("with_children", [False, True])
def test_repr_extra_repr_variants(extra, with_children):
    node = {
        "kind": "block",
        "extra": extra,
        "children": [
            (
                "c",
                {
                    "kind": "block",
                    "extra": extra,
                    "children": [("l", {"kind": "linear", "in": 1, "out": 1, "bias": False})],
                },
            )
        ]
        if with_children
        else [],
    }
    t, j = build_both({"root": node})
    assert repr(j) == repr(t)


def test_repr_with_none_child_and_empty_module():
    t, j = build_both({"root": {"kind": "block"}})
    assert repr(j) == repr(t) == "Block()"
    t.add_module("hole", None)
    j.add_module("hole", None)
    assert repr(j) == repr(t) == "Block(\n  (hole): None\n)"
    assert repr(nn.Module()) == repr(torch.nn.Module()) == "Module()"


def test_dir_like_torch():
    t, j = build_both(RICH)
    td, jd = set(dir(t)), set(dir(j))
    for name in (
        "alpha",
        "beta",
        "gone",
        "stat",
        "scratch",
        "enc",
        "dec",
        "leaf",
        "enc_alias",
        "training",
        "forward",
        "state_dict",
        "_parameters",
    ):
        assert (name in td) == (name in jd) == True, name  # noqa: E712
    own = {n for n in td if not n.startswith("_")} - set(dir(torch.nn.Module))
    assert own <= jd
    assert dir(j) == sorted(dir(j))


# ---- pickling / copying ----------------------------------------------------------------------
def _check_independent_copy(orig, cp):
    assert snapshot(cp) == snapshot(orig)
    assert type(cp) is type(orig) and cp is not orig
    assert cp.dec.tied is cp.enc.w and cp.enc_alias is cp.enc and cp.dec.again is cp.enc.lin
    assert cp.alpha is not orig.alpha and cp.enc is not orig.enc
    before = snapshot(orig)
    with jaxmodule.no_grad():
        cp.enc.w.fill_(9.0)
        cp.alpha.add_(1.0)
    cp.stat = jnp.zeros(3)
    cp.eval()
    cp.new_attr = 1
    cp.register_buffer("more", jnp.ones(1))
    assert snapshot(orig) == before
    assert to_numpy(cp.dec.tied).tolist() == [[9.0] * 3] * 4  # tied in the copy
    assert orig.training and not cp.training


def test_deepcopy_is_independent():
    j = build(JM, RICH)
    j.hidden = [1, 2]
    j.register_forward_hook(lambda m, a, o: o)
    cp = copy.deepcopy(j)
    _check_independent_copy(j, cp)
    assert cp.hidden == [1, 2] and cp.hidden is not j.hidden
    assert len(cp._forward_hooks) == 1


def test_pickle_is_independent():
    j = build(JM, RICH)
    j.eval()
    j.train()
    cp = pickle.loads(pickle.dumps(j))
    _check_independent_copy(j, cp)
    assert isinstance(cp.alpha, nn.Parameter) and isinstance(cp.stat, nn.Buffer)
    assert "scratch" in cp._non_persistent_buffers_set


def test_pickle_keeps_requires_grad_and_grad():
    m = nn.Linear(2, 3)
    m.weight.requires_grad_(False)
    m.bias.grad = jnp.ones(3)
    buf = io.BytesIO()
    pickle.dump(m, buf)
    m2 = pickle.loads(buf.getvalue())
    m3 = copy.deepcopy(m)
    assert m3.weight.requires_grad is False and m3.bias.requires_grad is True
    assert to_numpy(m3.bias.grad).tolist() == [1.0, 1.0, 1.0] and m3.bias.grad is not m.bias.grad
    assert m2.weight.requires_grad is False and m2.bias.requires_grad is True
    assert to_numpy(m2.bias.grad).tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_array_equal(to_numpy(m2.weight), to_numpy(m.weight))
    x = jnp.ones((1, 2))
    np.testing.assert_array_equal(to_numpy(m2(x)), to_numpy(m(x)))


def test_copied_module_still_jits():
    import jax

    m = copy.deepcopy(nn.Linear(2, 2))
    out = jax.jit(lambda mod, x: mod(x))(m, jnp.ones((1, 2)))
    np.testing.assert_allclose(to_numpy(out), to_numpy(m(jnp.ones((1, 2)))), rtol=1e-6)


def test_shallow_copy_shares_cells():
    """copy.copy: like torch, the copy shares the parameter dicts' contents."""
    for L in LIBS:
        m = build(L, RICH)
        c = copy.copy(m)
        assert c.alpha is m.alpha and c.enc is m.enc


def test_extra_repr_default_and_get_name():
    for L in LIBS:
        assert L.nn.Module().extra_repr() == ""
        assert L.nn.Linear(1, 2)._get_name() == "Linear"
