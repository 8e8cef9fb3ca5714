"""Tests of the token bucket and the per-scope limiter, on fake clocks."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revo_sdk import LimiterPolicy, RateLimitedError
from revo_sdk._limiter import WRITE_SCOPE, Limiter, TokenBucket, WindowLimit


class FakeClock:
    """A monotonic clock that moves only when told to.

    It remembers the value each thread read last, so a thread can turn the
    wait a reservation returned into an absolute admission time.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._local = threading.local()
        self._moved = threading.Condition()

    def __call__(self) -> float:
        value = self.now
        self._local.last = value
        return value

    @property
    def last_read(self) -> float:
        value: float = self._local.last
        return value

    def advance(self, seconds: float) -> None:
        with self._moved:
            self.now += seconds
            self._moved.notify_all()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def wait_until(self, when: float, timeout: float) -> bool:
        with self._moved:
            return self._moved.wait_for(lambda: self.now >= when, timeout)


def worst_excess(
    admissions: Sequence[tuple[float, float]], rate: float, burst: float
) -> float:
    """Largest amount by which any window exceeds ``burst + rate * length``."""
    events = sorted(admissions)
    prefix = [0.0]
    for _, tokens in events:
        prefix.append(prefix[-1] + tokens)
    worst = -math.inf
    for i, (start, _) in enumerate(events):
        for j in range(i, len(events)):
            taken = prefix[j + 1] - prefix[i]
            allowed = burst + rate * (events[j][0] - start)
            worst = max(worst, taken - allowed)
    return worst


def tolerance(rate: float, burst: float, span: float) -> float:
    """Rounding slack for float arithmetic over a run of ``span`` seconds."""
    return 1e-9 * (burst + rate * (span + 1.0))


# Operations on a bucket: ("advance", seconds, None), ("reserve", fraction of
# the burst, max_wait) and ("pause", seconds, None).
Op = tuple[str, float, "float | None"]
advance_op = st.tuples(st.just("advance"), st.floats(0.0, 3.0), st.none())
reserve_op = st.tuples(
    st.just("reserve"), st.floats(0.01, 1.0), st.one_of(st.none(), st.floats(0.0, 5.0))
)
pause_op = st.tuples(st.just("pause"), st.floats(0.0, 4.0), st.none())


class Run:
    """What a sequence of operations did to a fresh bucket."""

    def __init__(self, rate: float, burst: int) -> None:
        self.clock = FakeClock()
        self.bucket = TokenBucket(rate, burst, clock=self.clock)
        self.burst = burst
        self.admissions: list[tuple[float, float]] = []  # (admitted at, tokens)
        self.reserved_by: list[int] = []  # which operation reserved each
        self.pauses: list[tuple[int, float]] = []  # (operation, until)

    def apply(self, ops: Sequence[Op]) -> None:
        for index, (name, amount, max_wait) in enumerate(ops):
            now = self.clock.now
            if name == "advance":
                self.clock.advance(amount)
            elif name == "pause":
                self.bucket.pause_until(now + amount)
                self.pauses.append((index, now + amount))
            else:
                self.reserve(index, max(0.01, amount * self.burst), max_wait)

    def reserve(self, index: int, tokens: float, max_wait: float | None) -> None:
        now = self.clock.now
        wait = self.bucket.reserve(tokens, max_wait=max_wait)
        if wait is None:
            return
        assert wait >= 0.0
        assert max_wait is None or wait <= max_wait
        admit = now + wait
        if self.admissions:
            assert admit >= self.admissions[-1][0], "served out of reservation order"
        self.admissions.append((admit, tokens))
        self.reserved_by.append(index)

    @property
    def span(self) -> float:
        return max([self.clock.now] + [t for t, _ in self.admissions]) - 1000.0


@settings(max_examples=300)
@given(
    rate=st.floats(0.1, 100.0),
    burst=st.integers(1, 20),
    ops=st.lists(st.one_of(advance_op, reserve_op), max_size=60),
)
def test_bucket_never_admits_more_than_burst_plus_rate_times_window(
    rate: float, burst: int, ops: list[Op]
) -> None:
    """No window of length t ever sees more than burst + rate * t tokens admitted."""
    run = Run(rate, burst)
    run.apply(ops)
    excess = worst_excess(run.admissions, rate, burst)
    assert excess <= tolerance(rate, burst, run.span)


