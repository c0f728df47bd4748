"""Running the port on its own output changes nothing (fixtures and rule snippets)."""

import pytest

from jaxmodule.port import port_source
from tests.port import test_calls, test_inplace, test_methods, test_training
from tests.port._porting import TORCH_SOURCES


def _snippets():
    sources = [p.read_text() for p in sorted(TORCH_SOURCES.glob("*.py")) if p.name != "__init__.py"]
    for module in (test_calls, test_methods, test_inplace, test_training):
        sources.extend(v for k, v in vars(module).items() if k.isupper() and isinstance(v, str))
    return sources


@pytest.mark.parametrize("source", _snippets())
def test_second_run_changes_nothing(source):
    once = port_source(source).source
    assert port_source(once).source == once


def test_fixture_sources_change_on_the_first_run():
    for path in TORCH_SOURCES.glob("*.py"):
        if path.name != "__init__.py":
            assert port_source(path.read_text()).source != path.read_text()
