"""Tests of the bulkhead's slots, bounded queue and counters."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from revo_sdk import BulkheadFullError, BulkheadPolicy, ClientClosedError
from revo_sdk._bulkhead import Bulkhead


class Gauge:
    """Counts calls running inside a function, and the most at once."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.names: set[str] = set()
        self.release = threading.Event()
        self._changed = threading.Condition()

    def work(self, result: int = 0) -> int:
        """Enter, wait for the test to open the gate, leave."""
        with self._changed:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.names.add(threading.current_thread().name)
            self._changed.notify_all()
        try:
            assert self.release.wait(timeout=10.0), "the test never opened the gate"
            return result
        finally:
            with self._changed:
                self.active -= 1
                self._changed.notify_all()

    def until_active(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.active >= count, timeout=5.0)


@pytest.fixture
def gauge() -> Iterator[Gauge]:
    """A gauge whose gate is opened when the test ends, whatever happens."""
    instance = Gauge()
    yield instance
    instance.release.set()


def bulkhead(
    max_concurrent: int = 2, max_queue: int = 3, max_wait: float = 0.0
) -> Bulkhead:
    policy = BulkheadPolicy(
        max_concurrent=max_concurrent, max_queue=max_queue, max_wait=max_wait
    )
    return Bulkhead(policy, integration="github")


def test_bulkhead_rejects_submit_past_capacity_at_once(gauge: Gauge) -> None:
    """With 2 running and 3 queued, the 6th submit raises immediately."""
    bh = bulkhead()
    futures = [bh.submit(gauge.work, n) for n in range(5)]
    assert gauge.until_active(2)
    with pytest.raises(BulkheadFullError) as info:
        bh.submit(gauge.work)
    assert info.value.integration == "github"
    assert bh.snapshot() == {
        "in_flight": 2,
        "queued": 3,
        "max_concurrent": 2,
        "rejected": 1,
    }
    gauge.release.set()
    assert [f.result(timeout=5.0) for f in futures] == [0, 1, 2, 3, 4]
    assert bh.submit(gauge.work, 9).result(timeout=5.0) == 9
    bh.shutdown()


def test_bulkhead_never_runs_more_than_max_concurrent(gauge: Gauge) -> None:
    """Ten submitted calls on three slots run at most three at a time."""
    bh = bulkhead(max_concurrent=3, max_queue=7)
    futures = [bh.submit(gauge.work) for _ in range(10)]
    assert gauge.until_active(3)
    assert bh.snapshot()["queued"] == 7
    assert gauge.active == 3
    gauge.release.set()
    for future in futures:
        future.result(timeout=5.0)
    assert gauge.peak == 3
    assert len(gauge.names) == 3
    assert all(n.startswith("revo-github") for n in gauge.names)
    bh.shutdown()


def test_bulkhead_direct_slots_count_against_submitted_calls(gauge: Gauge) -> None:
    """A slot held directly leaves one fewer for submitted calls."""
    bh = bulkhead(max_concurrent=2, max_queue=5)
    with bh.slot():
        futures = [bh.submit(gauge.work) for _ in range(4)]
        assert gauge.until_active(1)
        assert bh.snapshot()["in_flight"] == 2
        assert bh.snapshot()["queued"] == 3
        gauge.release.set()
        for future in futures:
            future.result(timeout=5.0)
    assert gauge.peak == 1
    assert bh.snapshot()["in_flight"] == 0
    bh.shutdown()


def test_bulkhead_slot_full_raises_without_waiting() -> None:
    """With max_wait 0 and every slot taken, slot() fails at once."""
    bh = bulkhead(max_concurrent=1)
    with bh.slot():
        outcome: list[BaseException] = []

        def other() -> None:
            try:
                with bh.slot():
                    pass
            except BulkheadFullError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=5.0)
    assert len(outcome) == 1
    assert bh.snapshot()["rejected"] == 1


def test_bulkhead_slot_waits_for_a_freed_slot() -> None:
    """A caller within max_wait gets the slot another caller gives back."""
    bh = bulkhead(max_concurrent=1, max_wait=10.0)
    entered = threading.Event()
    got: list[bool] = []

    def waiter() -> None:
        with bh.slot():
            got.append(True)
        entered.set()

    with bh.slot():
        thread = threading.Thread(target=waiter)
        thread.start()
        # Give the slot back only once the other thread is waiting for it.
        for _ in range(5000):
            with bh._lock:
                if bh._waiting:
                    break
            time.sleep(0.001)
        assert bh._waiting == 1
    thread.join(timeout=5.0)
    assert got == [True]
    assert bh.snapshot()["rejected"] == 0


def test_bulkhead_slot_is_reentrant_within_a_thread() -> None:
    """Nested slots in one thread use a single slot."""
    bh = bulkhead(max_concurrent=1)
    with bh.slot(), bh.slot():
        assert bh.snapshot()["in_flight"] == 1
    assert bh.snapshot()["in_flight"] == 0
    with bh.slot():
        pass


def test_bulkhead_submitted_call_can_take_a_direct_slot() -> None:
    """A submitted function entering slot() reuses its worker's slot."""
    bh = bulkhead(max_concurrent=1, max_queue=0)

    def nested() -> int:
        with bh.slot():
            return bh.snapshot()["in_flight"]

    assert bh.submit(nested).result(timeout=5.0) == 1
    bh.shutdown()


def test_bulkhead_failed_call_frees_its_place() -> None:
    """An exception in a submitted call reaches its future and frees capacity."""
    bh = bulkhead(max_concurrent=1, max_queue=0)

    def boom() -> None:
        raise KeyError("missing")

    future: Future[None] = bh.submit(boom)
    with pytest.raises(KeyError):
        future.result(timeout=5.0)
    assert bh.submit(lambda: 7).result(timeout=5.0) == 7
    assert bh.snapshot()["in_flight"] == 0
    bh.shutdown()


def test_bulkhead_submit_after_shutdown_is_refused() -> None:
    """Once shut down, the bulkhead accepts no more work."""
    bh = bulkhead()
    bh.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        bh.submit(lambda: 1)


def test_bulkhead_shutdown_cancels_queued_calls() -> None:
    """Shutting down finishes the running call and cancels the queued ones."""
    bh = Bulkhead(BulkheadPolicy(max_concurrent=1, max_queue=5), integration="t")
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def work(n: int) -> int:
        started.set()
        release.wait(5.0)
        ran.append(n)
        return n

    first = bh.submit(work, 0)
    queued = [bh.submit(work, n) for n in range(1, 5)]
    assert started.wait(5.0)
    threading.Timer(0.05, release.set).start()
    bh.shutdown(wait=True)
    assert first.result(timeout=1.0) == 0
    assert all(f.cancelled() for f in queued)
    assert ran == [0]
    with pytest.raises(ClientClosedError):
        bh.submit(work, 9)
