"""Bulkheads: a cap on the calls one integration may have in flight.

A slow integration then ties up a bounded number of threads instead of all
of them, and work submitted in the background waits in a bounded queue
instead of piling up without limit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from types import TracebackType
from typing import ParamSpec, TypeVar

from ._config import BulkheadPolicy
from ._exceptions import BulkheadFullError, ClientClosedError

log = logging.getLogger(__name__)

__all__ = ["Bulkhead"]

T = TypeVar("T")
P = ParamSpec("P")


class Bulkhead:
    """Bounds the calls in flight for one integration.

    Direct calls take a slot with :meth:`slot`; background calls go through
    :meth:`submit`, whose worker threads take a slot for each call they run.
    Together they never run more than ``max_concurrent`` calls at once. A
    slot is re-entrant within a thread, so a submitted function that makes
    a direct call through the same bulkhead uses the slot it already holds.

    Thread-safety: shared by all threads of an integration. Taking and
    giving back a free slot is one short locked update of a counter; only a
    caller that finds every slot taken waits, on a condition of that lock.

    :param policy: ``max_concurrent``, ``max_wait`` and ``max_queue``.
    :param integration: name used in errors, logs and worker thread names.
    """

    def __init__(self, policy: BulkheadPolicy, *, integration: str = "") -> None:
        self.policy = policy
        self.integration = integration
        self._max_wait = policy.max_wait
        self._capacity = policy.max_concurrent + policy.max_queue
        self._local = threading.local()
        self._lock = threading.Lock()
        # Waiting for a slot uses the same lock; only the full case waits.
        self._slot_freed = threading.Condition(self._lock)
        self._free = policy.max_concurrent
        self._waiting = 0  # threads blocked in _slot_freed
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._in_flight = 0  # slots held, by direct and submitted calls
        self._submitted = 0  # submitted calls accepted and not finished
        self._running = 0  # submitted calls holding a slot
        self._rejected = 0
        self._slot = _Slot(self)

    def slot(self) -> AbstractContextManager[None]:
        """A context manager that holds one slot while its block runs.

        :raises BulkheadFullError: on entry, if no slot frees up within the
            policy's ``max_wait``.
        """
        return self._slot

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker thread.

        At most ``max_concurrent + max_queue`` submitted calls may be
        accepted and unfinished at once.

        :raises BulkheadFullError: at once, when that many are.
        :raises ClientClosedError: after :meth:`shutdown` (a ``RuntimeError``).
        """
        with self._lock:
            closed = self._closed
            full = not closed and self._submitted >= self._capacity
            if full:
                self._rejected += 1
            elif not closed:
                self._submitted += 1
        if closed:
            raise ClientClosedError(f"bulkhead of {self._name} is shut down")
        if full:
            log.debug("bulkhead of %s rejected a submitted call", self._name)
            raise BulkheadFullError(
                f"{self._name} already has {self._capacity} submitted calls "
                "running or queued",
                integration=self.integration,
            )

        try:
            return self._pool().submit(self._run, fn, *args, **kwargs)
        except BaseException:
            with self._lock:
                self._submitted -= 1
            raise

    def shutdown(self, wait: bool = True, *, cancel_queued: bool = True) -> None:
        """Stop accepting submissions and let the worker threads go.

        :param wait: block until the calls already running have finished.
        :param cancel_queued: cancel submitted calls that have not started
            (their futures raise :class:`~concurrent.futures.CancelledError`),
            so shutting down never works through a long queue.
        """
        with self._lock:
            self._closed = True
            executor = self._executor
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=cancel_queued)

    def snapshot(self) -> dict[str, int]:
        """``in_flight``, ``queued``, ``max_concurrent`` and ``rejected``."""
        with self._lock:
            return {
                "in_flight": self._in_flight,
                "queued": self._submitted - self._running,
                "max_concurrent": self.policy.max_concurrent,
                "rejected": self._rejected,
            }

    @property
    def _name(self) -> str:
        return self.integration or "integration"

    def _pool(self) -> ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._closed:  # shut down while this submit was on its way
                    raise ClientClosedError(f"bulkhead of {self._name} is shut down")
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self.policy.max_concurrent,
                        thread_name_prefix=f"revo-{self.integration}",
                    )
                executor = self._executor
        return executor

    def _run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            # Direct calls may hold every slot; a queued call waits its turn.
            self._take_slot(None)
            with self._lock:
                self._running += 1
            self._local.depth = 1
            try:
                return fn(*args, **kwargs)
            finally:
                self._local.depth = 0
                with self._lock:
                    self._running -= 1
                self._give_slot()
        finally:
            with self._lock:
                self._submitted -= 1

    def _take_slot(self, timeout: float | None) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds (``None``: forever).

        A caller that gets none is counted as rejected.
        """
        with self._lock:
            if self._free > 0:
                self._free -= 1
                self._in_flight += 1
                return True
        if timeout is not None and timeout <= 0:
            with self._lock:
                self._rejected += 1
            return False

        with self._lock:
            self._waiting += 1
            try:
                got = self._slot_freed.wait_for(self._has_free, timeout)
            finally:
                self._waiting -= 1
            if got:
                self._free -= 1
                self._in_flight += 1
            else:
                self._rejected += 1
            return got

    def _has_free(self) -> bool:
        return self._free > 0

    def _give_slot(self) -> None:
        with self._lock:
            self._free += 1
            self._in_flight -= 1
            if self._waiting:
                self._slot_freed.notify()


class _Slot:
    """The re-entrant context manager :meth:`Bulkhead.slot` hands out."""

    __slots__ = ("_bulkhead",)

    def __init__(self, bulkhead: Bulkhead) -> None:
        self._bulkhead = bulkhead

    def __enter__(self) -> None:
        bulkhead = self._bulkhead
        local = bulkhead._local
        depth: int = getattr(local, "depth", 0)
        if depth:
            local.depth = depth + 1
            return

        with bulkhead._lock:  # the usual case, inlined: a slot is free
            free = bulkhead._free
            if free:
                bulkhead._free = free - 1
                bulkhead._in_flight += 1
        if free:
            local.depth = 1
            return

        if not bulkhead._take_slot(bulkhead._max_wait):
            log.debug("bulkhead of %s had no free slot", bulkhead._name)
            raise BulkheadFullError(
                f"{bulkhead._name} already runs {bulkhead.policy.max_concurrent} "
                f"calls; none finished within {bulkhead._max_wait} s",
                integration=bulkhead.integration,
            )
        local.depth = 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        bulkhead = self._bulkhead
        local = bulkhead._local
        local.depth -= 1
        if not local.depth:
            bulkhead._give_slot()
