"""Pure helpers of the retry loop: backoff delays and ``Retry-After`` parsing."""

from __future__ import annotations

import datetime
import email.utils
import math
import random
import re

from ._config import RetryPolicy

__all__ = ["backoff_delay", "parse_retry_after"]

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