@settings(max_examples=200)
@given(
    rate=st.floats(0.1, 100.0),
    burst=st.integers(1, 20),
    ops=st.lists(st.one_of(advance_op, reserve_op, pause_op), max_size=60),
)
def test_bucket_bound_and_pauses_hold_together(
    rate: float, burst: int, ops: list[Op]
) -> None:
    """Pauses hold back later reservations and never let a larger burst through."""
    run = Run(rate, burst)
    run.apply(ops)
    excess = worst_excess(run.admissions, rate, burst)
    assert excess <= tolerance(rate, burst, run.span)
    for (admit, _), reserved_by in zip(run.admissions, run.reserved_by, strict=True):
        for paused_by, until in run.pauses:
            if reserved_by > paused_by:
                assert admit >= until - 1e-9


@settings(max_examples=4, deadline=None)
@given(
    rate=st.floats(20.0, 200.0),
    burst=st.integers(1, 8),
    max_wait=st.one_of(st.none(), st.floats(0.0, 0.5)),
)
def test_bucket_bound_holds_with_16_threads(
    rate: float, burst: int, max_wait: float | None
) -> None:
    """Sixteen threads reserving on a shared fake clock stay within the bound."""
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock=clock)
    admissions: list[tuple[float, float]] = []
    errors: list[BaseException] = []
    record = threading.Lock()

    interval = 1.0 / rate
    per_thread = 8

    def worker() -> None:
        try:
            got = 0
            for _ in range(5000):  # bounded; a few dozen attempts are usual
                if got == per_thread:
                    break
                wait = bucket.reserve(1.0, max_wait=max_wait)
                if wait is None:
                    # Turned away: try again once another token has accrued.
                    clock.wait_until(clock.last_read + interval, timeout=5.0)
                    continue
                got += 1
                admit = clock.last_read + wait
                with record:
                    admissions.append((admit, 1.0))
                # Use the token: block until fake time reaches the admission.
                assert clock.wait_until(admit, timeout=5.0)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20.0
    for _ in range(200_000):
        if not any(t.is_alive() for t in threads) or time.monotonic() > deadline:
            break
        clock.advance(0.5 * interval)
        time.sleep(0.0001)
    for thread in threads:
        thread.join(timeout=5.0)

    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    assert len(admissions) == 16 * per_thread
    span = clock.now - 1000.0
    assert worst_excess(admissions, rate, burst) <= tolerance(rate, burst, span)


def test_bucket_starts_full_and_refills_at_rate() -> None:
    """A new bucket admits a burst at once, then one token per 1/rate seconds."""
    clock = FakeClock()
    bucket = TokenBucket(2.0, 3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.5)
    assert bucket.reserve() == pytest.approx(1.0)
    clock.advance(1.0)
    assert bucket.reserve() == pytest.approx(0.5)


def test_bucket_idle_time_saves_at_most_a_burst() -> None:
    """However long the bucket idles, it holds no more than ``burst`` tokens."""
    clock = FakeClock()
    bucket = TokenBucket(1.0, 4, clock=clock)
    clock.advance(10_000.0)
    assert [bucket.reserve() for _ in range(4)] == [0.0] * 4
    assert bucket.reserve() == pytest.approx(1.0)


def test_bucket_reserve_past_max_wait_commits_nothing() -> None:
    """A reservation refused for its wait leaves the queue as it was."""
    clock = FakeClock()
    bucket = TokenBucket(1.0, 1, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve(max_wait=0.5) is None
    assert bucket.reserve(max_wait=0.0) is None
    assert bucket.reserve(max_wait=1.0) == pytest.approx(1.0)


def test_bucket_rejects_token_counts_outside_burst() -> None:
    """Taking more than a burst, or nothing, is a programming error."""
    bucket = TokenBucket(1.0, 2, clock=FakeClock())
    with pytest.raises(ValueError, match="tokens"):
        bucket.reserve(3.0)
    with pytest.raises(ValueError, match="tokens"):
        bucket.reserve(0.0)


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.0, 1), (-1.0, 1), (math.nan, 1), (1.0, 0)]
)
def test_bucket_rejects_invalid_settings(rate: float, burst: int) -> None:
    """A non-positive rate or an empty burst cannot make a bucket."""
    with pytest.raises(ValueError, match=r"rate|burst"):
        TokenBucket(rate, burst)


