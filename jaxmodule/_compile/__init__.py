"""`jaxmodule.compile` and `Module.compile`: stateful Python steps as one XLA program.

A step may mutate modules, optimizers, GradScalers and generators as torch code does, whether
they are passed as arguments or reached through closures, globals, defaults or a holder object
(a `Trainer` whose method is compiled). How it works, in the order a call meets it:

- `_reach.py`: what the step can see besides its arguments, and the guards that keep it valid;
- `_layout.py`: `Layout`, the immutable description of one call's arguments, state and
  structural signature;
- `_program.py`: `Program`, what the step writes and reads, discovered by one trace, and its
  `jax.jit` function (which replays that trace);
- `_function.py`: `CompiledFunction`, the per-call path and its bounded caches;
- `_states.py`: `StatePlan`, how optimizer and GradScaler states travel through a program (as
  flat leaves; only the written ones donated and returned);
- `_fast_path.py`: the generated per-layout fast path (a named template);
- `_log.py`: recompile logs (`JAXMODULE_LOGS=recompiles`, `jaxmodule.set_logs`).

`jaxmodule/nn/modules/README.md` tells the whole story of a compiled call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..nn.modules import _call, _hooks
from ..nn.modules.module import COMPILE_IMPLEMENTATION, Module
from ._function import CompiledFunction
from ._log import set_logs

__all__ = ["compile", "CompiledFunction", "compile_module", "set_logs"]


def compile(
    fn: Callable | None = None, *, keep_grads: bool = False, donate: bool = True, **jit_kwargs: Any
) -> Any:
    """Compile a step function into one XLA program, keeping torch-style mutation.

    The step may mutate modules, optimizers, GradScalers and generators (optimizer.step(),
    BatchNorm statistics, dropout), passed as arguments or reached through closures, globals,
    default arguments or attributes of a holder object (a `Trainer` whose method is compiled).
    After each call everything it wrote is in the live objects. A call that raises (in the
    step, while tracing, or because it is refused) leaves every object as it was before.

    What is traced and what is a constant of the program:

    - arrays (and tuples, lists, dicts of arrays) and Python **floats** are traced: a new value
      never recompiles (a learning rate annealed every epoch is a float);
    - Python **ints, bools, strings, None**, dtypes, types and functions (and tuples of those)
      are static, as torch.compile specialises on them: they often decide shapes and control
      flow, and a new value retraces;
    - Python values the step reads from globals, closures or holders (a global `scale = 0.5`,
      a global mask array) are constants guarded by value or identity: rebinding them retraces.

    A retrace also happens for new input shapes or dtypes, a train/eval switch, a hook added or
    removed, a structural change of a module, a change of which parameters carry a gradient
    into the step, or autocast. A structurally identical new model instance reuses the traced
    program. `JAXMODULE_LOGS=recompiles` (or `jaxmodule.set_logs(recompiles=True)`) logs each
    retrace with its reason on the `"jaxmodule.compile"` logger; more than 8 traces of one
    function log a warning.

    Args:
        fn: the step function (or use `@jaxmodule.compile(...)` as a decorator factory). A
            Module is compiled in place, as `Module.compile`, and returned (torch's
            `model = torch.compile(model)` habit; no `_orig_mod.` prefix on state_dict keys).
        keep_grads: leave the gradients computed inside the step in each `Parameter.grad`
            afterwards (costs one output buffer per parameter). Gradients present before the
            call (accumulation) are always carried.
        donate: donate the arrays the step replaces, so parameters are not held twice. Arrays
            a `state_dict()` handed out are copied first and stay valid; other references to
            replaced arrays (e.g. `p._value`) become invalid.
        **jit_kwargs: passed to `jax.jit`.

    >>> import jax.numpy as jnp, jaxmodule
    >>> from jaxmodule import nn, optim
    >>> model = nn.Linear(3, 1)
    >>> opt = optim.SGD(model.parameters(), lr=0.1)
    >>> @jaxmodule.compile
    ... def step(x, y):                      # model and opt are globals, as in torch scripts
    ...     opt.zero_grad()
    ...     loss = jaxmodule.backward(lambda: ((model(x) - y) ** 2).mean())
    ...     opt.step()
    ...     return loss
    >>> loss = step(jnp.ones((4, 3)), jnp.zeros((4, 1)))
    """
    if fn is None:
        return lambda f: compile(f, keep_grads=keep_grads, donate=donate, **jit_kwargs)
    if isinstance(fn, Module):
        # torch's `model = torch.compile(model)`: here the module's forward is compiled in place
        # (as `Module.compile`) and the module itself comes back, so `state_dict()` keys keep
        # their names (torch's wrapper prefixes them with `_orig_mod.`)
        compile_module(fn, **jit_kwargs)
        return fn
    return CompiledFunction(fn, keep_grads=keep_grads, donate=donate, **jit_kwargs)


def _uncompiled_call(module: Module, *args: Any, **kwargs: Any) -> Any:
    if not (
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
        or _hooks.any_global_call_hooks()
    ):
        return module.forward(*args, **kwargs)
    return _call.call_with_hooks(module, args, kwargs)


def compile_module(module: Module, *args: Any, **jit_kwargs: Any) -> None:
    """`Module.compile`: later calls of `module(...)` run a compiled forward."""
    for torch_only in ("fullgraph", "dynamic", "backend", "mode", "options"):
        jit_kwargs.pop(torch_only, None)
    cf = CompiledFunction(_uncompiled_call, donate=True, **jit_kwargs)
    module.__dict__["_compiled_call_impl"] = functools.partial(cf, module)


COMPILE_IMPLEMENTATION.compile_module = compile_module  # what Module.compile calls
