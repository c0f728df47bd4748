"""`Module`: torch.nn.Module's API over JAX arrays; every Module subclass is a JAX pytree.

How the pieces fit is in README.md beside this file. In short: parameters and buffers are cells
(`Parameter`/`Buffer`) stored in `_parameters`/`_buffers`, submodules in `_modules`, exactly the
dicts torch uses; hooks live in `_hooks.py`, state_dict logic in `_state_dict.py`, the pytree
registration (cached flatten) in `_pytree.py`, dtype/device conversion in `_conversion.py`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from ... import _structure
from ..._tensor import as_array, is_torch_tensor
from ..parameter import Buffer, Parameter, _TensorCell
from . import _call, _eager, _hooks, _purity, _pytree, _torch_inputs
from ._conversion import ConversionMixin, placed_init
from ._hooks import (  # noqa: F401 - re-exported as in torch.nn.modules.module
    RemovableHandle,
    add_hook,
    register_module_backward_hook,
    register_module_buffer_registration_hook,
    register_module_forward_hook,
    register_module_forward_pre_hook,
    register_module_full_backward_hook,
    register_module_full_backward_pre_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)
from ._placement import PlacementMixin, placement_repr
from ._state_dict import StateDictMixin

__all__ = ["Module"]

_ARRAY_TYPES = (jax.Array, np.ndarray, np.generic)
# __dict__ entries that are derived caches, never copied, pickled or compared.
TRANSIENT_KEYS = ("_jm_tree", "_compiled_call_impl")


class _CompileImplementation:
    """What `Module.compile` calls. Compile sits above modules, so modules do not import it:
    `jaxmodule._compile` installs `compile_module` here when it is imported (`import jaxmodule.nn`
    runs the `jaxmodule` package first, which imports `_compile`)."""

    compile_module: Callable[..., None] | None = None


COMPILE_IMPLEMENTATION = _CompileImplementation()


def typename(x: Any) -> str:
    """torch.typename's role: 'jax.Array', 'numpy.ndarray', 'int', 'mypkg.MyClass'."""
    if isinstance(x, jax.Array):
        return "jax.Array"
    t = type(x)
    mod = t.__module__
    return t.__qualname__ if mod == "builtins" else f"{mod}.{t.__qualname__}"


def _is_array_like(x: Any) -> bool:
    if isinstance(x, (_TensorCell, *_ARRAY_TYPES)):
        return True

    return is_torch_tensor(x)


def _forward_unimplemented(self: Module, *input: Any) -> None:
    raise NotImplementedError(
        f'Module [{type(self).__name__}] is missing the required "forward" function'
    )