def test_bucket_pause_holds_back_then_admits_a_burst() -> None:
    """During a pause nothing is admitted; at its end a full burst is."""
    clock = FakeClock()
    bucket = TokenBucket(1.0, 2, clock=clock)
    bucket.pause_until(clock.now + 10.0)
    assert bucket.reserve(max_wait=5.0) is None
    assert bucket.reserve() == pytest.approx(10.0)
    assert bucket.reserve() == pytest.approx(10.0)
    assert bucket.reserve() == pytest.approx(11.0)


def test_bucket_pause_never_shortens_a_longer_one() -> None:
    """A shorter pause after a longer one leaves the longer in force."""
    clock = FakeClock()
    bucket = TokenBucket(1.0, 1, clock=clock)
    bucket.pause_until(clock.now + 10.0)
    bucket.pause_until(clock.now + 2.0)
    assert bucket.snapshot()["paused_for"] == pytest.approx(10.0)


def test_bucket_snapshot_reports_tokens_and_pause() -> None:
    """The snapshot shows settings, tokens left and the pause remaining."""
    clock = FakeClock()
    bucket = TokenBucket(4.0, 5, clock=clock)
    assert bucket.snapshot() == {
        "rate": 4.0,
        "burst": 5.0,
        "available": 5.0,
        "paused_for": 0.0,
        "pace_interval": 0.0,
    }
    bucket.reserve(3.0)
    assert bucket.snapshot()["available"] == pytest.approx(2.0)
    clock.advance(0.25)
    assert bucket.snapshot()["available"] == pytest.approx(3.0)
    for _ in range(5):
        bucket.reserve()
    assert bucket.snapshot()["available"] == 0.0


def limiter(
    clock: FakeClock, *, rate: float = 2.0, burst: int = 2, max_wait: float = 30.0
) -> Limiter:
    """A limiter for "github" on ``clock`` whose sleeps advance it."""
    policy = LimiterPolicy(rate=rate, burst=burst, max_wait=max_wait)
    return Limiter(policy, integration="github", clock=clock, sleep=clock.sleep)


def test_limiter_acquire_admits_burst_without_sleeping() -> None:
    """Calls within the burst return 0.0 and never sleep."""
    clock = FakeClock()
    lim = limiter(clock)
    assert lim.acquire() == 0.0
    assert lim.acquire() == 0.0
    assert clock.sleeps == []


def test_limiter_acquire_sleeps_its_reserved_wait() -> None:
    """A call past the burst sleeps exactly its place in line and reports it."""
    clock = FakeClock()
    lim = limiter(clock)
    lim.acquire()
    lim.acquire()
    assert lim.acquire() == pytest.approx(0.5)
    assert clock.sleeps == [pytest.approx(0.5)]


def test_limiter_acquire_sleeps_with_no_lock_held() -> None:
    """The bucket's lock is free while the caller sleeps."""
    clock = FakeClock()
    lim = limiter(clock, burst=1)
    bucket = lim._buckets["default"]
    held: list[bool] = []

    def sleep(seconds: float) -> None:
        free = bucket._lock.acquire(blocking=False)
        if free:
            bucket._lock.release()
        held.append(not free)
        clock.advance(seconds)

    lim._sleep = sleep
    lim.acquire()
    lim.acquire()
    assert held == [False]


def test_limiter_acquire_raises_when_wait_exceeds_max_wait() -> None:
    """A wait longer than max_wait raises RateLimitedError with its context."""
    clock = FakeClock()
    lim = limiter(clock, rate=1.0, burst=1, max_wait=0.5)
    lim.acquire()
    before = time.time()
    with pytest.raises(RateLimitedError) as info:
        lim.acquire()
    after = time.time()
    assert info.value.integration == "github"
    assert info.value.scope == "default"
    assert info.value.retry_at is not None
    assert before + 1.0 <= info.value.retry_at <= after + 1.0
    assert clock.sleeps == []


def test_limiter_acquire_explicit_max_wait_overrides_policy() -> None:
    """A per-call max_wait of 0 fails fast even when the policy would wait."""
    clock = FakeClock()
    lim = limiter(clock, burst=1)
    lim.acquire()
    with pytest.raises(RateLimitedError):
        lim.acquire(max_wait=0.0)
    assert lim.acquire(max_wait=10.0) == pytest.approx(0.5)


def test_limiter_disabled_policy_never_waits() -> None:
    """A disabled limiter admits every call at once."""
    clock = FakeClock()
    lim = Limiter(
        LimiterPolicy(rate=0.001, burst=1, enabled=False),
        clock=clock,
        sleep=clock.sleep,
    )
    lim.pause("default", 100.0)
    assert [lim.acquire() for _ in range(50)] == [0.0] * 50
    assert clock.sleeps == []


