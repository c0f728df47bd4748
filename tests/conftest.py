"""Test setup: 8 simulated CPU devices (set before jax is imported) and shared fixtures."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# A persistent XLA compilation cache for the test session, outside the repository: a second run
# of the suite (and CI on the same machine) skips most XLA compilation. Tracing still happens, so
# trace counts and every behaviour under test are unchanged. JAXMODULE_TEST_XLA_CACHE=off to
# disable, or a path to move it.
_cache = os.environ.get(
    "JAXMODULE_TEST_XLA_CACHE",
    os.path.join(os.path.expanduser("~"), ".cache", "jaxmodule", "xla-tests"),
)
if _cache != "off":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global generator state in jaxmodule and torch."""
    import jaxmodule
    import torch

    jaxmodule.manual_seed(0)
    torch.manual_seed(0)
    yield
