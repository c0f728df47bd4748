"""Forward hooks (module and global) against torch: call order, arguments, return handling, removal.

Each scenario runs once per library with a log; the two logs (values as plain lists) must be equal.
"""

import warnings

import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import to_numpy
from tests.nn.modules._module_trees import JM, LIBS, TORCH, same_error


def _v(x):
    """Loggable form: arrays -> nested lists, containers recursively."""
    if isinstance(x, (tuple, list)):
        return type(x)(_v(i) for i in x)
    if isinstance(x, dict):
        return {k: _v(i) for k, i in x.items()}
    if hasattr(x, "shape"):
        return to_numpy(x).tolist()
    return x


def _models(L):
    class Scale(L.nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x, y=None):
            if isinstance(x, str):
                raise ValueError("forward failed")
            return x * self.k if y is None else x * self.k + y

    class Pair(L.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Scale(2.0)
            self.b = Scale(3.0)

        def forward(self, x):
            return self.b(self.a(x))

    return Scale, Pair


def _x(L):
    return L.arr(np.array([1.0, 2.0], np.float32))


def run_both(scenario):
    logs = {}
    for L in LIBS:
        logs[L.name] = log = []
        scenario(L, log)
    assert logs["jaxmodule"] == logs["torch"]
    assert len(logs["torch"]) > 0
    return logs["jaxmodule"]


# ---- forward pre-hooks -------------------------------------------------------------------------
def test_pre_hook_return_values():
    def scenario(L, log):
        Scale, _ = _models(L)
        m = Scale(2.0)
        h1 = m.register_forward_pre_hook(lambda mod, args: log.append(("none", _v(args))))
        log.append(("out", _v(m(_x(L)))))
        h2 = m.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
        log.append(("out", _v(m(_x(L)))))
        h3 = m.register_forward_pre_hook(lambda mod, args: args[0] * 10)  # non-tuple: wrapped
        log.append(("out", _v(m(_x(L)))))
        for h in (h1, h2, h3):
            h.remove()
        log.append(("out", _v(m(_x(L)))))

    run_both(scenario)


def test_pre_hook_with_kwargs():
    def scenario(L, log):
        Scale, _ = _models(L)
        m = Scale(2.0)

        def hook(mod, args, kwargs):
            log.append(("pre", _v(args), _v(kwargs)))
            return (args[0] + 1,), {"y": L.arr(np.array([100.0, 100.0], np.float32))}

        m.register_forward_pre_hook(hook, with_kwargs=True)
        log.append(_v(m(_x(L))))
        log.append(_v(m(_x(L), y=_x(L))))

    run_both(scenario)


def test_pre_hook_with_kwargs_bad_return():
    Ts, _ = _models(TORCH)
    Js, _ = _models(JM)
    t, j = Ts(1.0), Js(1.0)
    t.register_forward_pre_hook(lambda m, a, k: a, with_kwargs=True)
    j.register_forward_pre_hook(lambda m, a, k: a, with_kwargs=True)
    same_error(
        lambda: t(_x(TORCH)),
        lambda: j(_x(JM)),
        "forward pre-hook must return None or a tuple of (new_args, new_kwargs), but got",
    )


# ---- forward hooks ---------------------------------------------------------------------------
def test_forward_hook_replaces_output_and_order():
    def scenario(L, log):
        Scale, _ = _models(L)
        m = Scale(2.0)
        m.register_forward_hook(lambda mod, args, out: log.append(("first", _v(args), _v(out))))
        m.register_forward_hook(lambda mod, args, out: out + 1)
        m.register_forward_hook(lambda mod, args, out: log.append(("third", _v(out))))
        m.register_forward_hook(
            lambda mod, args, out: log.append(("prepended", _v(out))), prepend=True
        )
        m.register_forward_pre_hook(lambda mod, args: log.append("pre-second"))
        m.register_forward_pre_hook(lambda mod, args: log.append("pre-first"), prepend=True)
        log.append(("out", _v(m(_x(L)))))

    run_both(scenario)


def test_forward_hook_with_kwargs():
    def scenario(L, log):
        Scale, _ = _models(L)
        m = Scale(2.0)

        def hook(mod, args, kwargs, out):
            log.append(("hook", _v(args), _v(kwargs), _v(out)))
            return out * 0

        m.register_forward_hook(hook, with_kwargs=True)
        log.append(_v(m(_x(L), y=_x(L))))

    run_both(scenario)


def test_always_call_hook_runs_when_forward_raises():
    def scenario(L, log):
        Scale, _ = _models(L)
        m = Scale(2.0)
        m.register_forward_hook(lambda mod, args, out: log.append(("normal", _v(out))))
        m.register_forward_hook(
            lambda mod, args, out: log.append(("always", _v(args), _v(out))), always_call=True
        )
        m.register_forward_hook(
            lambda mod, args, kw, out: log.append(("always_kw", _v(kw), _v(out))),
            always_call=True,
            with_kwargs=True,
        )
        with pytest.raises(ValueError, match="forward failed"):
            m("boom", y=1)
        log.append(("ok", _v(m(_x(L)))))

    run_both(scenario)


def test_always_call_hook_error_is_silenced_with_warning():
    for L in LIBS:
        Scale, _ = _models(L)
        m = Scale(2.0)

        def bad(mod, args, out):
            raise KeyError("hook broke")

        m.register_forward_hook(bad, always_call=True)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with pytest.raises(ValueError, match="forward failed"):
                m("boom")
        assert any("always_call=True" in str(x.message) for x in w), L.name


def test_handles_remove_and_context_manager():
    def scenario(L, log):
        Scale, _ = _models(L)
        m = Scale(2.0)
        with m.register_forward_hook(lambda mod, a, out: out * 100):
            log.append(_v(m(_x(L))))
        log.append(_v(m(_x(L))))
        h = m.register_forward_pre_hook(lambda mod, a: (a[0] * 0,))
        log.append(_v(m(_x(L))))
        h.remove()
        h.remove()  # removing twice is harmless
        log.append(_v(m(_x(L))))
        log.append((len(m._forward_hooks), len(m._forward_pre_hooks)))

    run_both(scenario)


def test_hook_that_removes_itself_while_running():
    def scenario(L, log):
        Scale, _ = _models(L)
        m = Scale(2.0)
        handle = {}

        def once(mod, args, out):
            log.append("once")
            handle["h"].remove()
            return out + 1

        handle["h"] = m.register_forward_hook(once)
        m.register_forward_hook(lambda mod, a, out: log.append(("after", _v(out))))
        log.append(_v(m(_x(L))))
        log.append(_v(m(_x(L))))

    run_both(scenario)


def test_global_hooks_order_with_module_hooks():
    def scenario(L, log):
        Scale, Pair = _models(L)
        reg = torch.nn.modules.module if L.is_torch else nn
        p = Pair()
        p.a.register_forward_pre_hook(lambda mod, a: log.append(("a.pre", _v(a))))
        p.register_forward_hook(lambda mod, a, out: log.append(("pair.hook", _v(out))))
        handles = [
            reg.register_module_forward_pre_hook(
                lambda mod, a: log.append(("g.pre", type(mod).__name__, mod.__dict__.get("k")))
            ),
            reg.register_module_forward_hook(
                lambda mod, a, out: log.append(("g.hook", type(mod).__name__, _v(out)))
            ),
            reg.register_module_forward_hook(
                lambda mod, a, kw, out: log.append(("g.hook_kw", _v(kw))), with_kwargs=True
            ),
        ]
        try:
            log.append(_v(p(_x(L))))
        finally:
            for h in handles:
                h.remove()
        log.append(_v(p(_x(L))))

    run_both(scenario)


def test_global_pre_hook_can_replace_args():
    def scenario(L, log):
        Scale, _ = _models(L)
        reg = torch.nn.modules.module if L.is_torch else nn
        with reg.register_module_forward_pre_hook(lambda mod, a: (a[0] + 5,)):
            log.append(_v(Scale(2.0)(_x(L))))
        log.append(_v(Scale(2.0)(_x(L))))

    run_both(scenario)


def test_global_always_call_hook():
    def scenario(L, log):
        Scale, _ = _models(L)
        reg = torch.nn.modules.module if L.is_torch else nn
        with reg.register_module_forward_hook(
            lambda mod, a, out: log.append(("g", out)), always_call=True
        ):
            with pytest.raises(ValueError):
                Scale(1.0)("boom")

    run_both(scenario)


def test_hooks_see_nested_modules_once_per_call():
    def scenario(L, log):
        _, Pair = _models(L)
        p = Pair()
        for name, mod in p.named_modules():
            mod.register_forward_pre_hook(lambda m, a, name=name: log.append(("pre", name)))
            mod.register_forward_hook(lambda m, a, o, name=name: log.append(("post", name, _v(o))))
        p(_x(L))

    run_both(scenario)


def test_base_forward_not_implemented():
    same_error(
        lambda: torch.nn.Module()(1),
        lambda: nn.Module()(1),
        'Module [Module] is missing the required "forward" function',
    )

    class T(torch.nn.Module):
        pass

    class J(nn.Module):
        pass

    T.__name__ = J.__name__ = "NoForward"
    same_error(
        lambda: T()(1), lambda: J()(1), "NoForward", 'missing the required "forward" function'
    )


def test_call_passes_kwargs_without_hooks():
    for L in LIBS:
        Scale, _ = _models(L)
        out = Scale(2.0)(_x(L), y=_x(L))
        assert to_numpy(out).tolist() == [3.0, 6.0]


def test_hook_dicts_are_empty_after_removal_for_fast_path():
    m = nn.Linear(2, 2)
    h = m.register_forward_hook(lambda *a: None, with_kwargs=True, always_call=True)
    h2 = m.register_forward_pre_hook(lambda *a: None, with_kwargs=True)
    h.remove()
    h2.remove()
    for d in (
        "_forward_hooks",
        "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called",
        "_forward_pre_hooks",
        "_forward_pre_hooks_with_kwargs",
    ):
        assert len(getattr(m, d)) == 0, d


def test_prepend_with_kwargs_combinations():
    def scenario(L, log):
        Scale, _ = _models(L)
        m = Scale(2.0)
        m.register_forward_pre_hook(
            lambda mod, a, k: log.append(("pre_kw", _v(k))) or None, with_kwargs=True
        )
        m.register_forward_pre_hook(
            lambda mod, a, k: log.append(("pre_kw_first", _v(k))) or None,
            with_kwargs=True,
            prepend=True,
        )
        m.register_forward_hook(
            lambda mod, a, k, o: log.append(("hook_kw", _v(o))) or o * 2,
            with_kwargs=True,
            prepend=True,
        )
        m.register_forward_hook(lambda mod, a, o: log.append(("hook", _v(o))))
        log.append(_v(m(_x(L), y=_x(L))))

    run_both(scenario)
