"""Tests of backoff delays and Retry-After parsing."""

from __future__ import annotations

import calendar
import datetime
import email.utils
import math
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revo_sdk import RetryPolicy
from revo_sdk._config import RetryStrategy
from revo_sdk._retry import RetryBudget, backoff_delay, parse_retry_after

STRATEGIES: tuple[RetryStrategy, ...] = (
    "exponential",
    "linear",
    "fixed",
    "immediate",
    "none",
)

# Wed, 21 Oct 2015 07:28:00 GMT as an epoch time.
OCT_21 = float(calendar.timegm((2015, 10, 21, 7, 28, 0)))


def policy(
    strategy: RetryStrategy = "exponential",
    *,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    jitter: bool = False,
) -> RetryPolicy:
    """A retry policy, without jitter unless asked for."""
    return RetryPolicy(
        strategy=strategy, base_delay=base_delay, max_delay=max_delay, jitter=jitter
    )


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("exponential", [0.5, 1.0, 2.0, 4.0, 8.0]),
        ("linear", [0.5, 1.0, 1.5, 2.0, 2.5]),
        ("fixed", [0.5] * 5),
        ("immediate", [0.0] * 5),
        ("none", [0.0] * 5),
    ],
)
def test_backoff_delay_follows_each_strategy(
    strategy: RetryStrategy, expected: list[float]
) -> None:
    """Without jitter every strategy gives its textbook sequence."""
    chosen = policy(strategy)
    assert [backoff_delay(chosen, n) for n in range(1, 6)] == expected


def test_backoff_delay_is_capped_at_max_delay() -> None:
    """Delays that would grow past max_delay stay at it."""
    chosen = policy(max_delay=3.0)
    assert [backoff_delay(chosen, n) for n in range(1, 7)] == [0.5, 1, 2, 3, 3, 3]


def test_backoff_delay_jitter_stays_in_upper_half() -> None:
    """With jitter a delay lies in [capped / 2, capped]."""
    chosen = policy(jitter=True)
    rng = random.Random(7)
    draws = [backoff_delay(chosen, 4, rng) for _ in range(500)]
    assert min(draws) >= 2.0
    assert max(draws) <= 4.0
    assert len(set(draws)) > 400


def test_backoff_delay_rejects_retry_zero() -> None:
    """Retry numbers start at 1."""
    with pytest.raises(ValueError, match="retry_number"):
        backoff_delay(policy(), 0)


@settings(max_examples=300)
@given(
    strategy=st.sampled_from(STRATEGIES),
    base=st.floats(0.0, 1000.0),
    cap=st.floats(0.0, 1000.0),
    jitter=st.booleans(),
    retry=st.one_of(st.integers(1, 100), st.integers(1, 10**400)),
    seed=st.integers(0, 2**32),
)
def test_backoff_delay_always_within_zero_and_max_delay(
    strategy: RetryStrategy,
    base: float,
    cap: float,
    jitter: bool,
    retry: int,
    seed: int,
) -> None:
    """Every strategy and retry number gives a delay in [0, max_delay]."""
    chosen = policy(strategy, base_delay=base, max_delay=cap, jitter=jitter)
    delay = backoff_delay(chosen, retry, random.Random(seed))
    assert 0.0 <= delay <= cap


def test_backoff_delay_jitter_spreads_delays_at_the_cap() -> None:
    """The 20th exponential delay, far past a 10 s cap, still spreads out."""
    chosen = policy(base_delay=1.0, max_delay=10.0, jitter=True)
    rng = random.Random(2024)
    draws = [backoff_delay(chosen, 20, rng) for _ in range(1000)]
    assert len(set(draws)) > 100
    assert max(draws) <= 10.0
    assert min(draws) >= 5.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 2.0),
        ("0.2", 1.0),
        (" 7 ", 7.0),
    ],
)
def test_parse_retry_after_reads_seconds(value: str, expected: float) -> None:
    """Delay-seconds parse, with fractions rounded up to whole seconds."""
    assert parse_retry_after(value, now=OCT_21) == expected


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:30:00 GMT",  # RFC 7231 IMF-fixdate
        "Wed, 21 Oct 2015 07:30:00 +0000",
        "Wed, 21 Oct 2015 07:30:00",  # no zone: UTC
        "Wed, 21 Oct 2015 07:30:00 -0000",  # "zone unknown": UTC
        "Wed, 21 Oct 2015 09:30:00 +0200",
    ],
)
def test_parse_retry_after_reads_http_dates(value: str) -> None:
    """HTTP dates give the seconds from now until them, naive ones as UTC."""
    assert parse_retry_after(value, now=OCT_21) == pytest.approx(120.0)


