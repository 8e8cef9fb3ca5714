"""Tests of the circuit breaker's states, permits and callbacks."""

from __future__ import annotations

import itertools
import logging
import random
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revo_sdk import BreakerPolicy, CircuitOpenError
from revo_sdk._breaker import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    StateChange,
)

LEGAL = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED), (HALF_OPEN, OPEN)}


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 500.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(
    clock: FakeClock,
    changes: list[tuple[str, str]] | None = None,
    *,
    threshold: int = 3,
    recovery: float = 10.0,
    trials: int = 1,
    enabled: bool = True,
) -> CircuitBreaker:
    """A breaker for "slack" on ``clock`` that appends its changes to ``changes``."""
    policy = BreakerPolicy(
        failure_threshold=threshold,
        recovery_timeout=recovery,
        half_open_max_calls=trials,
        enabled=enabled,
    )
    on_change = None if changes is None else (lambda o, n: changes.append((o, n)))
    return CircuitBreaker(policy, integration="slack", clock=clock, on_change=on_change)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(), False)


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    """Three failures in a row open a breaker whose threshold is three."""
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, changes)
    fail(breaker, 2)
    assert breaker.state == CLOSED
    fail(breaker, 1)
    assert breaker.state == OPEN
    assert changes == [(CLOSED, OPEN)]


def test_breaker_success_resets_the_failure_count() -> None:
    """A success between failures keeps the breaker closed."""
    breaker = make(FakeClock())
    fail(breaker, 2)
    breaker.record(breaker.acquire(), True)
    fail(breaker, 2)
    assert breaker.state == CLOSED
    assert breaker.snapshot()["failures"] == 2


def test_breaker_open_refuses_calls_with_retry_time() -> None:
    """An open breaker raises CircuitOpenError naming when trials resume."""
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 3)
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.integration == "slack"
    assert info.value.retry_at == pytest.approx(510.0)
    snap = breaker.snapshot()
    assert (snap["state"], snap["failures"], snap["retry_in"]) == (OPEN, 3, 6.0)
    assert snap["reason"] == "consecutive_failures"


def test_breaker_goes_half_open_lazily_after_recovery() -> None:
    """Once the recovery timeout has passed, reading the state finds it half-open."""
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, changes)
    fail(breaker, 3)
    clock.advance(10.0)
    assert changes == [(CLOSED, OPEN)]
    assert breaker.state == HALF_OPEN
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_breaker_half_open_hands_out_limited_permits() -> None:
    """Half-open, only half_open_max_calls callers get a trial; others fail fast."""
    clock = FakeClock()
    breaker = make(clock, trials=2)
    fail(breaker, 3)
    clock.advance(10.0)
    assert breaker.acquire() is True
    assert breaker.acquire() is True
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_at == clock.now


def test_breaker_trial_successes_close_it() -> None:
    """As many trial successes as permits close the circuit."""
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, changes, trials=2)
    fail(breaker, 3)
    clock.advance(10.0)
    first, second = breaker.acquire(), breaker.acquire()
    breaker.record(first, True)
    assert breaker.state == HALF_OPEN
    breaker.record(second, True)
    assert breaker.state == CLOSED
    assert breaker.snapshot()["failures"] == 0
    assert changes[-1] == (HALF_OPEN, CLOSED)
    assert breaker.acquire() is False


def test_breaker_trial_failure_reopens_with_fresh_timeout() -> None:
    """A failed trial reopens the circuit for another full recovery timeout."""
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, changes)
    fail(breaker, 3)
    clock.advance(15.0)
    trial = breaker.acquire()
    clock.advance(2.0)
    breaker.record(trial, False)
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_at == pytest.approx(clock.now + 10.0)


def test_breaker_ignored_outcome_returns_the_permit() -> None:
    """record(trial, None) frees the permit without counting anything."""
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 3)
    clock.advance(10.0)
    trial = breaker.acquire()
    breaker.record(trial, None)
    assert breaker.state == HALF_OPEN
    assert breaker.acquire() is True


def test_breaker_late_report_of_ordinary_call_is_ignored() -> None:
    """A call admitted while closed that fails after opening changes nothing."""
    clock = FakeClock()
    breaker = make(clock)
    straggler = breaker.acquire()
    fail(breaker, 3)
    clock.advance(5.0)
    breaker.record(straggler, False)
    assert breaker.snapshot()["retry_in"] == pytest.approx(5.0)