def test_limiter_scopes_are_independent() -> None:
    """Emptying one scope leaves another scope's tokens untouched."""
    clock = FakeClock()
    lim = limiter(clock, burst=1, max_wait=0.0)
    lim.acquire("search")
    with pytest.raises(RateLimitedError) as info:
        lim.acquire("search")
    assert info.value.scope == "search"
    assert lim.acquire("core") == 0.0
    assert lim.acquire() == 0.0


def test_limiter_pause_delays_only_that_scope() -> None:
    """A server hint pauses its scope; other scopes carry on."""
    clock = FakeClock()
    lim = limiter(clock)
    lim.pause("core", 60.0)
    assert lim.acquire("default") == 0.0
    assert lim.acquire("core", max_wait=120.0) == pytest.approx(60.0)
    assert set(lim.snapshot()) == {"default", "core"}


@pytest.mark.parametrize("seconds", [0.0, -5.0, math.nan, math.inf])
def test_limiter_pause_ignores_meaningless_durations(seconds: float) -> None:
    """Zero, negative and non-finite pauses change nothing."""
    clock = FakeClock()
    lim = limiter(clock)
    lim.pause("default", seconds)
    assert lim.snapshot()["default"]["paused_for"] == 0.0


def test_limiter_snapshot_lists_every_scope() -> None:
    """The snapshot has one bucket snapshot per scope, default included."""
    clock = FakeClock()
    lim = limiter(clock)
    lim.acquire("chat.postMessage")
    snap = lim.snapshot()
    assert snap["default"]["available"] == 2.0
    assert snap["chat.postMessage"]["available"] == pytest.approx(1.0)


def test_limiter_negative_max_wait_counts_as_no_wait() -> None:
    """A caller out of time still gets a spare token but never waits for one."""
    clock = FakeClock()
    lim = limiter(clock, burst=1)
    assert lim.acquire(max_wait=-3.0) == 0.0
    before = time.time()
    with pytest.raises(RateLimitedError) as info:
        lim.acquire(max_wait=-3.0)
    assert info.value.retry_at is not None
    assert info.value.retry_at >= before + 0.5
    assert clock.sleeps == []


def test_limiter_pause_wait_extends_the_limit_only_while_paused() -> None:
    """pause_wait lets a server pause be waited out; pacing keeps max_wait."""
    clock = FakeClock()
    lim = limiter(clock, rate=1.0, burst=1, max_wait=5.0)
    lim.pause("default", 40)
    assert lim.acquire(pause_wait=60) == pytest.approx(40)
    with pytest.raises(RateLimitedError):
        lim.acquire(max_wait=0.5, pause_wait=60)  # pacing wait, not paused: 1 s > 0.5


def test_limiter_pause_longer_than_pause_wait_raises() -> None:
    """A pause longer than pause_wait raises instead of sleeping past it."""
    clock = FakeClock()
    lim = limiter(clock, max_wait=5.0)
    lim.pause("search", 90)
    with pytest.raises(RateLimitedError) as info:
        lim.acquire("search", pause_wait=60)
    assert info.value.scope == "search"
    assert clock.sleeps == []


# -- window mode, weights, pacing and spacing ---------------------------------


def window_excess(admissions: Sequence[tuple[float, float]], window: float) -> float:
    """Most tokens admitted in any half-open interval ``[t, t + window)``."""
    events = sorted(admissions)
    most = 0.0
    for i, (start, _) in enumerate(events):
        taken = sum(k for t, k in events[i:] if t < start + window - 1e-9)
        most = max(most, taken)
    return most


@settings(max_examples=200)
@given(
    limit=st.integers(1, 10),
    window=st.floats(0.1, 5.0),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("advance"), st.floats(0.0, 3.0), st.none()),
            st.tuples(
                st.just("reserve"),
                st.integers(1, 3).map(float),
                st.one_of(st.none(), st.floats(0.0, 2.0)),
            ),
            st.tuples(st.just("pause"), st.floats(0.0, 4.0), st.none()),
        ),
        max_size=60,
    ),
)
def test_window_never_admits_more_than_limit_in_any_window(
    limit: int, window: float, ops: list[Op]
) -> None:
    """Whatever the calls, weights and pauses, no window holds more than limit."""
    clock = FakeClock()
    bucket = WindowLimit(limit, window, clock=clock)
    admissions: list[tuple[float, float]] = []
    for name, amount, max_wait in ops:
        if name == "advance":
            clock.advance(amount)
        elif name == "pause":
            bucket.pause_until(clock.now + amount)
        elif amount <= limit:
            wait = bucket.reserve(amount, max_wait=max_wait)
            if wait is not None:
                assert max_wait is None or wait <= max_wait
                admit = clock.now + wait
                assert not admissions or admit >= admissions[-1][0]
                admissions.append((admit, amount))
    assert window_excess(admissions, window) <= limit


