"""Tests of the circuit breaker's states, permits and callbacks."""

from __future__ import annotations

import itertools
import logging
import math
import random
import threading
import time
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


# -- rate mode, slow calls, half-open limits, manual control, listeners -------


def rate_breaker(
    clock: FakeClock, changes: list[tuple[str, str]] | None = None, **kw: Any
) -> CircuitBreaker:
    """A failure-rate breaker on ``clock``: 50 % of at least 4 calls in the last 10."""
    settings_: dict[str, Any] = {
        "mode": "rate",
        "failure_rate_threshold": 0.5,
        "window_size": 10,
        "minimum_calls": 4,
        "recovery_timeout": 10.0,
    }
    settings_.update(kw)
    on_change = None if changes is None else (lambda o, n: changes.append((o, n)))
    return CircuitBreaker(
        BreakerPolicy(**settings_), integration="jira", clock=clock, on_change=on_change
    )


def succeed(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(), True)


def test_breaker_rate_mode_waits_for_minimum_calls() -> None:
    """Three failures out of three stay below minimum_calls=4 and keep it closed."""
    breaker = rate_breaker(FakeClock())
    fail(breaker, 3)
    assert breaker.state == CLOSED
    fail(breaker, 1)
    assert breaker.state == OPEN
    assert breaker.snapshot()["reason"] == "failure_rate"


def test_breaker_rate_mode_opens_at_the_failure_rate() -> None:
    """Alternating outcomes reach 50 % failures and open; 40 % does not."""
    breaker = rate_breaker(FakeClock())
    succeed(breaker, 6)
    fail(breaker, 4)  # 4 of 10
    assert breaker.state == CLOSED
    assert breaker.snapshot()["failure_rate"] == pytest.approx(0.4)
    fail(breaker, 1)  # the oldest success leaves the window: 5 of 10
    assert breaker.state == OPEN


def test_breaker_rate_mode_count_window_forgets_old_calls() -> None:
    """Failures pushed out of a count window no longer count."""
    breaker = rate_breaker(FakeClock(), window_size=4, minimum_calls=4)
    fail(breaker, 1)
    succeed(breaker, 4)
    assert breaker.snapshot()["failure_rate"] == 0.0
    fail(breaker, 1)
    assert breaker.state == CLOSED


def test_breaker_rate_mode_time_window_forgets_old_calls() -> None:
    """Failures older than window_duration no longer count."""
    clock = FakeClock()
    breaker = rate_breaker(clock, window="time", window_duration=10.0)
    fail(breaker, 3)
    clock.advance(11.0)
    succeed(breaker, 3)
    fail(breaker, 1)  # 1 of 4 in the window
    assert breaker.state == CLOSED
    assert breaker.snapshot()["calls"] == 4
    fail(breaker, 2)  # 3 of 6
    assert breaker.state == OPEN


def test_breaker_slow_success_counts_as_failure() -> None:
    """A success slower than slow_call_duration counts as a failure."""
    clock = FakeClock()
    policy = BreakerPolicy(failure_threshold=2, slow_call_duration=1.0)
    breaker = CircuitBreaker(policy, clock=clock)
    breaker.record(breaker.acquire(), True, duration=0.5)
    breaker.record(breaker.acquire(), True, duration=1.5)
    assert breaker.state == CLOSED
    breaker.record(breaker.acquire(), True, duration=2.0)
    assert breaker.state == OPEN
    assert breaker.snapshot()["slow_calls"] == 2


def test_breaker_rate_mode_half_open_round_decides_by_rate() -> None:
    """Four permits at 50 %: two successes are not enough, three close it."""
    clock = FakeClock()
    breaker = rate_breaker(clock, half_open_max_calls=4)
    fail(breaker, 4)
    clock.advance(10.0)
    permits = [breaker.acquire() for _ in range(4)]
    assert permits == [True] * 4
    breaker.record(True, False)
    breaker.record(True, True)
    assert breaker.state == HALF_OPEN
    breaker.record(True, True)
    assert breaker.state == HALF_OPEN
    breaker.record(True, True)
    assert breaker.state == CLOSED


def test_breaker_rate_mode_half_open_round_reopens_on_failures() -> None:
    """Two failures of four trials at 50 % reopen the circuit at once."""
    clock = FakeClock()
    breaker = rate_breaker(clock, half_open_max_calls=4)
    fail(breaker, 4)
    clock.advance(10.0)
    for _ in range(4):
        breaker.acquire()
    breaker.record(True, False)
    assert breaker.state == HALF_OPEN
    breaker.record(True, False)
    assert breaker.state == OPEN
    assert breaker.snapshot()["reason"] == "trial_failed"