def test_parse_retry_after_past_date_means_now() -> None:
    """A date already gone gives 0, not a negative wait."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=OCT_21) == 0.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "-1", "+5", "1m0s", "nan", "NaN", "inf", "-inf", "1e3", "1.",
     ".5", "\u0661\u0662\u0660", "9" * 400, "soon", "Wed, 32 Oct 2015 07:28:00 GMT"],
)  # fmt: skip
def test_parse_retry_after_rejects_other_notations(value: str | None) -> None:
    """Negative, non-finite, unit-suffixed and garbage values give None."""
    assert parse_retry_after(value, now=OCT_21) is None


@settings(max_examples=500)
@given(value=st.text(), now=st.floats(allow_nan=True, allow_infinity=True))
def test_parse_retry_after_never_raises(value: str, now: float) -> None:
    """Arbitrary text parses to None or a finite, non-negative number of seconds."""
    result = parse_retry_after(value, now=now)
    assert result is None or (math.isfinite(result) and result >= 0.0)


@given(seconds=st.integers(0, 10**12))
def test_parse_retry_after_round_trips_integers(seconds: int) -> None:
    """Any whole number of seconds parses to itself."""
    assert parse_retry_after(str(seconds), now=0.0) == float(seconds)


@given(
    when=st.datetimes(
        min_value=datetime.datetime(1990, 1, 1),
        max_value=datetime.datetime(2100, 1, 1),
    ),
    offset=st.integers(-86_400, 86_400),
)
def test_parse_retry_after_round_trips_imf_fixdates(
    when: datetime.datetime, offset: int
) -> None:
    """A formatted HTTP date parses back to its distance from now."""
    when = when.replace(microsecond=0, tzinfo=datetime.timezone.utc)
    header = email.utils.format_datetime(when, usegmt=True)
    now = when.timestamp() - offset
    assert parse_retry_after(header, now=now) == pytest.approx(max(0, offset))


# -- the retry budget ---------------------------------------------------------


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_retry_budget_quiet_integration_gets_the_floor() -> None:
    """With no traffic, min_per_second * window retries are allowed, no more."""
    budget = RetryBudget(0.2, 1.0, 10.0, clock=FakeClock())
    granted = [budget.can_retry() for _ in range(15)]
    assert granted == [True] * 10 + [False] * 5


def test_retry_budget_allows_a_share_of_requests() -> None:
    """100 requests at 20 % with a floor of 10 allow exactly 30 retries."""
    budget = RetryBudget(0.2, 1.0, 10.0, clock=FakeClock())
    for _ in range(100):
        budget.record_request()
    assert sum(budget.can_retry() for _ in range(50)) == 30
    assert budget.snapshot() == {"requests": 100.0, "retries": 30.0, "available": 0.0}


def test_retry_budget_forgets_traffic_older_than_the_window() -> None:
    """Once the window has passed, old requests and retries no longer count."""
    clock = FakeClock()
    budget = RetryBudget(0.5, 0.0, 10.0, clock=clock)
    for _ in range(10):
        budget.record_request()
    assert sum(budget.can_retry() for _ in range(10)) == 5
    clock.now += 5.0
    assert not budget.can_retry()
    clock.now += 5.0
    assert budget.snapshot()["requests"] == 0.0
    assert not budget.can_retry()
    budget.record_request()
    budget.record_request()
    assert budget.can_retry()


def test_retry_budget_caps_the_load_of_an_outage() -> None:
    """1,000 failing calls that would each retry 3 times send about 1.2x, not 4x."""
    budget = RetryBudget(0.2, 1.0, 10.0, clock=FakeClock())
    sent = 0
    for _ in range(1000):
        budget.record_request()
        sent += 1
        for _ in range(3):
            if not budget.can_retry():
                break
            sent += 1
    assert sent <= 1000 * 1.2 + 10


def test_retry_budget_is_exact_under_threads() -> None:
    """Eight threads racing for retries get exactly the budget between them."""
    budget = RetryBudget(0.2, 1.0, 10.0, clock=FakeClock())
    for _ in range(50):
        budget.record_request()
    start = threading.Barrier(8)
    granted: list[int] = []
    lock = threading.Lock()

    def racer() -> None:
        start.wait(timeout=5.0)
        mine = sum(budget.can_retry() for _ in range(100))
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    assert sum(granted) == 20


@settings(max_examples=200)
@given(
    ratio=st.floats(0.0, 1.0),
    floor=st.floats(0.0, 2.0),
    ops=st.lists(
        st.one_of(
            st.just(("request", 0.0)),
            st.just(("retry", 0.0)),
            # Whole seconds: the window slides in tenths of its 10 s.
            st.tuples(st.just("advance"), st.integers(0, 4).map(float)),
        ),
        max_size=120,
    ),
)
def test_retry_budget_never_grants_more_than_its_share(
    ratio: float, floor: float, ops: list[tuple[str, float]]
) -> None:
    """Retries granted over the last window never exceed ratio * requests + floor."""
    clock = FakeClock()
    budget = RetryBudget(ratio, floor, 10.0, clock=clock)
    history: list[tuple[float, str]] = []
    for name, amount in ops:
        if name == "advance":
            clock.now += amount
        elif name == "request":
            budget.record_request()
            history.append((clock.now, name))
        elif budget.can_retry():
            history.append((clock.now, name))
            # Everything still counted lies within the last full window.
            recent = [kind for at, kind in history if at > clock.now - 10.0]
            retries = recent.count("retry")
            assert retries <= ratio * recent.count("request") + floor * 10.0 + 1e-9


def test_retry_budget_from_policy_follows_its_fields() -> None:
    """RetryPolicy's budget fields build the budget; budget_ratio=None builds none."""
    assert RetryBudget.from_policy(RetryPolicy(budget_ratio=None)) is None
    budget = RetryBudget.from_policy(
        RetryPolicy(budget_ratio=0.5, budget_floor=0.0, budget_window=4.0),
        clock=FakeClock(),
    )
    assert budget is not None
    budget.record_request()
    budget.record_request()
    assert [budget.can_retry(), budget.can_retry()] == [True, False]


@pytest.mark.parametrize(
    ("value", "expected"), [("1.5", 2.0), ("-1", None), ("1m0s", None)]
)
def test_parse_retry_after_issue_values_fall_back_without_crashing(
    value: str, expected: float | None
) -> None:
    """The values other clients choke on: a fraction rounds up, the rest are None."""
    assert parse_retry_after(value, now=OCT_21) == expected