@settings(max_examples=4, deadline=None)
@given(
    limit=st.integers(1, 8),
    window=st.floats(0.05, 1.0),
    mode=st.sampled_from(["token", "window"]),
)
def test_limiter_contract_holds_with_16_threads(
    limit: int, window: float, mode: str
) -> None:
    """Sixteen threads with weights 1-2 on a moving fake clock keep the contract."""
    clock = FakeClock()
    if mode == "window":
        bucket: TokenBucket | WindowLimit = WindowLimit(limit + 1, window, clock=clock)
    else:
        bucket = TokenBucket((limit + 1) / window, limit + 1, clock=clock)
    admissions: list[tuple[float, float]] = []
    record = threading.Lock()
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for i in range(12):
                tokens = float(1 + (seed + i) % 2)
                wait = bucket.reserve(tokens, max_wait=None if i % 3 else 0.0)
                if wait is not None:
                    with record:
                        admissions.append((clock.last_read + wait, tokens))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for _ in range(2000):
        if not any(t.is_alive() for t in threads):
            break
        clock.advance(window / 7)
        time.sleep(0.0001)
    for thread in threads:
        thread.join(timeout=5.0)
    assert not errors, errors
    assert admissions
    if mode == "window":
        assert window_excess(admissions, window) <= limit + 1
    else:
        rate = (limit + 1) / window
        span = clock.now - 1000.0
        excess = worst_excess(admissions, rate, limit + 1)
        assert excess <= tolerance(rate, limit + 1, span)


