"""Client-side rate limiting: token buckets, one per scope of an integration.

A :class:`TokenBucket` is kept as a single number, the *theoretical arrival
time* of the generic cell rate algorithm: the instant at which the bucket
would be full again if nothing else were taken. Each reservation pushes that
instant forward by its cost, so callers that have to wait are served in the
order they reserved, and no reader ever has to loop or retry.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from ._config import LimiterPolicy
from ._exceptions import RateLimitedError

log = logging.getLogger(__name__)

__all__ = ["Limiter", "TokenBucket"]


class TokenBucket:
    """A token bucket that admits ``rate`` tokens a second, up to ``burst`` at once.

    The bucket starts full. Over any interval of length ``t`` it admits at
    most ``burst + rate * t`` tokens, whatever the pattern of calls, and a
    call to :meth:`pause_until` holds every admission back until the given
    time.

    Thread-safety: every method may be called from any thread. The clock is
    read before the lock is taken and the lock guards only arithmetic, so
    contention costs little; nothing here sleeps.

    :param rate: tokens added per second; must be positive.
    :param burst: most tokens the bucket holds; must be at least 1.
    :param clock: monotonic time source in seconds.
    """

    __slots__ = (
        "_burst",
        "_clock",
        "_interval",
        "_lock",
        "_paused_until",
        "_rate",
        "_tat",
        "_tolerance",
    )

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive finite number, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self._rate = float(rate)
        self._burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        # Seconds one token is worth, and the head start a full bucket gives.
        self._interval = 1.0 / rate
        self._tolerance = burst / rate
        # No reservation yet: the bucket counts as full from any moment on.
        self._tat = -math.inf
        self._paused_until = -math.inf

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """Most tokens the bucket can hold."""
        return self._burst

    def reserve(
        self, tokens: float = 1.0, *, max_wait: float | None = None
    ) -> float | None:
        """Reserve ``tokens`` and say how long to wait before using them.

        The reservation is committed at once: a caller that gets ``2.5`` back
        owns its tokens 2.5 seconds from now, and later callers queue behind
        it. When the wait would be longer than ``max_wait``, nothing is
        committed and ``None`` is returned.

        :param tokens: how many tokens to take; between 0 (exclusive) and
            ``burst``.
        :param max_wait: the longest acceptable wait in seconds (a negative
            value counts as 0); ``None`` accepts any wait.
        :return: seconds to wait (``0.0`` means now), or ``None``.
        :raises ValueError: if ``tokens`` is not in ``(0, burst]``.
        """
        if not 0 < tokens <= self._burst:
            raise ValueError(f"tokens must be in (0, {self._burst}], got {tokens!r}")
        limit = math.inf if max_wait is None else max(max_wait, 0.0)
        wait = self._reserve(self._clock(), tokens * self._interval, limit)
        if wait > limit:
            return None
        return wait if wait > 0.0 else 0.0

    def _reserve(self, now: float, cost: float, limit: float) -> float:
        """Commit a reservation costing ``cost`` seconds unless it waits past ``limit``.

        Returns the raw wait, which is negative when tokens were to spare;
        the reservation was committed exactly when the result is ``<= limit``.
        """
        with self._lock:
            tat = self._tat
            if tat < now:
                tat = now
            admit = tat + cost - self._tolerance
            if admit < self._paused_until:
                admit = self._paused_until
            wait = admit - now
            if wait <= limit:
                self._tat = tat + cost
        return wait

    def pause_until(self, when: float) -> None:
        """Admit nothing before the monotonic time ``when``.

        Reservations made during the pause are admitted from ``when`` on, in
        order, a full bucket's worth first and then at ``rate``. A pause never
        shortens an earlier, longer one.
        """
        with self._lock:
            if when > self._paused_until:
                self._paused_until = when
            # Tokens that would have accrued during the pause are dropped, so
            # the burst right after it is no larger than a full bucket.
            if when > self._tat:
                self._tat = when

    def snapshot(self) -> dict[str, float]:
        """Settings and state: ``rate``, ``burst``, ``available``, ``paused_for``.

        ``available`` may be fractional; it is ``0`` while callers are queued.
        """
        now = self._clock()
        with self._lock:
            tat = self._tat
            paused_until = self._paused_until
        ahead = tat - now if tat > now else 0.0
        available = (self._tolerance - ahead) * self._rate
        return {
            "rate": self._rate,
            "burst": float(self._burst),
            "available": min(float(self._burst), max(0.0, available)),
            "paused_for": max(0.0, paused_until - now),
        }


class Limiter:
    """The rate limiter of one integration: a :class:`TokenBucket` per scope.

    Every scope gets its own bucket with the policy's ``rate`` and ``burst``;
    ``"default"`` exists from the start and others are created on first use
    (for example when a server names the limit it enforces). Scopes are
    independent: taking a token from one leaves the others untouched.

    Thread-safety: shared by every thread that calls the integration. A call
    that has to wait sleeps with no lock held, its place in line already
    reserved.

    :param policy: rate, burst and the default longest wait.
    :param integration: name used in errors and log messages.
    :param clock: monotonic time source in seconds.
    :param sleep: how to wait; tests pass one that advances a fake clock.
    """

    def __init__(
        self,
        policy: LimiterPolicy,
        *,
        integration: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy
        self.integration = integration
        self._enabled = policy.enabled
        self._max_wait = policy.max_wait
        self._clock = clock
        self._sleep = sleep
        self._create_lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._bucket("default")

    def acquire(
        self,
        scope: str = "default",
        *,
        max_wait: float | None = None,
        pause_wait: float | None = None,
    ) -> float:
        """Take one token from ``scope``, sleeping until it is admitted.

        :param scope: which bucket to draw from.
        :param max_wait: longest acceptable wait in seconds (a negative value
            counts as 0); defaults to the policy's ``max_wait``.
        :param pause_wait: longest acceptable wait while the scope is paused
            at a server's request, when that should differ from ``max_wait``
            (the pipeline lets such pauses run up to the call's deadline).
        :return: the seconds slept (``0.0`` when a token was at hand).
        :raises RateLimitedError: if the wait would exceed ``max_wait``; its
            ``retry_at`` is the epoch time a call would be admitted.
        """
        if not self._enabled:
            return 0.0
        bucket = self._buckets.get(scope) or self._bucket(scope)
        limit = self._max_wait if max_wait is None else max_wait
        now = self._clock()
        # An unlocked read: a stale value only picks the other of two limits.
        if pause_wait is not None and bucket._paused_until > now:
            limit = max(limit, pause_wait)
        if limit < 0.0:  # a caller whose deadline has passed cannot wait at all
            limit = 0.0
        wait = bucket._reserve(now, bucket._interval, limit)
        if wait > limit:
            raise self._limited(scope, wait)
        if wait > 0.0:
            self._sleep(wait)
            return wait
        return 0.0

    def pause(self, scope: str, seconds: float) -> None:
        """Hold ``scope`` back for ``seconds``, as a server asked.

        A scope not seen before gets a bucket. Non-positive or non-finite
        durations are ignored.
        """
        if not (seconds > 0 and math.isfinite(seconds)):
            return
        bucket = self._buckets.get(scope) or self._bucket(scope)
        bucket.pause_until(self._clock() + seconds)
        log.info(
            "pausing %s scope %r for %.1f s at the server's request",
            self.integration or "integration",
            scope,
            seconds,
        )

    def snapshot(self) -> dict[str, dict[str, float]]:
        """:meth:`TokenBucket.snapshot` of every scope, by scope name."""
        return {scope: b.snapshot() for scope, b in list(self._buckets.items())}

    def _bucket(self, scope: str) -> TokenBucket:
        with self._create_lock:
            bucket = self._buckets.get(scope)
            if bucket is None:
                bucket = TokenBucket(
                    self.policy.rate, self.policy.burst, clock=self._clock
                )
                self._buckets[scope] = bucket
        return bucket

    def _limited(self, scope: str, wait: float) -> RateLimitedError:
        log.debug(
            "%s scope %r would wait %.3f s, more than allowed",
            self.integration or "integration",
            scope,
            wait,
        )
        return RateLimitedError(
            f"rate limit of {self.integration or 'integration'} scope {scope!r}: "
            f"next call admitted in {wait:.2f} s",
            integration=self.integration,
            retry_at=time.time() + wait,
            scope=scope,
        )
