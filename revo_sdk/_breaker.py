"""The circuit breaker that keeps calls away from an integration that is down.

States and the only moves between them::

    closed --(failure_threshold consecutive failures)--> open
    open --(recovery_timeout elapsed, noticed lazily)--> half_open
    half_open --(half_open_max_calls trial successes)--> closed
    half_open --(any trial failure)--> open

While half-open, at most ``half_open_max_calls`` callers get a trial permit;
everyone else is turned away at once rather than made to wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ._config import BreakerPolicy
from ._exceptions import CircuitOpenError

log = logging.getLogger(__name__)

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    """A circuit breaker for one integration.

    Call :meth:`acquire` before each attempt and :meth:`record` after it,
    passing on what :meth:`acquire` returned::

        trial = breaker.acquire()  # raises CircuitOpenError when open
        try:
            response = send()
        except TransportError:
            breaker.record(trial, False)
            raise
        breaker.record(trial, True)

    Every trial permit must be given back through :meth:`record`, with
    ``success=None`` if the outcome says nothing about the integration's
    health; a permit that is never returned keeps the circuit half-open.

    Thread-safety: shared by every thread that calls the integration. The
    clock is read before the lock is taken, the lock guards only counters,
    and ``on_change`` runs after the lock is released (so two changes made
    at nearly the same time by different threads may be reported in either
    order). A call admitted while closed that reports after the circuit has
    opened is ignored, as is a trial that reports after its half-open round
    ended; a trial from an earlier round that reports during a later one is
    counted in the later one.

    :param policy: thresholds and timeouts; a disabled policy makes
        :meth:`acquire` always return ``False`` and :meth:`record` a no-op.
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
        self._enabled = policy.enabled
        self._threshold = policy.failure_threshold
        self._recovery = policy.recovery_timeout
        self._max_trials = policy.half_open_max_calls
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0  # consecutive failures while closed
        self._retry_at = 0.0  # when an open circuit goes half-open
        self._issued = 0  # trial permits handed out this half-open round
        self._successes = 0  # trial successes this half-open round

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``.

        Reading it moves an open circuit whose recovery timeout has elapsed
        to half-open.
        """
        if self._state == CLOSED:
            return CLOSED
        return self._poll(self._clock())

    def acquire(self) -> bool:
        """Ask to make a call.

        :return: ``True`` if the call is a half-open trial, ``False`` for an
            ordinary call while closed (and always when disabled).
        :raises CircuitOpenError: while open, or while half-open with every
            trial permit taken; ``retry_at`` is the monotonic time at which
            a trial may be allowed.
        """
        # Unlocked read: a call that slips through as the circuit opens is
        # one that was admitted just before, and its report is ignored.
        if self._state == CLOSED:
            return False

        now = self._clock()
        with self._lock:
            state = self._state
            reopened = state == OPEN and now >= self._retry_at
            if reopened:
                self._state = state = HALF_OPEN
                self._issued = 0
                self._successes = 0
            trial = state == HALF_OPEN and self._issued < self._max_trials
            if trial:
                self._issued += 1
            retry_at = self._retry_at

        if reopened:
            self._changed(OPEN, HALF_OPEN)
        if trial:
            return True
        if state == CLOSED:
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

    def record(self, trial: bool, success: bool | None) -> None:
        """Report how a call admitted by :meth:`acquire` went.

        :param trial: what :meth:`acquire` returned for the call.
        :param success: ``True`` or ``False`` to count the outcome, ``None``
            to give a trial permit back without counting anything.
        """
        # Fast path: the usual success of an ordinary call changes nothing.
        if success and self._failures == 0 and self._state == CLOSED:
            return
        if not self._enabled:
            return

        now = self._clock() if success is False else 0.0
        change: tuple[str, str] | None = None
        with self._lock:
            state = self._state
            if state == CLOSED:
                if success:
                    self._failures = 0
                elif success is False:
                    self._failures += 1
                    if self._failures >= self._threshold:
                        self._state = OPEN
                        self._retry_at = now + self._recovery
                        change = _CLOSED_OPEN
            elif state == HALF_OPEN and trial:
                if success is None:
                    if self._issued > 0:
                        self._issued -= 1
                elif success:
                    self._successes += 1
                    if self._successes >= self._max_trials:
                        self._state = CLOSED
                        self._failures = 0
                        change = _HALF_OPEN_CLOSED
                else:
                    self._failures += 1
                    self._state = OPEN
                    self._retry_at = now + self._recovery
                    change = _HALF_OPEN_OPEN
            failures = self._failures

        if change is not None:
            self._changed(*change, failures=failures)

    def snapshot(self) -> dict[str, object]:
        """``state``, consecutive ``failures`` and ``retry_in`` seconds."""
        now = self._clock()
        state = self._poll(now)
        with self._lock:
            failures = self._failures
            retry_at = self._retry_at
        retry_in = max(0.0, retry_at - now) if state == OPEN else 0.0
        return {"state": state, "failures": failures, "retry_in": retry_in}

    def _poll(self, now: float) -> str:
        """Return the state at ``now``, moving open to half-open when due."""
        with self._lock:
            state = self._state
            reopened = state == OPEN and now >= self._retry_at
            if reopened:
                self._state = state = HALF_OPEN
                self._issued = 0
                self._successes = 0
        if reopened:
            self._changed(OPEN, HALF_OPEN)
        return state

    def _changed(self, old: str, new: str, *, failures: int = 0) -> None:
        name = self.integration or "integration"
        if old == CLOSED:
            log.warning(
                "circuit of %s opened after %d consecutive failures; "
                "trial calls in %.1f s",
                name,
                failures,
                self._recovery,
            )
        elif new == OPEN:
            log.warning(
                "circuit of %s reopened: a trial call failed; next trial in %.1f s",
                name,
                self._recovery,
            )
        else:
            log.info("circuit of %s moved from %s to %s", name, old, new)
        if self._on_change is None:
            return
        try:
            self._on_change(old, new)
        except Exception:
            log.warning("on_change callback of %s failed", name, exc_info=True)


_CLOSED_OPEN = (CLOSED, OPEN)
_HALF_OPEN_CLOSED = (HALF_OPEN, CLOSED)
_HALF_OPEN_OPEN = (HALF_OPEN, OPEN)
