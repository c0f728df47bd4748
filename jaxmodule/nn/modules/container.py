"""Containers: `Sequential`, `ModuleList`, `ModuleDict`, `ParameterList`, `ParameterDict`.

Mirrors `torch.nn.modules.container`: the same keys ('0', '1', ... or the given names), the same
re-numbering after deletions, the same repr text and the same exception types.
"""

from __future__ import annotations

import operator
import warnings
from collections import OrderedDict
from collections import abc as container_abcs
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain, islice
from typing import Any

import jax
import numpy as np

from ... import _structure
from ..._tensor import as_array, is_torch_tensor
from ..parameter import Buffer, Parameter, _TensorCell
from ._backward_hooks import call_last_child, register_last_operation
from ._eager import register_pure_forward
from .module import Module, _addindent

__all__ = ["Container", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"]


def _renumber(module: Module) -> None:
    """Give the children of a list-like container the keys '0', '1', ... in their current order."""
    module.__dict__["_modules"] = {str(i): m for i, m in enumerate(module._modules.values())}
    _structure.bump()


def _check_update_pair(owner: str, j: int, pair: Any) -> None:
    """torch's checks on element `j` of the sequence given to `<owner>.update`: an iterable of 2."""
    if not isinstance(pair, container_abcs.Iterable):
        raise TypeError(
            f"{owner} update sequence element #{j} should be Iterable; is{type(pair).__name__}"
        )
    # as torch: an iterable without len() (a generator) raises TypeError here
    n = len(pair)  # type: ignore[arg-type]
    if n != 2:
        raise ValueError(f"{owner} update sequence element #{j} has length {n}; 2 is required")


def _abs_index(idx: Any, size: int) -> int:
    idx = operator.index(idx)
    if not -size <= idx < size:
        raise IndexError(f"index {idx} is out of range")
    return idx % size if size else idx


class Container(Module):
    """Deprecated: a Module whose keyword arguments become submodules. Mirrors `torch.nn.Container`."""

    def __init__(self, **kwargs: Any) -> None:
        warnings.warn(
            "`nn.Container` is deprecated. All of its functionality is now implemented in "
            "`nn.Module`. Subclass that instead.",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__()
        for key, value in kwargs.items():
            self.add_module(key, value)


class Sequential(Module):
    """Runs its modules in order, feeding each one's output to the next. Mirrors `torch.nn.Sequential`.

    Args:
        *args: modules (named '0', '1', ...), or one `OrderedDict` of named modules.

    >>> from jaxmodule import nn
    >>> import jax.numpy as jnp
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    >>> model(jnp.ones((5, 4))).shape
    (5, 2)
    >>> [k for k, _ in model.named_children()]
    ['0', '1']
    """

    # The children are modules (torch's annotation; `add_module(name, None)` can still put a None
    # there). Annotation only: the dict is the instance's, set by Module.__init__.
    _modules: dict[str, Module]  # type: ignore[assignment]

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, module)
        else:
            for idx, module in enumerate(args):
                self.add_module(str(idx), module)

    def _get_item_by_idx(self, iterator: Iterable[Any], idx: Any) -> Any:
        return next(islice(iterator, _abs_index(idx, len(self)), None))

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return self.__class__(OrderedDict(list(self._modules.items())[idx]))
        return self._get_item_by_idx(self._modules.values(), idx)

    def __setitem__(self, idx: int, module: Module) -> None:
        key = self._get_item_by_idx(self._modules.keys(), idx)
        setattr(self, key, module)

    def __delitem__(self, idx: int | slice) -> None:
        if isinstance(idx, slice):
            for key in list(self._modules.keys())[idx]:
                delattr(self, key)
        else:
            delattr(self, self._get_item_by_idx(self._modules.keys(), idx))
        _renumber(self)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __add__(self, other: Any) -> Sequential:
        if not isinstance(other, Sequential):
            raise ValueError(
                f"add operator supports only objects of Sequential class, but {type(other)} is given."
            )
        ret = Sequential()
        for layer in chain(self, other):
            ret.append(layer)
        return ret

    def __iadd__(self, other: Any) -> Sequential:
        if not isinstance(other, Sequential):
            raise ValueError(
                f"add operator supports only objects of Sequential class, but {type(other)} is given."
            )
        offset = len(self)
        for i, module in enumerate(other):
            self.add_module(str(i + offset), module)
        return self

    def _check_factor(self, other: Any) -> None:
        if not isinstance(other, int):
            raise TypeError(f"unsupported operand type(s) for *: {type(self)} and {type(other)}")
        if other <= 0:
            raise ValueError(f"Non-positive multiplication factor {other} for {type(self)}")

    def __mul__(self, other: int) -> Sequential:
        self._check_factor(other)
        combined = Sequential()
        offset = 0
        for _ in range(other):
            for module in self:
                combined.add_module(str(offset), module)
                offset += 1
        return combined

    def __rmul__(self, other: int) -> Sequential:
        return self.__mul__(other)

    def __imul__(self, other: int) -> Sequential:
        self._check_factor(other)
        n = len(self)
        for rep in range(1, other):
            for i in range(n):
                self.add_module(str(i + rep * n), self._modules[str(i)])
        return self

    def pop(self, key: int | slice) -> Any:
        """Remove and return the module(s) at `key`; later modules are re-numbered."""
        v = self[key]
        del self[key]
        return v

    def __dir__(self) -> list[str]:
        return [k for k in super().__dir__() if not k.isdigit()]

    def forward(self, input: Any) -> Any:
        for module in self:
            input = module(input)
        return input

    def append(self, module: Module) -> Sequential:
        """Append `module` at the end (key `str(len(self))`); returns self."""
        self.add_module(str(len(self)), module)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        """Insert `module` before position `index` (negative counts from the end); returns self."""
        if not isinstance(module, Module):
            raise AssertionError(f"module should be of type: {Module}")
        n = len(self._modules)
        if not -n <= index <= n:
            raise IndexError(f"Index out of range: {index}")
        if index < 0:
            index += n
        mods = self._modules
        for i in range(n, index, -1):
            mods[str(i)] = mods[str(i - 1)]
        mods[str(index)] = module
        _structure.bump()
        return self

    def extend(self, sequential: Iterable[Module]) -> Sequential:
        """Append every module of `sequential`; returns self."""
        for layer in sequential:
            self.append(layer)
        return self


# legacy backward hooks: torch's last operation of Sequential.forward (see _backward_hooks.py)
def _sequential_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    children = list(m._modules.values())
    if len(args) != 1 or kwargs or not children:
        return NotImplemented
    x = args[0]
    for child in children[:-1]:
        x = child(x)
    y, warn = call_last_child(children[-1], x, sessions)
    return y, warn or x is not args[0]


register_last_operation(Sequential, _sequential_rule)


class ModuleList(Module):
    """Holds submodules in a list, registered under '0', '1', .... Mirrors `torch.nn.ModuleList`.

    Args:
        modules: an optional iterable of modules.

    >>> from jaxmodule import nn
    >>> layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    >>> len(layers), list(layers.state_dict())[:2]
    (3, ['0.weight', '0.bias'])
    """

    # The children are modules (torch's annotation; `add_module(name, None)` can still put a None
    # there). Annotation only: the dict is the instance's, set by Module.__init__.
    _modules: dict[str, Module]  # type: ignore[assignment]

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self += modules

    def _get_abs_string_index(self, idx: Any) -> str:
        return str(_abs_index(idx, len(self)))

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return self.__class__(list(self._modules.values())[idx])
        return self._modules[self._get_abs_string_index(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, self._get_abs_string_index(idx), module)

    def __delitem__(self, idx: int | slice) -> None:
        if isinstance(idx, slice):
            for k in range(len(self._modules))[idx]:
                delattr(self, str(k))
        else:
            delattr(self, self._get_abs_string_index(idx))
        _renumber(self)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        combined = ModuleList()
        for i, module in enumerate(chain(self, other)):
            combined.add_module(str(i), module)
        return combined

    def __repr__(self) -> str:
        """torch's compressed repr: runs of modules with equal repr print once as `(i-j): n x ...`."""
        reprs = [repr(item) for item in self]
        if not reprs:
            return self._get_name() + "()"
        blocks: list[list[Any]] = []  # [start, end, repr]
        for i, r in enumerate(reprs):
            if blocks and blocks[-1][2] == r:
                blocks[-1][1] = i
            else:
                blocks.append([i, i, r])
        lines = []
        for start, end, r in blocks:
            line = (
                f"({start}): {r}" if start == end else f"({start}-{end}): {end - start + 1} x {r}"
            )
            lines.append(_addindent(line, 2))
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self) -> list[str]:
        return [k for k in super().__dir__() if not k.isdigit()]

    def insert(self, index: int, module: Module) -> None:
        """Insert `module` before position `index`.

        Mirrors torch's algorithm exactly, including its limits: `index` is not range-checked
        and a negative `index` raises KeyError.
        """
        mods = self._modules
        for i in range(len(mods), index, -1):
            mods[str(i)] = mods[str(i - 1)]
        mods[str(index)] = module
        _structure.bump()

    def append(self, module: Module) -> ModuleList:
        """Append `module` at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def pop(self, key: int | slice) -> Any:
        """Remove and return the module(s) at `key`; later modules are re-numbered."""
        v = self[key]
        del self[key]
        return v

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Append every module of the iterable `modules`; returns self."""
        if not isinstance(modules, container_abcs.Iterable):
            raise TypeError(
                f"ModuleList.extend should be called with an iterable, but got {type(modules).__name__}"
            )
        offset = len(self)
        for i, module in enumerate(modules):
            self.add_module(str(offset + i), module)
        return self


class ModuleDict(Module):
    """Holds submodules in an ordered dictionary. Mirrors `torch.nn.ModuleDict`.

    Args:
        modules: a mapping of name -> module, or an iterable of (name, module) pairs.

    >>> from jaxmodule import nn
    >>> d = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    >>> list(d.keys()), "enc" in d
    (['enc', 'dec'], True)
    """

    # The children are modules (torch's annotation; `add_module(name, None)` can still put a None
    # there). Annotation only: the dict is the instance's, set by Module.__init__.
    _modules: dict[str, Module]  # type: ignore[assignment]

    def __init__(self, modules: Mapping[str, Module] | Iterable[Any] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]
        _structure.bump()

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def clear(self) -> None:
        """Remove every module."""
        self._modules.clear()
        _structure.bump()

    def pop(self, key: str) -> Module:
        """Remove `key` and return its module."""
        v = self[key]
        del self[key]
        return v

    def keys(self) -> container_abcs.KeysView[str]:
        return self._modules.keys()

    def items(self) -> container_abcs.ItemsView[str, Module]:
        return self._modules.items()

    def values(self) -> container_abcs.ValuesView[Module]:
        return self._modules.values()

    def update(self, modules: Mapping[str, Module] | Iterable[Any]) -> None:
        """Add or overwrite entries from a mapping or an iterable of (name, module) pairs."""
        if not isinstance(modules, container_abcs.Iterable):
            raise TypeError(
                "ModuleDict.update should be called with an iterable of key/value pairs, "
                f"but got {type(modules).__name__}"
            )
        if isinstance(modules, (OrderedDict, ModuleDict, container_abcs.Mapping)):
            for key, module in modules.items():
                self[key] = module
            return
        for j, m in enumerate(modules):
            _check_update_pair("ModuleDict", j, m)
            self[m[0]] = m[1]


def _is_plain_array(x: Any) -> bool:
    """What torch's `isinstance(x, Tensor) and not isinstance(x, Parameter)` covers here."""
    if isinstance(x, Parameter):
        return False
    return isinstance(x, (jax.Array, np.ndarray, Buffer)) or is_torch_tensor(x)


def _as_parameter(x: Any) -> Any:
    return Parameter(as_array(x)) if _is_plain_array(x) else x


def _param_line(key: Any, p: Any) -> str:
    if isinstance(p, (_TensorCell, jax.Array)):
        size = "x".join(str(s) for s in p.shape)
        kind = "Parameter" if isinstance(p, Parameter) else "Tensor"
        return f"  ({key}): {kind} containing: [{p.dtype} of size {size}]"
    return f"  ({key}): Object of type: {type(p).__name__}"


class ParameterList(Module):
    """Holds parameters in a list, registered as parameters '0', '1', .... Mirrors `torch.nn.ParameterList`.

    Args:
        values: an optional iterable of elements. Arrays (jax, numpy, torch) are wrapped into
            `Parameter`s, as torch wraps tensors; other objects are stored as plain attributes.

    >>> import jax.numpy as jnp
    >>> from jaxmodule import nn
    >>> pl = nn.ParameterList([jnp.zeros((2, 3)), nn.Parameter(jnp.ones(4))])
    >>> print(pl)
    ParameterList(
        (0): Parameter containing: [float32 of size 2x3]
        (1): Parameter containing: [float32 of size 4]
    )

    Difference from torch: the repr names the jax dtype (`float32`) where torch prints
    `torch.float32`.
    """

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        super().__init__()
        self._size = 0
        if values is not None:
            self += values

    def _get_abs_string_index(self, idx: Any) -> str:
        return str(_abs_index(idx, len(self)))

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            out = self.__class__()
            for i in range(*idx.indices(len(self))):
                out.append(self[i])
            return out
        return getattr(self, self._get_abs_string_index(idx))

    def __setitem__(self, idx: int, param: Any) -> None:
        setattr(self, self._get_abs_string_index(idx), _as_parameter(param))

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Any]:
        return iter([self[i] for i in range(len(self))])

    def __iadd__(self, parameters: Iterable[Any]) -> ParameterList:
        return self.extend(parameters)

    def __dir__(self) -> list[str]:
        return [k for k in super().__dir__() if not k.isdigit()]

    def append(self, value: Any) -> ParameterList:
        """Append `value` (arrays become Parameters); returns self."""
        new_idx = len(self)
        self._size += 1
        self[new_idx] = value
        return self

    def extend(self, values: Iterable[Any]) -> ParameterList:
        """Append every element of the iterable `values`; returns self."""
        if (
            not isinstance(values, container_abcs.Iterable)
            or isinstance(values, (_TensorCell, jax.Array, np.ndarray))
            or is_torch_tensor(values)
        ):
            raise TypeError(
                f"ParameterList.extend should be called with an iterable, but got {type(values).__name__}"
            )
        for value in values:
            self.append(value)
        return self

    def extra_repr(self) -> str:
        return "\n".join(_param_line(k, p) for k, p in enumerate(self))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("ParameterList should not be called.")