def test_breaker_half_open_too_long_reopens() -> None:
    """A trial that never reports cannot keep the circuit half-open forever."""
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    policy = BreakerPolicy(
        failure_threshold=1, recovery_timeout=10.0, max_half_open_time=30.0
    )
    breaker = CircuitBreaker(
        policy, clock=clock, on_change=lambda o, n: changes.append((o, n))
    )
    fail(breaker, 1)
    clock.advance(10.0)
    assert breaker.acquire() is True  # a trial that hangs and never reports
    clock.advance(29.0)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    clock.advance(1.0)
    assert breaker.state == OPEN
    assert breaker.snapshot()["reason"] == "half_open_timeout"
    clock.advance(10.0)
    assert breaker.acquire() is True
    assert changes == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
    ]


def test_breaker_open_period_grows_and_resets() -> None:
    """Failed rounds double the open period up to its cap; a close resets it."""
    clock = FakeClock()
    policy = BreakerPolicy(
        failure_threshold=1,
        recovery_timeout=10.0,
        backoff_multiplier=2.0,
        max_recovery_timeout=35.0,
    )
    breaker = CircuitBreaker(policy, clock=clock)
    fail(breaker, 1)
    periods = []
    for _ in range(4):
        periods.append(breaker.snapshot()["retry_in"])
        clock.advance(100.0)
        breaker.record(breaker.acquire(), False)
    assert periods == [10.0, 20.0, 35.0, 35.0]
    clock.advance(100.0)
    breaker.record(breaker.acquire(), True)
    fail(breaker, 1)
    assert breaker.snapshot()["retry_in"] == 10.0


def test_breaker_force_open_refuses_until_closed() -> None:
    """force_open refuses every call, however long; force_closed admits again."""
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, changes)
    breaker.force_open()
    clock.advance(10_000.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_at == math.inf
    assert breaker.state == FORCED_OPEN
    assert breaker.snapshot()["retry_in"] == math.inf
    breaker.force_closed()
    assert breaker.acquire() is False
    assert changes == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]


def test_breaker_disable_admits_everything_until_reset() -> None:
    """disable() admits and ignores every call; reset() clears counts and closes."""
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 2)
    breaker.disable()
    fail(breaker, 10)
    assert breaker.state == DISABLED
    breaker.reset()
    assert breaker.state == CLOSED
    assert breaker.snapshot()["failures"] == 0
    assert breaker.snapshot()["reason"] == "reset"


def test_breaker_listeners_get_state_changes_with_reasons() -> None:
    """add_listener receives a StateChange per move; a broken one is skipped."""
    clock = FakeClock()
    seen: list[StateChange] = []

    def broken(change: StateChange) -> None:
        raise RuntimeError("listener bug")

    breaker = make(clock, threshold=1)
    breaker.add_listener(broken)
    breaker.add_listener(seen.append)
    fail(breaker, 1)
    clock.advance(10.0)
    breaker.record(breaker.acquire(), True)
    breaker.remove_listener(seen.append)
    breaker.force_open()
    assert [(c.old, c.new, c.reason) for c in seen] == [
        (CLOSED, OPEN, "consecutive_failures"),
        (OPEN, HALF_OPEN, "recovery_elapsed"),
        (HALF_OPEN, CLOSED, "trials_succeeded"),
    ]
    assert seen[0].open_for == 10.0
    assert seen[0].integration == "slack"


def test_breaker_attempt_releases_the_permit_on_every_exit() -> None:
    """attempt() frees a trial permit after an exception or a missing report."""
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 3)
    clock.advance(10.0)
    trials: list[bool] = []

    def hang() -> None:
        with breaker.attempt() as permit:
            trials.append(permit.trial)
            raise TimeoutError

    with pytest.raises(TimeoutError):
        hang()
    assert trials == [True]
    with breaker.attempt():
        pass  # an early return that reports nothing
    with breaker.attempt() as permit:
        permit.record(True, duration=0.1)
        permit.record(False)  # only the first report counts
    assert breaker.state == CLOSED


@pytest.mark.parametrize("mode", ["consecutive", "rate"])
def test_breaker_hanging_trial_lets_others_fail_fast(mode: str) -> None:
    """One permit, five threads, a trial that hangs: the other four are refused
    while the trial is still in flight."""
    clock = FakeClock()
    rate = mode == "rate"
    breaker = rate_breaker(clock, minimum_calls=3) if rate else make(clock)
    fail(breaker, 3)
    assert breaker.state == OPEN
    clock.advance(10.0)
    start = threading.Barrier(5)
    release = threading.Event()
    trials: list[bool] = []
    refused_in_flight: list[bool] = []
    lock = threading.Lock()

    def contender() -> None:
        start.wait(timeout=5.0)
        try:
            with breaker.attempt() as permit:
                with lock:
                    trials.append(permit.trial)
                release.wait(timeout=1.0)  # the dependency hangs
                permit.record(True)
        except CircuitOpenError:
            with lock:
                refused_in_flight.append(not release.is_set())

    threads = [threading.Thread(target=contender) for _ in range(5)]
    for thread in threads:
        thread.start()
    for _ in range(500):  # bounded: until the four refusals are in
        with lock:
            if len(refused_in_flight) == 4:
                break
        release.wait(0.01)
    release.set()
    for thread in threads:
        thread.join(timeout=5.0)
    assert trials == [True]
    assert refused_in_flight == [True] * 4
    assert breaker.state == CLOSED