class Module(StateDictMixin, ConversionMixin, PlacementMixin):
    """Base class for all neural network modules. Mirrors `torch.nn.Module`.

    Subclass it, assign layers, `Parameter`s and `Buffer`s as attributes in `__init__`, and
    write `forward` with `jax.numpy`:

    >>> import jax.numpy as jnp
    >>> from jaxmodule import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(4, 2)
    ...         self.register_buffer("scale", jnp.ones(2))
    ...     def forward(self, x):
    ...         return self.fc(x) * self.scale
    >>> net = Net()
    >>> list(net.state_dict())
    ['scale', 'fc.weight', 'fc.bias']
    >>> net(jnp.ones((3, 4))).shape
    (3, 2)

    A Module is a JAX pytree whose leaves are its parameter and buffer arrays (each shared array
    once), so `jax.jit`, `jax.grad`, `jax.vmap` and `jax.tree.map` accept modules and return
    modules of the same class. Differences from torch are listed in the README.
    """

    training: bool
    _version: int = 1
    call_super_init: bool = False
    dump_patches: bool = False
    _compiled_call_impl: Callable | None = None

    forward: Callable[..., Any] = _forward_unimplemented

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _pytree.register(cls)
        if (
            "__init__" in cls.__dict__
        ):  # `device=` / `with jaxmodule.device(...)`: see _conversion.placed_init
            cls.__init__ = placed_init(cls.__dict__["__init__"])  # type: ignore[method-assign]  # wrapping is the point

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if self.call_super_init is False and kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__() got an unexpected keyword argument '{next(iter(kwargs))}'"
            )
        if self.call_super_init is False and args:
            raise TypeError(
                f"{type(self).__name__}.__init__() takes 1 positional argument but {len(args) + 1} were given"
            )
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers_set"] = set()
        for name in (
            "_backward_pre_hooks",
            "_backward_hooks",
            "_forward_hooks",
            "_forward_hooks_with_kwargs",
            "_forward_hooks_always_called",
            "_forward_pre_hooks",
            "_forward_pre_hooks_with_kwargs",
            "_state_dict_hooks",
            "_state_dict_pre_hooks",
            "_load_state_dict_pre_hooks",
            "_load_state_dict_post_hooks",
        ):
            d[name] = OrderedDict()
        d["_is_full_backward_hook"] = None
        d["_modules"] = {}
        if self.call_super_init:
            super().__init__(*args, **kwargs)
        _structure.bump()

    # ---- calling -------------------------------------------------------------------------------
    def _call_impl(self, *args: Any, **kwargs: Any) -> Any:
        """`module(*args, **kwargs)`: forward with the registered hooks, as torch. Called eagerly
        with no hooks, a built-in pure layer (Linear, LayerNorm, Conv, LSTM, activations, ...) runs
        one cached `jax.jit` program instead of op-by-op dispatch; `JAXMODULE_EAGER_JIT=0` or
        `jaxmodule.nn.modules._eager.set_eager_jit(False)` turns that off (see `_eager.py`)."""
        try:
            compiled = self._compiled_call_impl
            if compiled is not None:
                return compiled(*args, **kwargs)
            if not (
                self._forward_hooks
                or self._forward_pre_hooks
                or self._backward_hooks
                or self._backward_pre_hooks
                or _hooks.any_global_call_hooks()
            ):
                if (
                    _eager.ENABLED[0] and type(self) not in _eager.PLAIN
                ):  # a pure layer or block: cached jit (_eager.py)
                    out = _eager.call(self, args, kwargs)
                    if out is not _eager.SKIP:
                        return out
                return self.forward(*args, **kwargs)
            return _call.call_with_hooks(self, args, kwargs)
        except (
            Exception
        ) as e:  # issue 10: a torch.Tensor argument gets a clear error (no cost unless raised)
            _torch_inputs.raise_if_torch_input(self, args, kwargs, e)
            raise

    __call__: Callable[..., Any] = _call_impl

    def _wrapped_call_impl(self, *args: Any, **kwargs: Any) -> Any:
        return self._call_impl(*args, **kwargs)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile this module's forward in place: later `model(x)` calls run one XLA program.

        Mirrors `torch.nn.Module.compile`; keyword arguments go to `jax.jit` (e.g.
        `donate_argnums`). State the forward changes (BatchNorm statistics, the generator key) is
        written back after each call, and the program is retraced when structure, mode or hooks
        change.
        """
        compile_module = COMPILE_IMPLEMENTATION.compile_module
        if compile_module is None:
            raise RuntimeError(
                "Module.compile: jaxmodule._compile is not imported; import jaxmodule first"
            )
        compile_module(self, *args, **kwargs)

    # ---- attribute protocol --------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        if "_parameters" in d:
            params = d["_parameters"]
            if name in params:
                return params[name]
        if "_buffers" in d:
            buffers = d["_buffers"]
            if name in buffers:
                return buffers[name]
        if "_modules" in d:
            modules = d["_modules"]
            if name in modules:
                return modules[name]
        if "_jm_lazy" in d:  # a lazily unflattened module: build it, then look again
            _pytree.materialize(self)
            return getattr(self, name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_jm_lazy" in d:
            _pytree.materialize(self)
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._remove_name(name, params_too=False)
            self.register_parameter(name, value)
            return
        if params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{typename(value)}' as parameter '{name}' "
                    "(jaxmodule.nn.Parameter or None expected)"
                )
            self.register_parameter(name, value)
            return
        modules = d.get("_modules")
        if isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._remove_name(name, modules_too=False)
            modules[name] = _hooks.run_registration_hooks(
                _hooks._global_module_registration_hooks, self, name, value
            )
            _structure.bump()
            return
        if modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{typename(value)}' as child module '{name}' "
                    "(jaxmodule.nn.Module or None expected)"
                )
            modules[name] = _hooks.run_registration_hooks(
                _hooks._global_module_registration_hooks, self, name, value
            )
            _structure.bump()
            return
        buffers = d.get("_buffers")
        # A fresh `Buffer(...)` is a marker that registers a buffer (as torch's nn.Buffer); a cell
        # already registered somewhere behaves like torch's plain buffer tensor.
        marker = isinstance(value, Buffer) and not value._registered
        if marker or (buffers is not None and name in buffers):
            if value is not None and not _is_array_like(value):
                raise TypeError(
                    f"cannot assign '{typename(value)}' as buffer '{name}' "
                    "(jaxmodule.nn.Buffer, an array or None expected)"
                )
            if marker:
                self.register_buffer(name, value, value.persistent)
                return
            assert buffers is not None  # not a marker, so `name in buffers` held
            current = buffers.get(name)
            if value is current and value is not None:
                return
            if value is not None and current is not None:
                # Value change of an existing buffer: replace the array in its cell (not structural).
                current._value = as_array(value)
                return
            self.register_buffer(name, value, name not in d["_non_persistent_buffers_set"])
            return
        object.__setattr__(self, name, value)
        _structure.bump()

    def _remove_name(self, name: str, params_too: bool = True, modules_too: bool = True) -> None:
        d = self.__dict__
        d.pop(name, None)
        if params_too:
            d["_parameters"].pop(name, None)
        d["_buffers"].pop(name, None)
        d["_non_persistent_buffers_set"].discard(name)
        if modules_too:
            d["_modules"].pop(name, None)

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        if "_jm_lazy" in d:
            _pytree.materialize(self)
        if name in d.get("_parameters", ()):
            del d["_parameters"][name]
        elif name in d.get("_buffers", ()):
            del d["_buffers"][name]
            d["_non_persistent_buffers_set"].discard(name)
        elif name in d.get("_modules", ()):
            del d["_modules"][name]
        else:
            object.__delattr__(self, name)
        _structure.bump()

    def __dir__(self) -> list[str]:
        _pytree.materialize(self)
        keys = (
            dir(self.__class__)
            + list(self.__dict__)
            + list(self._parameters)
            + list(self._modules)
            + list(self._buffers)
        )
        return sorted(k for k in keys if not k[0].isdigit() and k not in TRANSIENT_KEYS)

    # ---- registration --------------------------------------------------------------------------
    def _check_new_name(self, name: Any, kind: str, own: dict) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {typename(name)}")
        if "." in name:
            raise KeyError(
                f'{kind} name can\'t contain "."' + (f", got: {name}" if kind == "module" else "")
            )
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if hasattr(self, name) and name not in own:
            raise KeyError(f"attribute '{name}' already exists")

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Add a buffer (saved in the state_dict if `persistent`). Mirrors torch.

        `tensor` may be a jax/numpy array, a torch tensor, a `Buffer` or None.
        """
        _pytree.materialize(self)
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_new_name(name, "buffer", self._buffers)
        if tensor is not None and not _is_array_like(tensor):
            raise TypeError(
                f"cannot assign '{typename(tensor)}' object to buffer '{name}' "
                "(jaxmodule.nn.Buffer, an array or None required)"
            )
        if tensor is not None and not isinstance(tensor, Buffer):
            tensor = Buffer(as_array(tensor), persistent=persistent)
        tensor = _hooks.run_registration_hooks(
            _hooks._global_buffer_registration_hooks, self, name, tensor
        )
        if isinstance(tensor, Buffer):
            tensor._registered = True
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)
        _structure.bump()

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or reserve the name with None). Mirrors torch."""
        _pytree.materialize(self)
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        self._check_new_name(name, "parameter", self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{typename(param)}' object to parameter '{name}' "
                "(jaxmodule.nn.Parameter or None required)"
            )
        if param is not None:  # torch runs the registration hooks for real parameters only
            param = _hooks.run_registration_hooks(
                _hooks._global_parameter_registration_hooks, self, name, param
            )
        self._parameters[name] = param
        _structure.bump()

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under `name`. Mirrors torch."""
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{typename(module)} is not a Module subclass")
        self._check_new_name(name, "module", self._modules)
        module = _hooks.run_registration_hooks(
            _hooks._global_module_registration_hooks, self, name, module
        )
        self._modules[name] = module
        _structure.bump()

    def register_module(self, name: str, module: Module | None) -> None:
        """Alias for `add_module`."""
        self.add_module(name, module)

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path `target` ('' is self). Mirrors torch, same errors."""
        if target == "":
            return self
        mod: Any = self
        for item in target.split("."):
            if not hasattr(mod, item):
                raise AttributeError(mod._get_name() + " has no attribute `" + item + "`")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError("`" + item + "` is not an nn.Module")
        return mod

    def set_submodule(self, target: str, module: Module, strict: bool = False) -> None:
        """Set (or with strict=True, only replace) the submodule at `target`. Mirrors torch."""
        if target == "":
            raise ValueError("Cannot set the submodule without a target name!")
        atoms = target.split(".")
        if not isinstance(module, Module):
            raise ValueError("`module` is not an nn.Module, found " + str(type(module)))
        parent = self if len(atoms) == 1 else self.get_submodule(".".join(atoms[:-1]))
        if strict and not hasattr(parent, atoms[-1]):
            raise AttributeError(parent._get_name() + " has no attribute `" + atoms[-1] + "`")
        if hasattr(parent, atoms[-1]) and not isinstance(getattr(parent, atoms[-1]), Module):
            raise AttributeError("`" + atoms[-1] + "` is not an nn.Module")
        setattr(parent, atoms[-1], module)

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path `target`. Mirrors torch, same errors."""
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, name):
            raise AttributeError(mod._get_name() + " has no attribute `" + name + "`")
        param = getattr(mod, name)
        if not isinstance(param, Parameter):
            raise AttributeError("`" + name + "` is not an nn.Parameter")
        return param

    def get_buffer(self, target: str) -> Buffer | None:
        """The buffer at dotted path `target` (None for a buffer registered as None). Mirrors
        torch, same errors."""
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, name):
            raise AttributeError(mod._get_name() + " has no attribute `" + name + "`")
        if name not in mod._buffers:
            raise AttributeError("`" + name + "` is not a buffer")
        return mod._buffers[name]

    # ---- traversal -----------------------------------------------------------------------------
    def _named_members(
        self,
        get_members: Callable,
        prefix: str = "",
        recurse: bool = True,
        remove_duplicate: bool = True,
    ) -> Iterator[tuple[str, Any]]:
        memo: set[int] = set()
        modules = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        for module_prefix, module in modules:
            for k, v in get_members(module):
                if v is None or id(v) in memo:
                    continue
                if remove_duplicate:
                    memo.add(id(v))
                yield module_prefix + ("." if module_prefix else "") + k, v

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Iterate over parameters (each shared parameter once). Mirrors torch."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Iterate over (name, parameter) pairs in torch's order. Mirrors torch."""
        yield from self._named_members(
            lambda m: m._parameters.items(), prefix, recurse, remove_duplicate
        )

    def buffers(self, recurse: bool = True) -> Iterator[Buffer]:
        """Iterate over buffers. Mirrors torch."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Buffer]]:
        """Iterate over (name, buffer) pairs. Mirrors torch."""
        yield from self._named_members(
            lambda m: m._buffers.items(), prefix, recurse, remove_duplicate
        )

    def children(self) -> Iterator[Module]:
        """Iterate over immediate children (each once). Mirrors torch."""
        for _, m in self.named_children():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Iterate over (name, child) pairs (each child once). Mirrors torch."""
        memo: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in memo:
                memo.add(id(module))
                yield name, module

    def modules(self) -> Iterator[Module]:
        """Iterate over all modules, self first (each once). Mirrors torch."""
        for _, m in self.named_modules():
            yield m

    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """Iterate over (dotted name, module) pairs, pre-order, self first. Mirrors torch."""
        if memo is None:
            memo = set()
        if self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            yield from module.named_modules(
                memo, prefix + ("." if prefix else "") + name, remove_duplicate
            )

    # ---- modes, init, grads --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode on self and all descendants; returns self. Mirrors torch."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> Module:
        """`train(False)`. Mirrors torch."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set `requires_grad` on every parameter; returns self. Mirrors torch."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's `.grad` (to None, or to zeros). Mirrors torch."""
        import jax.numpy as jnp

        for p in self.parameters():
            if p.grad is not None:
                p.grad = None if set_to_none else jnp.zeros_like(p.grad)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call `fn` on every submodule (children first) and then self; returns self. Mirrors torch."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def share_memory(self) -> Module:
        """No-op returning self: JAX arrays are immutable and already shareable across threads."""
        return self

    # ---- printing ------------------------------------------------------------------------------
    def _get_name(self) -> str:
        return self.__class__.__name__

    def extra_repr(self) -> str:
        """Extra text inside this module's repr; override in subclasses. Mirrors torch."""
        return ""

    @placement_repr  # torch's text; plus placements when the arrays span devices (_placement.py)
    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({key}): " + _addindent(repr(module), 2) for key, module in self._modules.items()
        ]
        return _format_repr(self._get_name(), extra_lines, child_lines)

    # ---- pickling / copying --------------------------------------------------------------------
    def __getstate__(self) -> dict:
        _pytree.materialize(self)
        state = self.__dict__.copy()
        for key in TRANSIENT_KEYS:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for name in (
            "_forward_hooks_with_kwargs",
            "_forward_hooks_always_called",
            "_forward_pre_hooks_with_kwargs",
            "_state_dict_pre_hooks",
            "_load_state_dict_post_hooks",
            "_backward_pre_hooks",
        ):
            self.__dict__.setdefault(name, OrderedDict())
        self.__dict__.setdefault("_is_full_backward_hook", None)
        _structure.bump()

    # ---- hooks -----------------------------------------------------------------------------------
    def register_forward_pre_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """`hook(module, args)` (or `(module, args, kwargs)`) before forward; may return new args.

        Mirrors torch: a non-tuple return value is wrapped into a 1-tuple.
        """
        return add_hook(
            self._forward_pre_hooks,
            hook,
            prepend=prepend,
            also_remove_from=self._forward_pre_hooks_with_kwargs,
            mark_in=(self._forward_pre_hooks_with_kwargs,) if with_kwargs else (),
        )

    def register_forward_hook(
        self,
        hook: Callable,
        *,
        prepend: bool = False,
        with_kwargs: bool = False,
        always_call: bool = False,
    ) -> RemovableHandle:
        """`hook(module, args, output)` (or with kwargs) after forward; may return a new output.

        Mirrors torch, `always_call` included (run even if forward raises).
        """
        options = []
        if with_kwargs:
            options.append(self._forward_hooks_with_kwargs)
        if always_call:
            options.append(self._forward_hooks_always_called)
        return add_hook(
            self._forward_hooks,
            hook,
            prepend=prepend,
            also_remove_from=[self._forward_hooks_with_kwargs, self._forward_hooks_always_called],
            mark_in=tuple(options),
        )

    def register_full_backward_pre_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """`hook(module, grad_output) -> None | new grad_output`, run when the gradient reaches
        this module's outputs. Mirrors torch; driven by JAX autodiff (see `_backward_hooks.py`)."""
        return add_hook(self._backward_pre_hooks, hook, prepend=prepend)

    def register_full_backward_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """`hook(module, grad_input, grad_output) -> None | new grad_input`. Mirrors torch."""
        if self._is_full_backward_hook is False:
            raise RuntimeError(
                "Cannot use both regular backward hooks and full backward hooks on a "
                "single Module. Please use only one of them."
            )
        self.__dict__["_is_full_backward_hook"] = True
        return add_hook(self._backward_hooks, hook, prepend=prepend)

    def register_backward_hook(self, hook: Callable) -> RemovableHandle:
        """Legacy backward hook (deprecated in torch): grad_input is that of the module's last
        operation. Mirrors torch, including that rule."""
        if self._is_full_backward_hook is True:
            raise RuntimeError(
                "Cannot use both regular backward hooks and full backward hooks on a "
                "single Module. Please use only one of them."
            )
        self.__dict__["_is_full_backward_hook"] = False
        return add_hook(self._backward_hooks, hook)


def _addindent(s: str, num_spaces: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    first = lines.pop(0)
    return first + "\n" + "\n".join(" " * num_spaces + line for line in lines)


def _format_repr(name: str, extra_lines: list[str], child_lines: list[str]) -> str:
    """torch's repr layout: `Name(extra)` on one line, else one indented line per item."""
    lines = extra_lines + child_lines
    main = name + "("
    if lines:
        if len(extra_lines) == 1 and not child_lines:
            main += extra_lines[0]
        else:
            main += "\n  " + "\n  ".join(lines) + "\n"
    return main + ")"


_pytree.register(Module)
# what a checked eager forward may not call on a module (`_purity.py`)
_purity.refuse_calls(
    *(
        getattr(Module, name)
        for name in (
            "to",
            "cuda",
            "cpu",
            "apply",
            "train",
            "eval",
            "half",
            "float",
            "double",
            "bfloat16",
            "to_empty",
            "type",
            "load_state_dict",
            "register_buffer",
            "register_parameter",
            "register_module",
            "add_module",
            "requires_grad_",
            "zero_grad",
            "share_memory",
        )
    )
)
