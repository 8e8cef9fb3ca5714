"""Helpers of the retry loop: backoff delays, ``Retry-After`` parsing and the
retry budget.

Reason codes the retry loop reports with these helpers: ``budget_exhausted``
(the retry budget refused a retry), ``deadline`` (the next wait would pass
the call's deadline) and ``attempts_exhausted`` (no attempt left).
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable

from ._config import RetryPolicy

log = logging.getLogger(__name__)

__all__ = [
    "ATTEMPTS_EXHAUSTED",
    "BUDGET_EXHAUSTED",
    "DEADLINE",
    "RetryBudget",
    "backoff_delay",
    "parse_retry_after",
]

#: Reason codes of the retry loop's decision to stop.
BUDGET_EXHAUSTED = "budget_exhausted"
DEADLINE = "deadline"
ATTEMPTS_EXHAUSTED = "attempts_exhausted"

# Whole or decimal seconds; RFC 9110 allows only digits, the fraction is a
# common liberty. ASCII only: float() would accept other scripts' digits.
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)

# 2.0 ** 1024 overflows a float, and so does float(n) for a huge int n; past
# these bounds every delay is at its cap for any base a policy would use.
_MAX_EXPONENT = 1023
_MAX_MULTIPLE = 2**53


def backoff_delay(
    policy: RetryPolicy, retry_number: int, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``retry_number``.

    Retry 1 comes before the second attempt. ``exponential`` waits
    ``base_delay * 2 ** (n - 1)``, ``linear`` ``base_delay * n``, ``fixed``
    ``base_delay``, and ``immediate`` and ``none`` do not wait. The delay is
    capped at ``max_delay`` first and jittered after, uniformly over
    ``[capped / 2, capped]``, so waits at the cap stay spread out and never
    exceed it.

    :param policy: the retry policy.
    :param retry_number: 1 for the first retry; must be at least 1.
    :param rng: source of jitter; the :mod:`random` module's by default.
    :raises ValueError: if ``retry_number`` is less than 1.
    """
    if retry_number < 1:
        raise ValueError(f"retry_number starts at 1, got {retry_number!r}")

    base = policy.base_delay
    strategy = policy.strategy
    if strategy == "exponential":
        delay = base * 2.0 ** min(retry_number - 1, _MAX_EXPONENT)
    elif strategy == "linear":
        delay = base * min(retry_number, _MAX_MULTIPLE)
    elif strategy == "fixed":
        delay = base
    else:
        return 0.0

    capped = min(delay, policy.max_delay)
    if not policy.jitter or capped <= 0.0:
        return capped
    uniform = rng.uniform if rng is not None else random.uniform
    return min(capped, uniform(capped / 2.0, capped))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Read a ``Retry-After`` header as seconds from ``now``.

    Accepts delay-seconds (a fraction is rounded up to whole seconds, so
    ``"1.5"`` gives ``2.0``) or an HTTP date; a date without a zone counts
    as UTC and a date in the past gives ``0.0``. Anything else, negative,
    not finite or in another notation such as ``"1m0s"``, gives ``None``.
    Never raises.

    :param value: the header value, or ``None`` when it was absent.
    :param now: the current epoch time, which dates are measured from.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None

    if _SECONDS.fullmatch(text):
        seconds = float(text)
        if not math.isfinite(seconds):  # hundreds of digits overflow to inf
            return None
        return float(math.ceil(seconds))

    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        delta = when.timestamp() - now
    except Exception:  # the header is untrusted input: any failure means "no hint"
        return None
    if not math.isfinite(delta):
        return None
    return max(0.0, delta)


#: Buckets the budget's window is divided into; it slides one bucket at a time.
BUDGET_BUCKETS = 10


class RetryBudget:
    """Retries allowed as a share of recent requests, with a small floor.

    Over the last ``window`` seconds, at most ``ratio * requests +
    min_per_second * window`` retries are allowed: with the defaults, one
    retry for every five requests plus ten retries per ten seconds. When a
    dependency fails outright every caller's first attempt still goes out,
    but the retries stop adding load once the share is spent; a healthy
    dependency that fails now and then never notices the budget.

    Call :meth:`record_request` once per call (not per attempt) and
    :meth:`can_retry` before each retry; a ``True`` answer spends one retry.

    Thread-safety: shared by every thread of an integration. The clock is
    read before the lock is taken, the lock guards a few integer updates,
    and the window advances in tenths of ``window``, so history is dropped
    up to one tenth of a window early.

    :param ratio: retries allowed per request (``0.2`` = 20 %).
    :param min_per_second: retries per second allowed whatever the traffic.
    :param window: seconds of history.
    :param clock: monotonic time source in seconds.
    """

    __slots__ = (
        "_clock",
        "_floor",
        "_index",
        "_lock",
        "_ratio",
        "_requests",
        "_retries",
        "_total_requests",
        "_total_retries",
        "_width",
        "window",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_second: float = 1.0,
        window: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (ratio >= 0 and min_per_second >= 0 and window > 0):
            raise ValueError("ratio and min_per_second must be >= 0, window > 0")
        self._ratio = ratio
        self._floor = min_per_second * window
        self.window = window
        self._width = window / BUDGET_BUCKETS
        self._clock = clock
        self._lock = threading.Lock()
        self._requests = [0] * BUDGET_BUCKETS
        self._retries = [0] * BUDGET_BUCKETS
        self._index = 0  # absolute index of the newest bucket
        self._total_requests = 0
        self._total_retries = 0

    @classmethod
    def from_policy(
        cls, policy: RetryPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> RetryBudget | None:
        """The budget a retry policy asks for, or ``None`` when it has none."""
        if policy.budget_ratio is None:
            return None
        return cls(
            policy.budget_ratio,
            policy.budget_floor,
            policy.budget_window,
            clock=clock,
        )

    def record_request(self) -> None:
        """Count one call (its first attempt) towards the budget."""
        index = int(self._clock() // self._width)
        with self._lock:
            if index != self._index:
                self._slide(index)
            self._requests[index % BUDGET_BUCKETS] += 1
            self._total_requests += 1

    def can_retry(self) -> bool:
        """Spend one retry if the budget allows it.

        :return: ``True`` if the retry may be made (and is now counted),
            ``False`` if the budget is spent.
        """
        index = int(self._clock() // self._width)
        with self._lock:
            if index != self._index:
                self._slide(index)
            allowed = self._ratio * self._total_requests + self._floor
            if self._total_retries + 1 > allowed:
                return False
            self._retries[index % BUDGET_BUCKETS] += 1
            self._total_retries += 1
        return True

    def snapshot(self) -> dict[str, float]:
        """``requests`` and ``retries`` in the window, and ``available`` retries."""
        index = int(self._clock() // self._width)
        with self._lock:
            if index != self._index:
                self._slide(index)
            requests = self._total_requests
            retries = self._total_retries
        allowed = self._ratio * requests + self._floor
        return {
            "requests": float(requests),
            "retries": float(retries),
            "available": max(0.0, math.floor(allowed - retries)),
        }

    def _slide(self, index: int) -> None:
        """Drop the buckets the window has left behind (under the lock)."""
        steps = index - self._index
        if steps <= 0:
            return  # a clock read just before the newest bucket began
        for step in range(1, min(steps, BUDGET_BUCKETS) + 1):
            slot = (self._index + step) % BUDGET_BUCKETS
            self._total_requests -= self._requests[slot]
            self._total_retries -= self._retries[slot]
            self._requests[slot] = 0
            self._retries[slot] = 0
        self._index = index