@pytest.mark.parametrize("mode", ["consecutive", "rate"])
def test_breaker_closed_lets_10_callers_run_at_once(mode: str) -> None:
    """Ten threads calling a 0.2 s dependency through a closed breaker all overlap."""
    breaker = CircuitBreaker(BreakerPolicy(mode=mode, slow_call_duration=5.0))  # type: ignore[arg-type]  # mode is a literal
    start = threading.Barrier(10)
    lock = threading.Lock()
    in_flight = 0
    most = 0

    def caller() -> None:
        nonlocal in_flight, most
        start.wait(timeout=5.0)
        with breaker.attempt() as permit:
            with lock:
                in_flight += 1
                most = max(most, in_flight)
            time.sleep(0.2)  # the dependency
            with lock:
                in_flight -= 1
            permit.record(True, duration=0.2)

    threads = [threading.Thread(target=caller) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    assert most == 10


manual_or_auto = st.one_of(
    st.just(("acquire", 0.0)),
    st.tuples(st.just("report"), st.sampled_from([True, False, None])),
    st.tuples(st.just("slow"), st.floats(0.0, 3.0)),
    st.tuples(st.just("advance"), st.floats(0.0, 8.0)),
    st.tuples(
        st.just("manual"),
        st.sampled_from(["force_open", "force_closed", "disable", "reset"]),
    ),
)
MANUAL_TARGET = {
    "force_open": FORCED_OPEN,
    "force_closed": CLOSED,
    "disable": DISABLED,
    "reset": CLOSED,
}
MANUAL_REASON = {
    "force_open": "forced_open",
    "force_closed": "forced_closed",
    "disable": "disabled",
    "reset": "reset",
}


@settings(max_examples=600)
@given(
    mode=st.sampled_from(["consecutive", "rate"]),
    window=st.sampled_from(["count", "time"]),
    threshold=st.integers(1, 4),
    trials=st.integers(1, 3),
    multiplier=st.sampled_from([1.0, 2.0]),
    ops=st.lists(manual_or_auto, max_size=80),
    picks=st.randoms(use_true_random=False),
)
def test_breaker_every_mode_moves_only_along_legal_transitions(
    mode: str,
    window: str,
    threshold: int,
    trials: int,
    multiplier: float,
    ops: list[tuple[str, Any]],
    picks: random.Random,
) -> None:
    """In every mode, with slow calls and manual moves, automatic changes are
    legal, manual ones reach their target, permits stay bounded and the
    refusal only comes from a state that refuses."""
    clock = FakeClock()
    seen: list[StateChange] = []
    policy = BreakerPolicy(
        mode=mode,  # type: ignore[arg-type]  # sampled from the literal's values
        window=window,  # type: ignore[arg-type]  # likewise
        failure_threshold=threshold,
        failure_rate_threshold=0.5,
        window_size=4,
        window_duration=6.0,
        minimum_calls=threshold,
        half_open_max_calls=trials,
        recovery_timeout=5.0,
        max_half_open_time=12.0,
        backoff_multiplier=multiplier,
        max_recovery_timeout=20.0,
        slow_call_duration=1.0,
    )
    breaker = CircuitBreaker(policy, clock=clock)
    breaker.add_listener(seen.append)
    outstanding: list[bool] = []
    granted = released = 0

    for name, arg in ops:
        before = len(seen)
        got_trial = False
        if name == "acquire":
            try:
                got_trial = breaker.acquire()
            except CircuitOpenError:
                assert breaker.state in (OPEN, HALF_OPEN, FORCED_OPEN)
            else:
                outstanding.append(got_trial)
        elif name in ("report", "slow") and outstanding:
            trial = outstanding.pop(picks.randrange(len(outstanding)))
            if name == "slow":
                breaker.record(trial, True, duration=arg)
            else:
                breaker.record(trial, arg)
                released += trial and arg is None
        elif name == "advance":
            clock.advance(arg)
        elif name == "manual":
            getattr(breaker, arg)()
            assert breaker.state == MANUAL_TARGET[arg]
            for change in seen[before:]:
                assert change.new == MANUAL_TARGET[arg]
                assert change.reason == MANUAL_REASON[arg]
            granted = released = 0
            continue

        for change in seen[before:]:
            assert (change.old, change.new) in LEGAL, change
            if change.new == OPEN:
                assert 5.0 <= change.open_for <= 20.0
        if any(c.new == HALF_OPEN for c in seen[before:]):
            granted = released = 0
        granted += got_trial
        assert granted <= trials + released

    for earlier, later in itertools.pairwise(seen):
        assert earlier.new == later.old
    assert breaker.state == (seen[-1].new if seen else CLOSED)