def test_window_refuses_a_burst_beyond_the_quota() -> None:
    """Three a second: the fourth call waits for the first to leave the window."""
    clock = FakeClock()
    bucket = WindowLimit(3, 1.0, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve(max_wait=0.0) is None
    clock.advance(0.25)
    assert bucket.reserve() == pytest.approx(0.75)
    assert bucket.snapshot()["available"] == 0.0


def test_limiter_window_policy_builds_window_buckets() -> None:
    """LimiterPolicy(window=, limit=) gives every scope a strict window."""
    clock = FakeClock()
    lim = Limiter(
        LimiterPolicy(window=60.0, limit=2, max_wait=0.0),
        clock=clock,
        sleep=clock.sleep,
    )
    lim.acquire("search")
    lim.acquire("search")
    with pytest.raises(RateLimitedError, match="over_max_wait"):
        lim.acquire("search")
    assert lim.snapshot()["search"]["limit"] == 2.0


def test_limiter_weighted_acquire_takes_that_many_tokens() -> None:
    """acquire(tokens=3) costs three tokens of the bucket."""
    clock = FakeClock()
    lim = Limiter(LimiterPolicy(rate=1.0, burst=4), clock=clock, sleep=clock.sleep)
    assert lim.acquire(tokens=3) == 0.0
    assert lim.snapshot()["default"]["available"] == pytest.approx(1.0)
    assert lim.acquire(tokens=2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tokens"):
        lim.acquire(tokens=5)


def test_limiter_fail_fast_reserves_nothing() -> None:
    """max_wait=0 raises at once when no token is at hand and takes none."""
    clock = FakeClock()
    lim = Limiter(LimiterPolicy(rate=1.0, burst=1), clock=clock, sleep=clock.sleep)
    lim.acquire()
    with pytest.raises(RateLimitedError):
        lim.acquire(max_wait=0.0)
    clock.advance(1.0)
    assert lim.acquire(max_wait=0.0) == 0.0


def test_limiter_waiters_are_served_in_arrival_order() -> None:
    """Each waiter's reserved wait is longer than the one before: first come first."""
    clock = FakeClock()
    bucket = TokenBucket(2.0, 1, clock=clock)
    waits = [bucket.reserve() or 0.0 for _ in range(5)]
    assert waits == sorted(waits)
    assert waits == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


def make_limiter(clock: FakeClock, **kw: object) -> Limiter:
    """A limiter on ``clock`` whose wall clock reads 10,000 at clock 1,000."""
    policy = LimiterPolicy(**kw)  # type: ignore[arg-type]  # test-only kwargs
    return Limiter(
        policy, clock=clock, sleep=clock.sleep, wall=lambda: clock.now + 9000.0
    )


def test_limiter_observe_spreads_a_low_quota_until_reset() -> None:
    """Four calls left for 20 s: calls are admitted 5 s apart, not in a burst."""
    clock = FakeClock()
    lim = make_limiter(clock, rate=100.0, burst=100)
    lim.observe("core", remaining=4, reset_at=10_020.0, limit=5000)
    waits = [lim.acquire("core", max_wait=60.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 5.0, 5.0, 5.0])
    clock.advance(5.0)  # the reset: the pace is over
    assert lim.snapshot()["core"]["pace_interval"] == 0.0


def test_limiter_observe_zero_remaining_pauses_until_reset() -> None:
    """Nothing left: the scope admits nothing before the reset."""
    clock = FakeClock()
    lim = make_limiter(clock)
    lim.observe("core", remaining=0, reset_at=10_030.0, limit=60)
    assert lim.snapshot()["core"]["paused_for"] == pytest.approx(30.0)
    with pytest.raises(RateLimitedError, match="paused"):
        lim.acquire("core", max_wait=1.0)


def test_limiter_observe_plenty_left_changes_nothing() -> None:
    """A high remaining count, or missing headers, leave the scope alone."""
    clock = FakeClock()
    lim = make_limiter(clock, rate=100.0, burst=100)
    lim.observe("core", remaining=4000, reset_at=10_020.0, limit=5000)
    lim.observe("core", remaining=None, reset_at=10_020.0)
    lim.observe("core", remaining=1, reset_at=None)
    lim.observe("core", remaining=1, reset_at=5.0)  # a reset in the past
    assert [lim.acquire("core") for _ in range(5)] == [0.0] * 5


def test_limiter_observe_new_window_lifts_the_pace() -> None:
    """A later, plentiful report for a later window ends the pacing."""
    clock = FakeClock()
    lim = make_limiter(clock, rate=100.0, burst=100)
    lim.observe("core", remaining=2, reset_at=10_100.0, limit=5000)
    assert lim.snapshot()["core"]["pace_interval"] == pytest.approx(50.0)
    lim.observe("core", remaining=5000, reset_at=13_600.0, limit=5000)
    assert lim.snapshot()["core"]["pace_interval"] == 0.0


def test_limiter_write_interval_spaces_the_write_scope() -> None:
    """write_interval=1 admits writes one second apart, reads unaffected."""
    clock = FakeClock()
    lim = make_limiter(clock, rate=100.0, burst=100, write_interval=1.0)
    assert lim.write_interval == 1.0
    waits = [lim.acquire(WRITE_SCOPE) for _ in range(3)]
    assert waits == pytest.approx([0.0, 1.0, 1.0])
    assert make_limiter(clock).write_interval == 0.0


def test_limiter_space_and_spacing_policy() -> None:
    """space() and LimiterPolicy.spacing make a scope admit one call per interval."""
    clock = FakeClock()
    lim = make_limiter(clock, rate=100.0, burst=100, spacing=(("search", 2.0),))
    assert [lim.acquire("search") for _ in range(2)] == pytest.approx([0.0, 2.0])
    lim.pause("other", 5.0)
    lim.space("other", 3.0)
    assert lim.snapshot()["other"]["paused_for"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="spacing"):
        lim.space("x", 0.0)


def test_limiter_pace_wait_may_run_to_pause_wait() -> None:
    """A paced wait longer than max_wait is allowed up to pause_wait, like a pause."""
    clock = FakeClock()
    lim = make_limiter(clock, rate=100.0, burst=100, max_wait=1.0)
    lim.observe("core", remaining=2, reset_at=10_100.0, limit=5000)
    assert lim.acquire("core") == 0.0
    with pytest.raises(RateLimitedError, match="paced"):
        lim.acquire("core")
    assert lim.acquire("core", pause_wait=60.0) == pytest.approx(50.0)


def test_limiter_observe_caps_a_reset_years_away() -> None:
    """A garbled reset ten years out holds the scope back one hour at most."""
    clock = FakeClock()
    lim = make_limiter(clock)
    lim.observe("core", remaining=0, reset_at=10_000.0 + 10 * 365 * 86400, limit=60)
    assert lim.snapshot()["core"]["paused_for"] == pytest.approx(3600.0)
