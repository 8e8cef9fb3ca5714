"""The circuit breaker that keeps calls away from an integration that is down.

States and the only automatic moves between them::

    closed --(too many failures, see below)--> open
    open --(open period elapsed, noticed lazily)--> half_open
    half_open --(the round's trials succeeded)--> closed
    half_open --(a trial failed, or max_half_open_time passed)--> open

"Too many failures" is ``failure_threshold`` failures in a row in
``consecutive`` mode, and a failure rate of at least
``failure_rate_threshold`` over a window of calls (the last ``window_size``
calls, or those of the last ``window_duration`` seconds), once the window
holds ``minimum_calls``, in ``rate`` mode. A success slower than
``slow_call_duration`` counts as a failure in both modes.

While half-open, at most ``half_open_max_calls`` callers get a trial permit;
everyone else is turned away at once rather than made to wait. Each time a
round fails the open period is multiplied by ``backoff_multiplier`` (up to
``max_recovery_timeout``); a close brings it back to ``recovery_timeout``.

Besides, an operator may move the breaker by hand from any state:
:meth:`CircuitBreaker.force_open` (``forced_open``: nothing passes until
told otherwise), :meth:`CircuitBreaker.force_closed` and
:meth:`CircuitBreaker.reset` (``closed``, counts cleared) and
:meth:`CircuitBreaker.disable` (``disabled``: everything passes, nothing is
counted).

Reason codes, found in :class:`StateChange` and in
:meth:`CircuitBreaker.snapshot`: ``consecutive_failures``, ``failure_rate``,
``trial_failed``, ``half_open_timeout``, ``recovery_elapsed``,
``trials_succeeded``, ``forced_open``, ``forced_closed``, ``disabled`` and
``reset``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ._config import BreakerPolicy
from ._exceptions import CircuitOpenError

log = logging.getLogger(__name__)

__all__ = [
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "OPEN",
    "CircuitBreaker",
    "Permit",
    "StateChange",
]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
FORCED_OPEN = "forced_open"
DISABLED = "disabled"

#: Buckets a time window is divided into; it advances one bucket at a time.
TIME_BUCKETS = 10


@dataclass(frozen=True, slots=True)
class StateChange:
    """A move of a circuit breaker from ``old`` to ``new``, and why.

    :param integration: the breaker's integration.
    :param old: the state left.
    :param new: the state entered.
    :param reason: one of the reason codes listed in :mod:`revo_sdk._breaker`.
    :param open_for: seconds until trial calls are allowed when ``new`` is
        ``open`` (``inf`` for ``forced_open``), else ``0``.
    """

    integration: str
    old: str
    new: str
    reason: str
    open_for: float = 0.0


Listener = Callable[[StateChange], None]


class CircuitBreaker:
    """A circuit breaker for one integration.

    Call :meth:`acquire` before each attempt and :meth:`record` after it,
    passing on what :meth:`acquire` returned::

        trial = breaker.acquire()  # raises CircuitOpenError when open
        started = time.perf_counter()
        try:
            response = send()
        except TransportError:
            breaker.record(trial, False)
            raise
        except BaseException:
            breaker.record(trial, None)  # say nothing, but free the permit
            raise
        breaker.record(trial, True, duration=time.perf_counter() - started)

    or let :meth:`attempt` do the bookkeeping of every exit path.

    Every trial permit must be given back through :meth:`record`, with
    ``success=None`` if the outcome says nothing about the integration's
    health; a permit that is never returned keeps the circuit half-open for
    at most ``max_half_open_time``.

    Thread-safety: shared by every thread that calls the integration. The
    clock is read before the lock is taken, the lock guards only counters,
    and ``on_change`` and the listeners run after the lock is released (so
    two changes made at nearly the same time by different threads may be
    reported in either order). The remote call is never made under the lock.
    A call admitted while closed that reports after the circuit has opened is
    ignored, as is a trial that reports after its half-open round ended; a
    trial from an earlier round that reports during a later one is counted in
    the later one.

    :param policy: mode, thresholds and timeouts; a disabled policy starts
        the breaker ``disabled``.
    :param integration: name used in errors and log messages.
    :param clock: monotonic time source in seconds.
    :param on_change: called as ``on_change(old, new)`` after each change of
        state; exceptions it raises are logged and swallowed.
    """

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        integration: str = "",
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.policy = policy
        self.integration = integration
        self._threshold = policy.failure_threshold
        self._recovery = policy.recovery_timeout
        self._max_trials = policy.half_open_max_calls
        self._rate_mode = policy.mode == "rate"
        self._time_window = self._rate_mode and policy.window == "time"
        self._rate_threshold = policy.failure_rate_threshold
        self._minimum = policy.minimum_calls
        slow = policy.slow_call_duration
        self._slow = math.inf if slow is None else slow
        half_open = policy.max_half_open_time
        self._max_half_open = math.inf if half_open is None else half_open
        self._clock = clock
        self._on_change = on_change
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

        self._state = CLOSED if policy.enabled else DISABLED
        self._reason = ""  # why the last change happened
        self._failures = 0  # consecutive failures
        self._retry_at = 0.0  # when an open circuit goes half-open
        self._open_period = self._recovery
        self._half_open_since = 0.0
        self._issued = 0  # trial permits handed out this half-open round
        self._successes = 0  # trial successes this half-open round
        self._trial_failures = 0  # trial failures this half-open round
        self._slow_calls = 0  # calls counted as failures for being slow

        # rate mode, count window: a ring of outcomes (1 = failure).
        self._ring = bytearray(policy.window_size)
        self._ring_size = policy.window_size
        self._ring_pos = 0
        # rate mode, time window: calls and failures per bucket.
        self._bucket_width = policy.window_duration / TIME_BUCKETS
        self._bucket_calls = [0] * TIME_BUCKETS
        self._bucket_failures = [0] * TIME_BUCKETS
        self._bucket_index = 0  # absolute index of the newest bucket
        # either window: what it holds now.
        self._calls = 0
        self._window_failures = 0

    # -- the protocol --------------------------------------------------------

    @property
    def state(self) -> str:
        """``closed``, ``open``, ``half_open``, ``forced_open`` or ``disabled``.

        Reading it notices an open period or a half-open round that is over.
        """
        state = self._state
        if state in (OPEN, HALF_OPEN):
            return self._poll(self._clock())
        return state

    def acquire(self) -> bool:
        """Ask to make a call.

        :return: ``True`` if the call is a half-open trial, ``False`` for an
            ordinary call while closed (and always when disabled).
        :raises CircuitOpenError: while open or forced open, or while
            half-open with every trial permit taken; ``retry_at`` is the
            monotonic time at which a trial may be allowed (``inf`` when
            forced open).
        """
        # Unlocked read: a call that slips through as the circuit opens is
        # one that was admitted just before, and its report is ignored.
        state = self._state
        if state in (CLOSED, DISABLED):
            return False

        now = self._clock()
        change = self._advance(now)
        with self._lock:
            state = self._state
            trial = state == HALF_OPEN and self._issued < self._max_trials
            if trial:
                self._issued += 1
            retry_at = self._retry_at
        if change is not None:
            self._changed(change)
        if trial:
            return True
        if state in (CLOSED, DISABLED):
            return False
        if state == HALF_OPEN:
            # Trials are under way; a permit may free up at any moment.
            retry_at = now
        raise CircuitOpenError(
            f"circuit of {self.integration or 'integration'} is {state}; "
            "no request was sent",
            integration=self.integration,
            retry_at=retry_at,
        )

    def record(
        self, trial: bool, success: bool | None, *, duration: float | None = None
    ) -> None:
        """Report how a call admitted by :meth:`acquire` went.

        :param trial: what :meth:`acquire` returned for the call.
        :param success: ``True`` or ``False`` to count the outcome, ``None``
            to give a trial permit back without counting anything.
        :param duration: seconds the call took; a success that took
            ``slow_call_duration`` or longer counts as a failure.
        """
        if success and duration is not None and duration >= self._slow:
            success = False
            self._slow_calls += 1  # a statistic; a lost update is harmless
        # Fast path: the usual success of an ordinary call changes nothing.
        state = self._state
        if state == CLOSED:
            if success and self._failures == 0 and not self._rate_mode:
                return
            if success is None:
                return
        elif state != HALF_OPEN or not trial:
            return

        # The clock is needed to open the circuit or to move a time window;
        # it is read, and the bucket index computed, before the lock.
        now = self._clock() if (success is False or self._time_window) else 0.0
        index = int(now // self._bucket_width) if self._time_window else 0
        failed = 0 if success else 1
        change: StateChange | None = None
        with self._lock:
            state = self._state
            if state == CLOSED:
                # Inline arithmetic only: under threads a lock stays cheap
                # while nothing inside it calls a function.
                self._failures = self._failures + 1 if failed else 0
                if not self._rate_mode:
                    if self._failures >= self._threshold:
                        change = self._open(now, "consecutive_failures", grow=False)
                else:
                    if self._time_window:
                        if index > self._bucket_index:
                            self._slide(index)
                        slot = self._bucket_index % TIME_BUCKETS
                        self._bucket_calls[slot] += 1
                        self._bucket_failures[slot] += failed
                        self._calls += 1
                    else:
                        ring = self._ring
                        pos = self._ring_pos
                        if self._calls == self._ring_size:
                            self._window_failures -= ring[pos]
                        else:
                            self._calls += 1
                        ring[pos] = failed
                        pos += 1
                        self._ring_pos = pos if pos < self._ring_size else 0
                    self._window_failures += failed
                    if (
                        failed
                        and self._calls >= self._minimum
                        and self._window_failures >= self._rate_threshold * self._calls
                    ):
                        change = self._open(now, "failure_rate", grow=False)
            elif state == HALF_OPEN and trial:
                change = self._count_trial(success, now)
        if change is not None:
            self._changed(change)

    @contextmanager
    def attempt(self) -> Iterator[Permit]:
        """Acquire, and give the permit back on every way out of the block.

        ::

            with breaker.attempt() as permit:
                response = send()
                permit.record(response.ok, duration=elapsed)

        An outcome the block does not record (an exception, an early return)
        frees the permit without counting anything; record a failure before
        raising when the exception says the integration is unhealthy.

        :raises CircuitOpenError: as :meth:`acquire` does, before the block.
        """
        permit = Permit(self, self.acquire())
        try:
            yield permit
        finally:
            if not permit.recorded:
                permit.record(None)

    # -- listeners and manual control ------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(change)`` with a :class:`StateChange` after each change.

        Listeners run in the thread that caused the change, with no lock
        held; exceptions they raise are logged and swallowed.
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (compared by ``==``, so a bound method
        given again matches); unknown listeners are ignored."""
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x != listener)

    def force_open(self) -> None:
        """Refuse every call until :meth:`force_closed`, :meth:`reset` or
        :meth:`disable` (for example while a dependency is under maintenance)."""
        self._manual(FORCED_OPEN, "forced_open")

    def force_closed(self) -> None:
        """Close the circuit now, with its counts cleared."""
        self._manual(CLOSED, "forced_closed")

    def disable(self) -> None:
        """Let every call through and count nothing until :meth:`reset`."""
        self._manual(DISABLED, "disabled")

    def reset(self) -> None:
        """Go back to closed with every count, and the open period, reset."""
        self._manual(CLOSED, "reset")

    def snapshot(self) -> dict[str, object]:
        """The breaker's state and counts.

        ``state``; consecutive ``failures``; ``retry_in`` seconds until trials
        (``inf`` when forced open); the ``reason`` of the last change; in
        ``rate`` mode also the ``calls`` in the window and its
        ``failure_rate``; ``slow_calls`` counted as failures so far.
        """
        now = self._clock()
        state = self._poll(now) if self._state in (OPEN, HALF_OPEN) else self._state
        with self._lock:
            failures = self._failures
            retry_at = self._retry_at
            calls = self._calls
            window_failures = self._window_failures
            reason = self._reason
        retry_in = 0.0
        if state == OPEN:
            retry_in = max(0.0, retry_at - now)
        elif state == FORCED_OPEN:
            retry_in = math.inf
        result: dict[str, object] = {
            "state": state,
            "failures": failures,
            "retry_in": retry_in,
            "reason": reason,
            "slow_calls": self._slow_calls,
        }
        if self._rate_mode:
            result["calls"] = calls
            result["failure_rate"] = window_failures / calls if calls else 0.0
        return result

    # -- internals (``_count_trial``, ``_slide``, ``_open``, ``_close`` and
    # ``_clear`` run under the lock) --

    def _poll(self, now: float) -> str:
        """Return the state at ``now``, after noticing what time has changed."""
        change = self._advance(now)
        if change is not None:
            self._changed(change)
        return self._state

    def _advance(self, now: float) -> StateChange | None:
        """Move open to half-open, or an overlong half-open to open, when due."""
        with self._lock:
            state = self._state
            if state == OPEN and now >= self._retry_at:
                self._state = HALF_OPEN
                self._reason = "recovery_elapsed"
                self._half_open_since = now
                self._issued = self._successes = self._trial_failures = 0
                return StateChange(self.integration, OPEN, HALF_OPEN, self._reason)
            if (
                state == HALF_OPEN
                and now - self._half_open_since >= self._max_half_open
            ):
                return self._open(now, "half_open_timeout", grow=True)
        return None

    def _slide(self, index: int) -> None:
        """Drop the buckets of a time window older than bucket ``index``."""
        steps = index - self._bucket_index
        if steps <= 0:
            return  # the newest bucket, or a clock read just before it
        for step in range(1, min(steps, TIME_BUCKETS) + 1):
            slot = (self._bucket_index + step) % TIME_BUCKETS
            self._calls -= self._bucket_calls[slot]
            self._window_failures -= self._bucket_failures[slot]
            self._bucket_calls[slot] = 0
            self._bucket_failures[slot] = 0
        self._bucket_index = index

    def _count_trial(self, success: bool | None, now: float) -> StateChange | None:
        if success is None:
            if self._issued > 0:
                self._issued -= 1
            return None
        if success:
            self._successes += 1
        else:
            self._failures += 1
            self._trial_failures += 1
        if not self._rate_mode:
            if not success:
                return self._open(now, "trial_failed", grow=True)
            if self._successes >= self._max_trials:
                return self._close("trials_succeeded")
            return None
        # Decide as soon as the rest of the round can no longer change the
        # verdict on its failure rate.
        trials = self._max_trials
        if self._trial_failures >= self._rate_threshold * trials:
            return self._open(now, "trial_failed", grow=True)
        if trials - self._successes < self._rate_threshold * trials:
            return self._close("trials_succeeded")
        return None

    def _open(self, now: float, reason: str, *, grow: bool) -> StateChange:
        old = self._state
        if grow:
            period = self._open_period * self.policy.backoff_multiplier
            self._open_period = min(period, self.policy.max_recovery_timeout)
        else:
            self._open_period = self._recovery
        self._state = OPEN
        self._reason = reason
        self._retry_at = now + self._open_period
        return StateChange(self.integration, old, OPEN, reason, self._open_period)

    def _close(self, reason: str) -> StateChange:
        old = self._state
        self._state = CLOSED
        self._reason = reason
        self._clear()
        return StateChange(self.integration, old, CLOSED, reason)

    def _clear(self) -> None:
        self._failures = 0
        self._open_period = self._recovery
        self._calls = self._window_failures = 0
        self._ring[:] = bytes(len(self._ring))
        self._ring_pos = 0
        self._bucket_calls = [0] * TIME_BUCKETS
        self._bucket_failures = [0] * TIME_BUCKETS

    def _manual(self, new: str, reason: str) -> None:
        with self._lock:
            old = self._state
            self._state = new
            self._reason = reason
            self._retry_at = math.inf if new == FORCED_OPEN else 0.0
            self._issued = self._successes = self._trial_failures = 0
            if new != FORCED_OPEN:
                self._clear()
        if old != new:
            open_for = math.inf if new == FORCED_OPEN else 0.0
            self._changed(StateChange(self.integration, old, new, reason, open_for))

    def _changed(self, change: StateChange) -> None:
        name = self.integration or "integration"
        if change.new == OPEN:
            log.warning(
                "circuit of %s opened (%s); trial calls in %.1f s",
                name,
                change.reason,
                change.open_for,
            )
        else:
            log.info(
                "circuit of %s moved from %s to %s (%s)",
                name,
                change.old,
                change.new,
                change.reason,
            )
        if self._on_change is not None:
            try:
                self._on_change(change.old, change.new)
            except Exception:
                log.warning("on_change callback of %s failed", name, exc_info=True)
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                log.warning("breaker listener of %s failed", name, exc_info=True)


class Permit:
    """The right to make one call, from :meth:`CircuitBreaker.attempt`.

    Thread-safety: belongs to the thread that made the call.
    """

    __slots__ = ("_breaker", "recorded", "trial")

    def __init__(self, breaker: CircuitBreaker, trial: bool) -> None:
        self._breaker = breaker
        #: whether this call is a half-open trial.
        self.trial = trial
        #: whether an outcome has been reported.
        self.recorded = False

    def record(self, success: bool | None, *, duration: float | None = None) -> None:
        """Report the outcome, as :meth:`CircuitBreaker.record`; only the first
        report counts."""
        if self.recorded:
            return
        self.recorded = True
        self._breaker.record(self.trial, success, duration=duration)
