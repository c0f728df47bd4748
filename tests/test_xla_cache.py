"""The persistent XLA compilation cache jaxmodule turns on at import (jaxmodule/_xla_cache.py)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys

import jax
import pytest
from jax._src import compilation_cache
from jaxmodule import _xla_cache
from jaxmodule._xla_cache import MIN_COMPILE_TIME_SECS, cache_dir_from_env, enable_default_cache

DIR = "jax_compilation_cache_dir"
TIME = "jax_persistent_cache_min_compile_time_secs"


@pytest.fixture
def unconfigured(monkeypatch):
    """JAX as a fresh process has it: no cache directory, no cache open; restored afterwards."""
    saved = {name: getattr(jax.config, name) for name in (DIR, TIME)}
    jax.config.update(DIR, None)
    jax.config.update(TIME, 1.0)
    monkeypatch.setattr(compilation_cache, "_cache", None)
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


@pytest.mark.parametrize("value", ["off", "0", "false", "OFF", " no "])
def test_env_off_disables(value):
    assert cache_dir_from_env({"JAXMODULE_CACHE_DIR": value, "XDG_CACHE_HOME": "/c"}) is None


def test_jax_env_var_wins():
    assert (
        cache_dir_from_env({"JAX_COMPILATION_CACHE_DIR": "/mine", "JAXMODULE_CACHE_DIR": "/ours"})
        is None
    )


def test_default_paths():
    assert cache_dir_from_env({"XDG_CACHE_HOME": "/c"}) == os.path.join("/c", "jaxmodule", "xla")
    home = os.path.join(os.path.expanduser("~"), ".cache", "jaxmodule", "xla")
    assert cache_dir_from_env({}) == home
    assert cache_dir_from_env({"XDG_CACHE_HOME": ""}) == home
    assert cache_dir_from_env(
        {"JAXMODULE_CACHE_DIR": "~/x", "XDG_CACHE_HOME": "/c"}
    ) == os.path.join(os.path.expanduser("~"), "x")


def test_enable_sets_dir_and_threshold(unconfigured, tmp_path):
    path = str(tmp_path / "a" / "xla")
    assert enable_default_cache({"JAXMODULE_CACHE_DIR": path}) == path
    assert getattr(jax.config, DIR) == path
    assert getattr(jax.config, TIME) == MIN_COMPILE_TIME_SECS
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def test_enable_keeps_user_threshold(unconfigured, tmp_path):
    env = {"JAXMODULE_CACHE_DIR": str(tmp_path), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "1"}
    assert enable_default_cache(env) == str(tmp_path)
    assert getattr(jax.config, TIME) == 1.0
    jax.config.update(TIME, 2.5)  # changed in code before the import
    enable_default_cache({"JAXMODULE_CACHE_DIR": str(tmp_path)})
    assert getattr(jax.config, TIME) == 2.5


def test_enable_leaves_configured_cache_alone(unconfigured, tmp_path):
    jax.config.update(DIR, "/users/own")
    assert enable_default_cache({"JAXMODULE_CACHE_DIR": str(tmp_path)}) is None
    assert getattr(jax.config, DIR) == "/users/own"
    assert getattr(jax.config, TIME) == 1.0


def test_enable_leaves_open_cache_alone(unconfigured, tmp_path, monkeypatch):
    monkeypatch.setattr(compilation_cache, "_cache", object())
    assert enable_default_cache({"JAXMODULE_CACHE_DIR": str(tmp_path / "x")}) is None
    assert getattr(jax.config, DIR) is None
    assert not (tmp_path / "x").exists()


def test_enable_off_changes_nothing(unconfigured):
    assert enable_default_cache({"JAXMODULE_CACHE_DIR": "off"}) is None
    assert getattr(jax.config, DIR) is None
    assert getattr(jax.config, TIME) == 1.0


def test_unusable_dir_falls_back_silently(unconfigured, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the directory should go: fails even as root
    with caplog.at_level(logging.DEBUG, logger="jaxmodule"):
        assert enable_default_cache({"JAXMODULE_CACHE_DIR": str(blocker / "xla")}) is None
    assert getattr(jax.config, DIR) is None
    assert any("no persistent XLA cache: cannot create" in r.getMessage() for r in caplog.records)


def test_unwritable_dir_falls_back(unconfigured, tmp_path, monkeypatch):
    monkeypatch.setattr(_xla_cache.os, "access", lambda path, mode: False)
    assert enable_default_cache({"JAXMODULE_CACHE_DIR": str(tmp_path)}) is None
    assert getattr(jax.config, DIR) is None


CHILD = """
import json, sys
import jax
events = []
jax.monitoring.register_event_listener(lambda name, **_: events.append(name))
if sys.argv[1] == "compile-first":  # a program compiled before jaxmodule sets the directory
    jax.jit(lambda v: v * 3)(1.0).block_until_ready()
import jaxmodule
from jaxmodule import nn, optim
jaxmodule.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
optimizer = optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()

@jaxmodule.compile
def step(x, y):
    optimizer.zero_grad()
    loss = jaxmodule.backward(lambda: criterion(model(x), y))
    optimizer.step()
    return loss

loss = float(step(jaxmodule.randn(16, 8), jaxmodule.randint(0, 4, (16,))))
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir, "loss": loss,
                  "hits": events.count("/jax/compilation_cache/cache_hits"),
                  "writes": events.count("/jax/compilation_cache/cache_misses")}))
"""


def _run_child(cache_dir: str, mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["JAXMODULE_CACHE_DIR"] = cache_dir
    # Write every program: on a fast machine the tiny step may compile under the default threshold.
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_second_process_hits_the_cache(tmp_path):
    cache_dir = str(tmp_path / "xla")
    cold = _run_child(cache_dir, "compile-first")
    entries = sorted(os.listdir(cache_dir))
    warm = _run_child(cache_dir, "plain")
    assert cold["dir"] == warm["dir"] == cache_dir
    assert cold["hits"] == 0 and cold["writes"] >= 1
    assert any("pure" in name or "step" in name for name in entries), entries  # the compiled step
    assert warm["writes"] == 0 and warm["hits"] == cold["writes"]
    assert sorted(os.listdir(cache_dir)) == entries
    assert warm["loss"] == cold["loss"]