def test_breaker_disabled_never_opens() -> None:
    """A disabled breaker admits every call and never raises."""
    breaker = make(FakeClock(), enabled=False)
    fail(breaker, 50)
    assert breaker.acquire() is False
    assert breaker.state == DISABLED


def test_breaker_callback_runs_without_the_lock() -> None:
    """on_change runs after the lock is released."""
    clock = FakeClock()
    held: list[bool] = []
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=1.0)
    breaker = CircuitBreaker(
        policy,
        clock=clock,
        on_change=lambda old, new: held.append(breaker._lock.locked()),
    )
    fail(breaker, 1)
    clock.advance(1.0)
    breaker.record(breaker.acquire(), True)
    assert held == [False, False, False]


def test_breaker_failing_callback_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception from on_change is logged and the breaker carries on."""

    def broken(old: str, new: str) -> None:
        raise RuntimeError("observer bug")

    policy = BreakerPolicy(failure_threshold=1)
    breaker = CircuitBreaker(policy, integration="jira", on_change=broken)
    with caplog.at_level(logging.WARNING, logger="revo_sdk._breaker"):
        fail(breaker, 1)
    assert breaker.state == OPEN
    assert "on_change callback of jira failed" in caplog.text


def test_breaker_half_open_with_5_threads_admits_exactly_1_trial() -> None:
    """Five threads racing for one half-open permit: one trial, four refusals."""
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 3)
    clock.advance(10.0)
    start = threading.Barrier(5)
    trials: list[bool] = []
    refused: list[CircuitOpenError] = []
    lock = threading.Lock()

    def contender() -> None:
        start.wait(timeout=5.0)
        try:
            got = breaker.acquire()
        except CircuitOpenError as exc:
            with lock:
                refused.append(exc)
        else:
            with lock:
                trials.append(got)

    threads = [threading.Thread(target=contender) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    assert trials == [True]
    assert len(refused) == 4


def test_breaker_concurrent_failures_open_it_once() -> None:
    """Eight threads failing together report a single closed->open change."""
    changes: list[tuple[str, str]] = []
    breaker = make(FakeClock(), changes, threshold=5)
    start = threading.Barrier(8)

    def failer() -> None:
        start.wait(timeout=5.0)
        for _ in range(20):
            try:
                trial = breaker.acquire()
            except CircuitOpenError:
                continue
            breaker.record(trial, False)

    threads = [threading.Thread(target=failer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    assert changes == [(CLOSED, OPEN)]


operation = st.one_of(
    st.just(("acquire", 0.0)),
    st.tuples(st.just("report"), st.sampled_from([True, False, None])),
    st.tuples(st.just("advance"), st.floats(0.0, 8.0)),
)


@settings(max_examples=400)
@given(
    threshold=st.integers(1, 4),
    trials=st.integers(1, 3),
    ops=st.lists(operation, max_size=80),
    picks=st.randoms(use_true_random=False),
)
def test_breaker_moves_only_along_legal_transitions(
    threshold: int, trials: int, ops: list[tuple[str, Any]], picks: random.Random
) -> None:
    """Random acquires, reports and clock moves only ever take legal transitions."""
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, changes, threshold=threshold, recovery=5.0, trials=trials)
    outstanding: list[bool] = []  # what acquire returned, per unreported call
    granted = released = 0  # trial permits of the current half-open round

    for name, arg in ops:
        before = len(changes)
        got_trial = False
        if name == "acquire":
            try:
                got_trial = breaker.acquire()
            except CircuitOpenError:
                assert breaker.state != CLOSED
            else:
                outstanding.append(got_trial)
        elif name == "report" and outstanding:
            trial = outstanding.pop(picks.randrange(len(outstanding)))
            breaker.record(trial, arg)
            released += trial and arg is None
        elif name == "advance":
            clock.advance(arg)

        if any(new == HALF_OPEN for _, new in changes[before:]):
            granted = released = 0
        granted += got_trial
        assert granted <= trials + released

    state = breaker.state
    assert all(change in LEGAL for change in changes), changes
    for (_, new), (old, _) in itertools.pairwise(changes):
        assert old == new, changes
    assert state == (changes[-1][1] if changes else CLOSED)
