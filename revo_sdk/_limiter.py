"""Client-side rate limiting: one bucket per scope of an integration.

A scope is limited in one of two ways:

- :class:`TokenBucket` (``token`` mode, the default): ``rate`` tokens a
  second, up to ``burst`` at once. It is kept as a single number, the
  *theoretical arrival time* of the generic cell rate algorithm: the instant
  at which the bucket would be full again if nothing else were taken. Each
  reservation pushes that instant forward by its cost.
- :class:`WindowLimit` (``window`` mode): at most ``limit`` tokens in any
  ``window`` seconds, kept as a log of the last ``limit`` admission times (a
  sliding log; the strict form of a quota such as "30 a minute", with no
  burst on top of it).

Both commit a reservation at once and hand back the wait, so callers that
have to wait are served in the order they reserved (fair, first come first
served), nobody loops or retries, and nothing sleeps under a lock. Both can
be paused (a server said "not before T") and paced (a server said "N calls
left until T": they are spread evenly until T).

Reason codes, found in :class:`~revo_sdk.RateLimitedError` messages and the
log: ``over_max_wait`` (the wait exceeded what the caller accepts; ``0``
means fail fast), ``paused`` (the scope is held back at a server's request),
``paced`` (the scope is spreading a server's remaining quota).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from ._config import LimiterPolicy
from ._exceptions import RateLimitedError

log = logging.getLogger(__name__)

__all__ = ["WRITE_SCOPE", "Limiter", "TokenBucket", "WindowLimit"]

#: The scope the pipeline draws from for every write when
#: :attr:`LimiterPolicy.write_interval` is set.
WRITE_SCOPE = "write"

#: Longest a quota report (remaining / reset headers) may hold a scope back;
#: GitHub's hourly window is the longest documented.
MAX_OBSERVED_WAIT = 3600.0


class _Scope:
    """What every kind of bucket shares: a pause and a pace.

    Subclasses implement ``_admit``; the lock guards only arithmetic.
    """

    __slots__ = (
        "_clock",
        "_lock",
        "_pace_interval",
        "_pace_next",
        "_pace_until",
        "_paused_until",
    )

    #: most tokens one reservation may take.
    capacity: float

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._paused_until = -math.inf
        self._pace_until = -math.inf  # pacing applies to admissions before this
        self._pace_interval = 0.0  # seconds per token while paced
        self._pace_next = -math.inf  # earliest next paced admission

    def reserve(
        self, tokens: float = 1.0, *, max_wait: float | None = None
    ) -> float | None:
        """Reserve ``tokens`` and say how long to wait before using them.

        The reservation is committed at once: a caller that gets ``2.5`` back
        owns its tokens 2.5 seconds from now, and later callers queue behind
        it. When the wait would be longer than ``max_wait``, nothing is
        committed and ``None`` is returned.

        :param tokens: how many tokens to take; between 0 (exclusive) and
            :attr:`capacity`.
        :param max_wait: the longest acceptable wait in seconds (a negative
            value counts as 0); ``None`` accepts any wait.
        :return: seconds to wait (``0.0`` means now), or ``None``.
        :raises ValueError: if ``tokens`` is not in ``(0, capacity]``.
        """
        if not 0 < tokens <= self.capacity:
            raise ValueError(f"tokens must be in (0, {self.capacity}], got {tokens!r}")
        limit = math.inf if max_wait is None else max(max_wait, 0.0)
        wait = self._reserve(self._clock(), tokens, limit)
        if wait > limit:
            return None
        return wait if wait > 0.0 else 0.0

    def _reserve(self, now: float, tokens: float, limit: float) -> float:
        """Commit a reservation of ``tokens`` unless it waits past ``limit``.

        Returns the raw wait, which is negative when tokens were to spare;
        the reservation was committed exactly when the result is ``<= limit``.
        """
        raise NotImplementedError

    def _paced(self, admit: float, tokens: float) -> tuple[float, float]:
        """Apply the pace to an admission time; returns it and the next pace
        slot. Called under the lock, only while a pace is set."""
        if admit < self._pace_next:
            admit = self._pace_next
        return admit, admit + tokens * self._pace_interval

    def pause_until(self, when: float) -> None:
        """Admit nothing before the monotonic time ``when``.

        Reservations made during the pause are admitted from ``when`` on, in
        order. A pause never shortens an earlier, longer one.
        """
        with self._lock:
            if when > self._paused_until:
                self._paused_until = when
            self._after_pause(when)

    def _after_pause(self, when: float) -> None:
        """Hook run under the lock when a pause is set."""

    def pace(self, tokens: float, until: float, now: float) -> None:
        """Spread ``tokens`` evenly over the time from ``now`` to ``until``.

        Admissions before ``until`` are spaced ``(until - now) / tokens``
        apart (on top of the bucket's own limit); from ``until`` on the pace
        no longer applies. A later call replaces the pace.
        """
        if not (tokens > 0 and until > now):
            return
        interval = (until - now) / tokens
        with self._lock:
            self._pace_interval = interval
            self._pace_until = until
            if self._pace_next < now:
                self._pace_next = now

    def stop_pacing(self) -> None:
        """Drop the pace set by :meth:`pace`."""
        with self._lock:
            self._pace_until = -math.inf
            self._pace_next = -math.inf

    def _state(self, now: float) -> dict[str, float]:
        with self._lock:
            paused_until = self._paused_until
            pace_until = self._pace_until
            interval = self._pace_interval
        return {
            "paused_for": max(0.0, paused_until - now),
            "pace_interval": interval if pace_until > now else 0.0,
        }


class TokenBucket(_Scope):
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

    __slots__ = ("_burst", "_interval", "_rate", "_tat", "_tolerance", "capacity")

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
        super().__init__(clock)
        self._rate = float(rate)
        self._burst = burst
        self.capacity = float(burst)
        # Seconds one token is worth, and the head start a full bucket gives.
        self._interval = 1.0 / rate
        self._tolerance = burst / rate
        # No reservation yet: the bucket counts as full from any moment on.
        self._tat = -math.inf

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """Most tokens the bucket can hold."""
        return self._burst

    def _reserve(self, now: float, tokens: float, limit: float) -> float:
        cost = tokens * self._interval
        with self._lock:
            tat = self._tat
            if tat < now:
                tat = now
            admit = tat + cost - self._tolerance
            if admit < self._paused_until:
                admit = self._paused_until
            paced = admit < self._pace_until
            if paced:
                admit, pace_next = self._paced(admit, tokens)
            wait = admit - now
            if wait <= limit:
                self._tat = tat + cost
                if paced:
                    self._pace_next = pace_next
        return wait

    def _after_pause(self, when: float) -> None:
        # Tokens that would have accrued during the pause are dropped, so the
        # burst right after it is no larger than a full bucket.
        if when > self._tat:
            self._tat = when

    def snapshot(self) -> dict[str, float]:
        """Settings and state: ``rate``, ``burst``, ``available``,
        ``paused_for`` and ``pace_interval`` (``0`` when not paced).

        ``available`` may be fractional; it is ``0`` while callers are queued.
        """
        now = self._clock()
        state = self._state(now)
        tat = self._tat
        ahead = tat - now if tat > now else 0.0
        available = (self._tolerance - ahead) * self._rate
        return {
            "rate": self._rate,
            "burst": float(self._burst),
            "available": min(float(self._burst), max(0.0, available)),
            **state,
        }


class WindowLimit(_Scope):
    """At most ``limit`` tokens in any ``window`` seconds, strictly.

    A sliding log of the last ``limit`` admission times: a reservation of
    ``k`` tokens is admitted once the ``(limit - k + 1)``-th latest admission
    is ``window`` seconds old. Unlike a token bucket there is no burst on top
    of the quota: over any half-open interval of ``window`` seconds at most
    ``limit`` tokens are admitted. Weights are rounded up to whole tokens.

    Thread-safety: as :class:`TokenBucket`. Memory grows with ``limit``.

    :param limit: tokens per window; at least 1.
    :param window: seconds; positive.
    :param clock: monotonic time source in seconds.
    """

    __slots__ = ("_limit", "_log", "_window", "capacity")

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        if not (window > 0 and math.isfinite(window)):
            raise ValueError(f"window must be a positive number, got {window!r}")
        super().__init__(clock)
        self._limit = limit
        self._window = float(window)
        self.capacity = float(limit)
        self._log: deque[float] = deque(maxlen=limit)

    def _reserve(self, now: float, tokens: float, limit: float) -> float:
        count = 1 if tokens == 1.0 else math.ceil(tokens)
        with self._lock:
            entries = self._log
            admit = now
            if entries and entries[-1] > admit:
                admit = entries[-1]  # first come, first served
            # The entry that must have left the window before this one enters.
            depth = self._limit - count + 1
            if len(entries) >= depth:
                oldest = entries[-depth] + self._window
                if oldest > admit:
                    admit = oldest
            if admit < self._paused_until:
                admit = self._paused_until
            paced = admit < self._pace_until
            if paced:
                admit, pace_next = self._paced(admit, count)
            wait = admit - now
            if wait <= limit:
                if count == 1:
                    entries.append(admit)
                else:
                    entries.extend([admit] * count)
                if paced:
                    self._pace_next = pace_next
        return wait

    def snapshot(self) -> dict[str, float]:
        """Settings and state: ``limit``, ``window``, ``available`` (tokens
        admissible now), ``paused_for`` and ``pace_interval``."""
        now = self._clock()
        state = self._state(now)
        with self._lock:
            recent = [t for t in self._log if t > now - self._window]
        return {
            "limit": float(self._limit),
            "window": self._window,
            "available": float(max(0, self._limit - len(recent))),
            **state,
        }


Bucket = TokenBucket | WindowLimit


class Limiter:
    """The rate limiter of one integration: a bucket per scope.

    Every scope gets its own bucket: a :class:`TokenBucket` with the policy's
    ``rate`` and ``burst``, or in ``window`` mode a :class:`WindowLimit` of
    ``limit`` per ``window``. Scopes named in ``spacing`` (and the
    :data:`WRITE_SCOPE` when ``write_interval`` is set) admit one call per
    interval instead. ``"default"`` exists from the start and others are
    created on first use (for example when a server names the limit it
    enforces). Scopes are independent: taking a token from one leaves the
    others untouched.

    Thread-safety: shared by every thread that calls the integration. A call
    that has to wait sleeps with no lock held, its place in line already
    reserved, so waiters are served in the order they arrived.

    :param policy: mode, rates and the default longest wait.
    :param integration: name used in errors and log messages.
    :param clock: monotonic time source in seconds.
    :param sleep: how to wait; tests pass one that advances a fake clock.
    :param wall: epoch time source, to read servers' reset times.
    """

    def __init__(
        self,
        policy: LimiterPolicy,
        *,
        integration: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.integration = integration
        self._enabled = policy.enabled
        self._max_wait = policy.max_wait
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._create_lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}
        self._spacing: dict[str, float] = dict(policy.spacing)
        if policy.write_interval > 0:
            self._spacing.setdefault(WRITE_SCOPE, policy.write_interval)
        self._bucket("default")

    @property
    def write_interval(self) -> float:
        """Least seconds between writes; ``0`` when writes are not spaced."""
        return self._spacing.get(WRITE_SCOPE, 0.0) if self._enabled else 0.0

    def acquire(
        self,
        scope: str = "default",
        *,
        tokens: float = 1.0,
        max_wait: float | None = None,
        pause_wait: float | None = None,
    ) -> float:
        """Take ``tokens`` from ``scope``, sleeping until they are admitted.

        :param scope: which bucket to draw from.
        :param tokens: how many tokens the call costs (a weight).
        :param max_wait: longest acceptable wait in seconds (a negative value
            counts as 0, which fails fast); defaults to the policy's
            ``max_wait``. Pass what is left of a deadline to bound it.
        :param pause_wait: longest acceptable wait while the scope is paused
            at a server's request or paced to its remaining quota, when that
            should differ from ``max_wait`` (the pipeline lets such waits run
            up to the call's deadline).
        :return: the seconds slept (``0.0`` when a token was at hand).
        :raises RateLimitedError: if the wait would exceed ``max_wait``; its
            ``retry_at`` is the epoch time a call would be admitted. Nothing
            is reserved then.
        :raises ValueError: if ``tokens`` is more than the bucket can hold.
        """
        if not self._enabled:
            return 0.0
        bucket = self._buckets.get(scope) or self._bucket(scope)
        if tokens != 1.0 and not 0 < tokens <= bucket.capacity:
            raise ValueError(
                f"tokens must be in (0, {bucket.capacity}] for scope {scope!r}, "
                f"got {tokens!r}"
            )
        limit = self._max_wait if max_wait is None else max_wait
        now = self._clock()
        # Unlocked reads: a stale value only picks the other of two limits.
        paused = bucket._paused_until > now
        paced = bucket._pace_until > now
        if pause_wait is not None and (paused or paced):
            limit = max(limit, pause_wait)
        if limit < 0.0:  # a caller whose deadline has passed cannot wait at all
            limit = 0.0
        wait = bucket._reserve(now, tokens, limit)
        if wait > limit:
            raise self._limited(scope, wait, paused, paced)
        if wait > 0.0:
            self._sleep(wait)
            return wait
        return 0.0

    def pause(self, scope: str, seconds: float) -> None:
        """Hold ``scope`` back for ``seconds``, as a server asked.

        Calls already waiting on the scope wait too. A scope not seen before
        gets a bucket. Non-positive or non-finite durations are ignored.
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

    def observe(
        self,
        scope: str,
        remaining: int | None,
        reset_at: float | None,
        *,
        limit: int | None = None,
    ) -> None:
        """Pace ``scope`` by what a server said of its quota.

        When ``remaining`` is low (at most ``pace_below`` of ``limit``, or
        below the scope's capacity when ``limit`` is unknown) the remaining
        calls are spread evenly until ``reset_at``; with nothing remaining the
        scope is paused until then. A later report that is no longer low, for
        a window that ends after the paced one, lifts the pace. Missing
        values, resets in the past and non-finite numbers are ignored.

        :param scope: the scope the quota belongs to.
        :param remaining: calls left in the server's window.
        :param reset_at: epoch seconds at which the server's window resets.
        :param limit: the server's quota per window, when known.
        """
        if remaining is None or reset_at is None or not self._enabled:
            return
        bucket = self._buckets.get(scope) or self._bucket(scope)
        low = bucket.capacity if not limit else limit * self.policy.pace_below
        if remaining > low and bucket._pace_until == -math.inf:
            return  # the common case: plenty left, nothing paced
        now = self._clock()
        seconds = reset_at - self._wall()
        if not (0.0 < seconds < math.inf):
            return
        # A reset further away than any real quota window is a garbled
        # header: hold back at most MAX_OBSERVED_WAIT, never for years.
        seconds = min(seconds, MAX_OBSERVED_WAIT)
        until = now + seconds
        if remaining > low:
            if until > bucket._pace_until:
                bucket.stop_pacing()
            return
        if remaining <= 0:
            bucket.pause_until(until)
            log.info(
                "%s scope %r has no quota left; holding it back %.1f s",
                self.integration or "integration",
                scope,
                seconds,
            )
            return
        bucket.pace(remaining, until, now)
        log.debug(
            "%s scope %r: %d calls left, spread over %.1f s",
            self.integration or "integration",
            scope,
            remaining,
            seconds,
        )

    def space(self, scope: str, seconds: float) -> None:
        """Admit at most one call per ``seconds`` on ``scope`` from now on.

        The scope's bucket becomes a token bucket of rate ``1 / seconds``
        and burst 1 (a pause in force carries over). The pipeline spaces
        writes through :data:`WRITE_SCOPE`; a provider can space others
        (GitHub search, for example) through ``LimiterPolicy.spacing``.

        :raises ValueError: if ``seconds`` is not positive and finite.
        """
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"spacing must be positive seconds, got {seconds!r}")
        with self._create_lock:
            self._spacing[scope] = seconds
            old = self._buckets.get(scope)
            bucket = TokenBucket(1.0 / seconds, 1, clock=self._clock)
            if old is not None:
                bucket.pause_until(old._paused_until)
            self._buckets[scope] = bucket

    def snapshot(self) -> dict[str, dict[str, float]]:
        """The ``snapshot()`` of every scope's bucket, by scope name."""
        return {scope: b.snapshot() for scope, b in list(self._buckets.items())}

    def _bucket(self, scope: str) -> Bucket:
        with self._create_lock:
            bucket = self._buckets.get(scope)
            if bucket is None:
                bucket = self._new_bucket(scope)
                self._buckets[scope] = bucket
        return bucket

    def _new_bucket(self, scope: str) -> Bucket:
        policy = self.policy
        spacing = self._spacing.get(scope)
        if spacing is not None:
            return TokenBucket(1.0 / spacing, 1, clock=self._clock)
        if policy.mode == "window" and policy.limit and policy.window:
            return WindowLimit(policy.limit, policy.window, clock=self._clock)
        return TokenBucket(policy.rate, policy.burst, clock=self._clock)

    def _limited(
        self, scope: str, wait: float, paused: bool, paced: bool
    ) -> RateLimitedError:
        reason = "paused" if paused else "paced" if paced else "over_max_wait"
        log.debug(
            "%s scope %r would wait %.3f s, more than allowed (%s)",
            self.integration or "integration",
            scope,
            wait,
            reason,
        )
        return RateLimitedError(
            f"rate limit of {self.integration or 'integration'} scope {scope!r} "
            f"({reason}): next call admitted in {wait:.2f} s",
            integration=self.integration,
            retry_at=self._wall() + wait,
            scope=scope,
        )
