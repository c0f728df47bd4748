"""The agreement layer of multi-process checkpoints (`checkpoint/_multiprocess.py`), exercised
in one process: two `Rendezvous` objects play process 0 and process 1 over an in-memory
key-value store with the coordination client's methods. The real two-process run is
tests/distributed/test_multiprocess.py."""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxmodule.checkpoint import _multiprocess
from jaxmodule.checkpoint._format import build
from jaxmodule.checkpoint._multiprocess import PeerFailed, Rendezvous


class FakeClient:
    """key_value_set / blocking_key_value_get / wait_at_barrier, as jax's coordination client."""

    def __init__(self) -> None:
        self.store: dict[str, str] = {}
        self.cond = threading.Condition()

    def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
        with self.cond:
            if key in self.store and not allow_overwrite:
                raise RuntimeError(f"ALREADY_EXISTS: {key}")
            self.store[key] = value
            self.cond.notify_all()

    def blocking_key_value_get(self, key: str, timeout_in_ms: int) -> str:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.store, timeout_in_ms / 1000):
                raise RuntimeError(f"DEADLINE_EXCEEDED: {key}")
            return self.store[key]


def pair(client: FakeClient, what: str = "save", subject: str = "/ck/a.pth") -> list[Rendezvous]:
    """Process 0's and process 1's view of one collective operation."""
    out = []
    for rank in range(2):
        rv = Rendezvous.__new__(Rendezvous)
        rv.what, rv.subject, rv.prefix = what, subject, f"jaxmodule/{what}/0"
        rv.rank, rv.size, rv._client = rank, 2, client
        out.append(rv)
    return out


@pytest.fixture
def short_timeout():
    before = _multiprocess.timeout_s()
    _multiprocess.set_timeout(0.2)
    yield
    _multiprocess.set_timeout(before)


def test_a_single_process_is_not_multiprocess():
    assert not _multiprocess.is_multiprocess()
    assert (_multiprocess.process_index(), _multiprocess.process_count()) == (0, 1)
    _multiprocess.barrier("anything")  # a no-op, no coordination service needed


def test_each_collective_call_gets_the_next_key_of_its_kind():
    first, second = Rendezvous("probe", "x"), Rendezvous("probe", "x")
    other = Rendezvous("probe-other", "x")
    n = int(first.prefix.rsplit("/", 1)[1])
    assert (first.prefix, second.prefix) == (f"jaxmodule/probe/{n}", f"jaxmodule/probe/{n + 1}")
    assert other.prefix.startswith("jaxmodule/probe-other/")


def test_the_primary_shares_a_value():
    client = FakeClient()
    p0, p1 = pair(client)
    assert p0.primary and not p1.primary
    p0.publish("tmp", ".a.pth.jmtmp-0123456789ab")
    assert p1.fetch("tmp") == ".a.pth.jmtmp-0123456789ab"


def test_the_primary_shares_its_error_and_the_peer_raises_it():
    client = FakeClient()
    p0, p1 = pair(client)
    p0.publish("tmp", error=IsADirectoryError("/ck/a.pth is an existing directory"))
    with pytest.raises(
        PeerFailed,
        match=r"jaxmodule\.save: /ck/a\.pth: process 0 failed \(IsADirectoryError: "
        r"/ck/a\.pth is an existing directory\)",
    ):
        p1.fetch("tmp")


def test_all_ok_collects_every_value_in_rank_order():
    client = FakeClient()
    p0, p1 = pair(client)
    got: dict[int, list[str]] = {}
    t = threading.Thread(target=lambda: got.__setitem__(1, p1.all_ok("built", value="/ck/b")))
    t.start()
    got[0] = p0.all_ok("built", value="/ck/a")
    t.join()
    assert got[0] == got[1] == ["/ck/a", "/ck/b"]


def test_all_ok_raises_for_a_failed_peer_on_every_other_process():
    client = FakeClient()
    p0, p1 = pair(client)
    # process 1 reports its own failure (its caller re-raises its own error) and learns 0's outcome
    t = threading.Thread(
        target=p1.all_ok, args=("written",), kwargs={"error": OSError("disk full")}
    )
    t.start()
    with pytest.raises(PeerFailed, match=r"process 1 failed \(OSError: disk full\)"):
        p0.all_ok("written")
    t.join()


def test_a_peer_that_never_comes_is_reported_after_the_timeout(short_timeout):
    client = FakeClient()
    p0, p1 = pair(client)
    with pytest.raises(
        PeerFailed, match=r"process 1 waited 0\.2 s for its peers at 'tmp' and gave up"
    ):
        p1.fetch("tmp")
    with pytest.raises(PeerFailed, match=r"process 0 waited 0\.2 s for its peers at 'written/1'"):
        p0.all_ok("written")


def test_set_timeout_none_restores_torch_default():
    before = _multiprocess.timeout_s()
    try:
        _multiprocess.set_timeout(5)
        assert _multiprocess.timeout_s() == 5.0
        _multiprocess.set_timeout(None)
        assert _multiprocess.timeout_s() == 1800.0  # torch's default_pg_timeout
    finally:
        _multiprocess.set_timeout(before)


def test_build_for_a_multiprocess_save_stores_process_local_arrays_as_numpy():
    """orbax refuses process-local jax arrays in a multi-process save; they go as numpy (written
    by process 0), with the same manifest record and checksum as a single-process save."""
    obj = {"w": jnp.arange(6.0).reshape(2, 3), "n": np.ones(2), "step": 3}
    manifest, stored = build(obj, kind="save", local_as_numpy=True)
    single, stored_single = build(obj, kind="save")
    assert isinstance(stored_single["a0"], jax.Array)
    assert type(stored["a0"]) is np.ndarray
    np.testing.assert_array_equal(stored["a0"], np.arange(6.0).reshape(2, 3))
    for a, b in zip(manifest["arrays"], single["arrays"]):
        assert a == b  # kind 'jax', location, crc32: unchanged, so load gives a jax array back