class ParameterDict(Module):
    """Holds parameters in an ordered dictionary. Mirrors `torch.nn.ParameterDict`.

    Args:
        parameters: a mapping of name -> value, or an iterable of (name, value) pairs. Arrays
            become `Parameter`s (as torch wraps tensors); other objects are stored as plain
            attributes. A plain `dict` is inserted in sorted key order, as torch does.

    >>> import jax.numpy as jnp
    >>> from jaxmodule import nn
    >>> pd = nn.ParameterDict({"a": jnp.zeros(3)})
    >>> list(pd.state_dict())
    ['a']

    Differences from torch: the repr names the jax dtype (`[float32 of size 3]`) where torch
    prints the tensor type (`[torch.FloatTensor of size 3]`); a key rejected with an error
    (not a string, or containing '.') is not left behind in `keys()` as torch leaves it.
    """

    def __init__(self, parameters: Any = None) -> None:
        super().__init__()
        self._keys: dict[str, None] = {}
        if parameters is not None:
            self.update(parameters)

    def _key_to_attr(self, key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(
                "Index given to ParameterDict cannot be used as a key as it is not a string "
                f"(type is '{type(key).__name__}'). Open an issue on github if you need non-string keys."
            )
        return key

    def __getitem__(self, key: str) -> Any:
        return getattr(self, self._key_to_attr(key))

    # `_keys` is replaced, never mutated: pytree copies of this module share its plain attributes.
    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, self._key_to_attr(key), _as_parameter(value))
        if key not in self._keys:
            self.__dict__["_keys"] = {**self._keys, key: None}

    def __delitem__(self, key: str) -> None:
        keys = dict(self._keys)
        del keys[key]
        delattr(self, self._key_to_attr(key))
        self.__dict__["_keys"] = keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def copy(self) -> ParameterDict:
        """A new ParameterDict holding the same values (the same Parameter objects)."""
        return ParameterDict(OrderedDict((k, self[k]) for k in self._keys))

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Return `self[key]`, inserting `default` first if `key` is absent."""
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self) -> None:
        """Remove every entry."""
        for k in list(self._keys):
            del self[k]

    def pop(self, key: str) -> Any:
        """Remove `key` and return its value."""
        v = self[key]
        del self[key]
        return v

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last inserted (key, value) pair."""
        if not self._keys:
            raise KeyError("popitem(): dictionary is empty")
        k = next(reversed(self._keys))
        return k, self.pop(k)

    def get(self, key: str, default: Any = None) -> Any:
        """`self[key]` if present, else `default`."""
        return self[key] if key in self else default

    def fromkeys(self, keys: Iterable[str], default: Any = None) -> ParameterDict:
        """A new ParameterDict with `keys`, each set to `default`."""
        return ParameterDict((k, default) for k in keys)

    def keys(self) -> container_abcs.KeysView[str]:
        return self._keys.keys()

    def items(self) -> Iterable[tuple[str, Any]]:
        return ((k, self[k]) for k in self._keys)

    def values(self) -> Iterable[Any]:
        return (self[k] for k in self._keys)

    def update(self, parameters: Any) -> None:
        """Add or overwrite entries from a mapping or an iterable of (key, value) pairs."""
        if not isinstance(parameters, container_abcs.Iterable):
            raise TypeError(
                "ParametersDict.update should be called with an iterable of key/value pairs, "
                f"but got {type(parameters).__name__}"
            )
        if isinstance(parameters, (OrderedDict, ParameterDict)):
            for key, parameter in parameters.items():
                self[key] = parameter
        elif isinstance(parameters, container_abcs.Mapping):
            for key, parameter in sorted(parameters.items()):
                self[key] = parameter
        else:
            for j, p in enumerate(parameters):
                _check_update_pair("ParameterDict", j, p)
                self[p[0]] = p[1]

    def extra_repr(self) -> str:
        return "\n".join(_param_line(k, p) for k, p in self.items())

    def __call__(self, input: Any) -> Any:
        raise RuntimeError("ParameterDict should not be called.")

    def __or__(self, other: ParameterDict) -> ParameterDict:
        out = self.copy()
        out.update(other)
        return out

    def __ror__(self, other: ParameterDict) -> ParameterDict:
        out = other.copy()
        out.update(self)
        return out

    def __ior__(self, other: ParameterDict) -> ParameterDict:
        self.update(other)
        return self


# Sequential's forward calls its children: pure when they are (checked per tree, see _eager.py).
# The holders have no forward: pure parts of a declared-pure parent, never called alone.
register_pure_forward(Sequential, when=lambda m: bool(m._modules))  # empty: returns its input
register_pure_forward(ModuleList, ModuleDict, ParameterList, ParameterDict, alone=False)
