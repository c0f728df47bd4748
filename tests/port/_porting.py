"""Helpers for the porting tests: port a snippet or a fixture file, import the result."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
from jaxmodule.port import PortResult, port_file, port_source

from tests.helpers import assert_close, to_numpy

TORCH_SOURCES = Path(__file__).parent / "torch_sources"
_counter = itertools.count()


def port(code: str) -> PortResult:
    """Port a dedented snippet."""
    return port_source(textwrap.dedent(code), "snippet.py")


def ported(code: str) -> str:
    """The ported text of a dedented snippet."""
    return port(code).source


def reasons(code: str) -> list[str]:
    """The report reasons for a dedented snippet."""
    return [issue.reason for issue in port(code).issues]


def torch_fixture(name: str) -> ModuleType:
    """The torch fixture module `tests/port/torch_sources/<name>.py`."""
    return importlib.import_module(f"tests.port.torch_sources.{name}")


def ported_fixture(name: str, directory: Path) -> tuple[ModuleType, PortResult]:
    """Port a fixture file into `directory` and import the result as a fresh module."""
    out = directory / f"{name}_jaxmodule.py"
    result = port_file(TORCH_SOURCES / f"{name}.py", out)
    module_name = f"ported_{name}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, result


def assert_same_state(jm_module, torch_module) -> None:
    """Every parameter and buffer of the two models agrees (float32 tolerance)."""
    expected = torch_module.state_dict()
    actual = jm_module.state_dict()
    assert list(actual) == list(expected)
    for key, value in expected.items():
        if value.is_floating_point():
            assert_close(actual[key], value)
        else:
            np.testing.assert_array_equal(to_numpy(actual[key]), to_numpy(value), err_msg=key)
