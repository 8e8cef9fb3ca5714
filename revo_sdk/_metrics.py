"""Call metrics: cheap recording in memory, batched writes to SQLite, summaries.

Recording an attempt or an event only appends it to a deque, so the
pipeline pays well under a microsecond for it. A daemon thread, started on
the first record, drains the deque every ``flush_interval`` seconds: it
folds each item into per-integration counters (what :meth:`Metrics.snapshot`
reports) and writes the rows in batches to the ``metric_attempts`` and
``metric_events`` tables. :func:`summarize` reads those tables back, for
``revo-sdk metrics`` and ``revo-sdk status``, from any process.

How the numbers are defined (the same for snapshots and summaries):

- ``attempts``: every attempt record; ``calls``: records of a first attempt
  (``attempt <= 1``), which is one per call, cache hits and open-breaker
  answers included; a ``fallback`` record is never counted as a call
  because it always follows another record of the same call.
- ``successes``: records with outcome ``ok`` or ``cache_hit``; a call ends
  at its first success, so ``success_rate = successes / calls`` is a per-call
  rate and ``errors = calls - successes`` counts calls that did not succeed.
- ``failed_attempts``: attempts whose outcome is neither a success nor a
  fallback, whether or not a retry later succeeded.
- ``retries``: records with ``attempt > 1``.
- latency percentiles (nearest rank, milliseconds) cover attempts that went
  to the network: cache hits, open-breaker answers and fallbacks are left
  out so they do not flatter the numbers.
- cache and rate-limit figures come from ``cache_hit``/``cache_miss`` and
  ``rate_limit_wait`` events when there are any, else from the attempt
  records (``outcome == "cache_hit"``, ``rate_limit_wait > 0``), so a
  pipeline that reports both is not counted twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import sqlite_utils

from ._db import Database
from ._records import AttemptRecord
from ._rollup import (
    Retention,
    _where,
    attempt_groups,
    bucket_value,
    compact,
    event_groups,
    weighted_percentile,
)

log = logging.getLogger(__name__)

#: Outcomes that end a call successfully.
SUCCESS_OUTCOMES = frozenset({"ok", "cache_hit"})

#: Outcomes answered without a request on the wire; no latency is ranked.
OFFLINE_OUTCOMES = frozenset({"cache_hit", "breaker_open", "fallback"})

#: Event kinds the pipeline reports through :meth:`Metrics.record_event`.
EVENT_KINDS = frozenset(
    {
        "breaker_change",
        "rate_limit_wait",
        "retry",
        "cache_hit",
        "cache_miss",
        "fallback",
        "bulkhead_rejected",
    }
)

#: Seconds between two warnings about the same ongoing flush failure.
FAILURE_WARNING_INTERVAL = 60.0

_EventItem: TypeAlias = tuple[float, str, str, str, float]
_Row: TypeAlias = tuple[Any, ...]

_INSERT_ATTEMPTS = (
    "INSERT INTO metric_attempts (ts, integration, method, route, status, "
    "outcome, reason, latency_ms, attempt, rate_limit_wait_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENTS = (
    "INSERT INTO metric_events (ts, integration, kind, detail, value) "
    "VALUES (?, ?, ?, ?, ?)"
)
_ATTEMPT_ROW_LEN = 10


@dataclass(slots=True)
class _Tally:
    """Raw counts for one integration (or one route of it)."""

    attempts: int = 0
    calls: int = 0
    retries: int = 0
    successes: int = 0
    failed_attempts: int = 0
    cache_hits: int = 0  # records with outcome cache_hit
    waits: int = 0  # records that waited for the limiter
    wait_seconds: float = 0.0
    events: dict[str, int] = field(default_factory=dict)
    event_values: dict[str, float] = field(default_factory=dict)

    def add_attempt(self, outcome: str, attempt: int, wait: float) -> None:
        self.attempts += 1
        if attempt > 1:
            self.retries += 1
        elif outcome != "fallback":
            self.calls += 1
        if outcome in SUCCESS_OUTCOMES:
            self.successes += 1
            if outcome == "cache_hit":
                self.cache_hits += 1
        elif outcome != "fallback":
            self.failed_attempts += 1
        if wait > 0:
            self.waits += 1
            self.wait_seconds += wait

    def add_event(self, kind: str, value: float, count: int = 1) -> None:
        self.events[kind] = self.events.get(kind, 0) + count
        self.event_values[kind] = self.event_values.get(kind, 0.0) + value

    def merge(self, other: _Tally) -> None:
        self.attempts += other.attempts
        self.calls += other.calls
        self.retries += other.retries
        self.successes += other.successes
        self.failed_attempts += other.failed_attempts
        self.cache_hits += other.cache_hits
        self.waits += other.waits
        self.wait_seconds += other.wait_seconds
        for kind, count in other.events.items():
            self.add_event(kind, other.event_values.get(kind, 0.0), count)


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of already sorted values (None if empty).

    :param sorted_values: ascending values.
    :param pct: between 0 and 100.
    """
    if not sorted_values:
        return None
    rank = math.ceil(pct / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def _rate(part: float, whole: float) -> float | None:
    return min(part / whole, 1.0) if whole > 0 else None


@dataclass(slots=True)
class _Latencies:
    """Network latencies of one integration or route: raw values (sorted)
    plus rolled-up histogram buckets as ``(value, count)`` pairs."""

    raw: Sequence[float] = ()
    buckets: list[tuple[float, int]] = field(default_factory=list)
    bucket_sum: float = 0.0

    def percentile(self, pct: float) -> float | None:
        if not self.buckets:
            return percentile(self.raw, pct)
        return weighted_percentile([*((v, 1) for v in self.raw), *self.buckets], pct)

    def mean(self) -> float | None:
        n = len(self.raw) + sum(count for _, count in self.buckets)
        return (math.fsum(self.raw) + self.bucket_sum) / n if n else None

    def extend(self, other: _Latencies) -> None:
        self.raw = sorted([*self.raw, *other.raw])
        self.buckets.extend(other.buckets)
        self.bucket_sum += other.bucket_sum


def _call_figures(
    tally: _Tally, latencies_ms: Sequence[float] | _Latencies
) -> dict[str, Any]:
    """The attempt-based figures, shared by integrations and routes."""
    if not isinstance(latencies_ms, _Latencies):
        latencies_ms = _Latencies(latencies_ms)
    success_rate = _rate(tally.successes, tally.calls)
    return {
        "calls": tally.calls,
        "attempts": tally.attempts,
        "successes": tally.successes,
        "errors": max(tally.calls - tally.successes, 0),
        "failed_attempts": tally.failed_attempts,
        "success_rate": success_rate,
        "error_rate": None if success_rate is None else 1.0 - success_rate,
        "retries": tally.retries,
        "mean_ms": latencies_ms.mean(),
        "p50_ms": latencies_ms.percentile(50),
        "p95_ms": latencies_ms.percentile(95),
        "p99_ms": latencies_ms.percentile(99),
    }


def _figures(
    tally: _Tally, latencies_ms: Sequence[float] | _Latencies
) -> dict[str, Any]:
    """Everything :func:`summarize` reports for one integration."""
    figures = _call_figures(tally, latencies_ms)
    events = tally.events

    hits, misses = events.get("cache_hit", 0), events.get("cache_miss", 0)
    if hits or misses:
        figures["cache_hits"] = hits
        figures["cache_hit_rate"] = _rate(hits, hits + misses)
    else:
        figures["cache_hits"] = tally.cache_hits
        figures["cache_hit_rate"] = _rate(tally.cache_hits, tally.calls)

    if events.get("rate_limit_wait", 0):
        figures["rate_limit_waits"] = events["rate_limit_wait"]
        figures["rate_limit_wait_seconds"] = tally.event_values["rate_limit_wait"]
    else:
        figures["rate_limit_waits"] = tally.waits
        figures["rate_limit_wait_seconds"] = tally.wait_seconds

    figures["breaker_transitions"] = events.get("breaker_change", 0)
    figures["fallbacks"] = events.get("fallback", 0)
    figures["bulkhead_rejections"] = events.get("bulkhead_rejected", 0)
    figures["retry_budget_refusals"] = events.get("retry_budget_refused", 0)
    figures["cache_misses"] = misses
    figures["cache_revalidations"] = events.get("cache_revalidated", 0)
    figures["cache_stale_served"] = events.get("cache_stale", 0)
    figures["events"] = dict(sorted(events.items()))
    return figures


class Metrics:
    """Per-integration call metrics, kept in memory and written to SQLite.

    :param database: returns the database to write to (called lazily, on
        the flusher thread); ``None`` keeps the counters in memory only.
    :param flush_interval: seconds between two background flushes.
    :param batch_size: rows per write transaction.
    :param max_buffer: rows kept while the database cannot be written; past
        it the oldest rows are dropped, counted in :attr:`dropped` and
        logged as a warning.
    :param window: latencies per integration kept for :meth:`snapshot`.
    :param clock: wall-clock time for events, epoch seconds.
    :param rollup_interval: seconds between two rollups of old rows (see
        :mod:`revo_sdk._rollup`), run by the flusher thread.
    :param retention: how long raw rows and each rollup are kept.

    Thread safety: every method may be called from any thread at any time.
    ``record_*`` take no lock: they append to a deque (atomic in CPython),
    and the counters are brought up to date when the deque is drained, by
    the flusher thread or by :meth:`snapshot`, :meth:`flush` and
    :meth:`close`. Call :meth:`close` before closing the database.
    """

    def __init__(
        self,
        database: Callable[[], Database] | None,
        *,
        flush_interval: float = 1.0,
        batch_size: int = 1000,
        max_buffer: int = 100_000,
        window: int = 1024,
        clock: Callable[[], float] = time.time,
        rollup_interval: float = 300.0,
        retention: Retention | None = None,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be > 0, got {flush_interval!r}")
        if batch_size < 1 or max_buffer < 1 or window < 1:
            raise ValueError("batch_size, max_buffer and window must be >= 1")
        self._database = database
        self._interval = flush_interval
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._window = window
        self._clock = clock
        self._rollup_interval = rollup_interval
        self._retention = retention or Retention()
        self._next_rollup = time.monotonic() + rollup_interval

        self._pending: deque[AttemptRecord | _EventItem] = deque()
        # Zero sends the first record down the slow path, which starts the
        # flusher; from then on only an overfull deque does.
        self._threshold = 0

        self._lock = threading.Lock()  # tallies, recent, backlog, dropped
        # Held for a whole flush, so flush() never returns while the background
        # thread still holds rows it took (the hot path never touches it).
        self._flush_lock = threading.Lock()
        self._tallies: dict[str, _Tally] = {}
        self._recent: dict[str, deque[float]] = {}
        self._backlog: list[_Row] = []
        self._dropped = 0

        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # set by close() or an overfull deque
        self._closed = False
        self._failing = False
        self._next_warning = 0.0

    # -- recording (hot path) ------------------------------------------------

    def record_attempt(self, record: AttemptRecord) -> None:
        """Record one attempt of an outgoing call (or a call answered without one)."""
        pending = self._pending
        pending.append(record)
        if len(pending) > self._threshold:
            self._slow_path()

    def record_event(
        self, integration: str, kind: str, detail: str = "", value: float = 0.0
    ) -> None:
        """Record something that happened to an integration.

        :param kind: a short name; the pipeline's are :data:`EVENT_KINDS`,
            e.g. ``breaker_change`` (``detail="closed->open"``) or
            ``rate_limit_wait`` (``value`` in seconds). Summaries count
            every kind under ``events``.
        """
        pending = self._pending
        pending.append((self._clock(), integration, kind, detail, value))
        if len(pending) > self._threshold:
            self._slow_path()

    def _slow_path(self) -> None:
        if self._thread is None and self._database is not None and not self._closed:
            self._start_flusher()
        self._threshold = self._max_buffer
        if len(self._pending) > self._max_buffer:
            # The flusher is behind (or there is none): drain in the caller's
            # thread so the deque never holds more than max_buffer items, and
            # wake the flusher instead of waiting for its next turn.
            self._drain()
            self._wake.set()

    def _start_flusher(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(
                target=self._run, name="revo-metrics-flusher", daemon=True
            )
            # Started under the lock, so close() never sees an unstarted one.
            thread.start()
            self._thread = thread
        log.debug("metrics flusher started (every %.3g s)", self._interval)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
                if time.monotonic() >= self._next_rollup:
                    self._next_rollup = time.monotonic() + self._rollup_interval
                    self.compact()
            except Exception:  # keep flushing whatever a bug here does
                log.exception("metrics flush crashed")

    def compact(self) -> dict[str, int]:
        """Roll up and prune old rows now (the flusher does it every
        ``rollup_interval`` seconds); returns what :func:`compact` did."""
        if self._database is None:
            return {}
        try:
            return compact(
                self._database(), now=self._clock(), retention=self._retention
            )
        except Exception as exc:  # storage trouble must not stop the flusher
            log.warning("metrics rollup failed (%s: %s)", type(exc).__name__, exc)
            return {}

    # -- draining and writing ------------------------------------------------

    def _drain(self) -> None:
        """Fold pending items into the counters and the backlog of rows."""
        with self._lock:
            dropped = self._drain_locked()
        if dropped:
            self._warn_dropped(dropped)

    def _drain_locked(self) -> int:
        pending = self._pending
        keep_rows = self._database is not None
        backlog = self._backlog
        for _ in range(len(pending)):
            item = pending.popleft()
            if isinstance(item, tuple):
                _, integration, kind, _, value = item
                self._tally(integration).add_event(kind, value)
                if keep_rows:
                    backlog.append(item)
                continue
            latency_ms = item.latency * 1000.0
            self._tally(item.integration).add_attempt(
                item.outcome, item.attempt, item.rate_limit_wait
            )
            if item.outcome not in OFFLINE_OUTCOMES:
                self._recent_for(item.integration).append(latency_ms)
            if keep_rows:
                backlog.append(
                    (
                        item.timestamp,
                        item.integration,
                        item.method,
                        item.route,
                        item.status,
                        item.outcome,
                        item.reason,
                        latency_ms,
                        item.attempt,
                        item.rate_limit_wait * 1000.0,
                    )
                )
        return self._bound_backlog_locked()

    def _bound_backlog_locked(self) -> int:
        excess = len(self._backlog) - self._max_buffer
        if excess <= 0:
            return 0
        del self._backlog[:excess]
        self._dropped += excess
        return excess

    def _tally(self, integration: str) -> _Tally:
        tally = self._tallies.get(integration)
        if tally is None:
            tally = self._tallies[integration] = _Tally()
        return tally

    def _recent_for(self, integration: str) -> deque[float]:
        recent = self._recent.get(integration)
        if recent is None:
            recent = self._recent[integration] = deque(maxlen=self._window)
        return recent

    def flush(self) -> int:
        """Write every buffered row now; returns how many rows were written.

        When it returns, every row recorded before the call is stored (or
        kept after a failure): a flush already running on the background
        thread is waited for, not raced. A failed write is logged as a
        warning and its rows are kept for the next flush (up to
        ``max_buffer`` rows); it never raises.
        """
        with self._flush_lock:
            return self._flush_locked()

    def _flush_locked(self) -> int:
        with self._lock:
            dropped = self._drain_locked()
            rows, self._backlog = self._backlog, []
        if dropped:
            self._warn_dropped(dropped)
        if not rows or self._database is None:
            return 0

        written = 0
        try:
            database = self._database()
            for start in range(0, len(rows), self._batch_size):
                batch = rows[start : start + self._batch_size]
                _write_rows(database, batch)
                written += len(batch)
        except Exception as exc:  # storage trouble of any kind must not escape
            with self._lock:
                self._backlog[:0] = rows[written:]
                dropped = self._bound_backlog_locked()
            self._warn_failure(exc, len(rows) - written)
            if dropped:
                self._warn_dropped(dropped)
            return written

        if self._failing:
            self._failing = False
            log.info("metrics flush recovered; wrote %d rows", written)
        return written

    def _warn_failure(self, exc: Exception, kept: int) -> None:
        now = time.monotonic()
        if not self._failing or now >= self._next_warning:
            log.warning(
                "writing metrics failed (%s: %s); keeping %d rows for the next try",
                type(exc).__name__,
                exc,
                kept,
            )
            self._next_warning = now + FAILURE_WARNING_INTERVAL
        else:
            log.debug("writing metrics failed again (%s); %d rows kept", exc, kept)
        self._failing = True

    def _warn_dropped(self, count: int) -> None:
        log.warning(
            "metrics buffer full (%d rows): dropped the %d oldest rows "
            "(%d dropped so far); is the database writable?",
            self._max_buffer,
            count,
            self._dropped,
        )

    @property
    def dropped(self) -> int:
        """Rows dropped so far because the buffer was full."""
        return self._dropped

    @property
    def buffered(self) -> int:
        """Items recorded but not yet written (or not writable)."""
        return len(self._pending) + len(self._backlog)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the flusher and write everything still buffered.

        :param timeout: seconds to wait for a flush in progress to finish.
        """
        with self._start_lock:
            self._closed = True
            thread = self._thread
        self._threshold = self._max_buffer
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.flush()
        unwritten = len(self._backlog)
        if unwritten and self._database is not None:
            log.warning("metrics closed with %d rows still unwritten", unwritten)

    def __enter__(self) -> Metrics:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, float]]:
        """In-memory counters per integration since this object was created.

        Keys: ``calls``, ``attempts``, ``successes``, ``errors``,
        ``failed_attempts``, ``retries``, ``success_rate``, ``error_rate``,
        ``cache_hits``, ``cache_misses``, ``cache_hit_rate``,
        ``rate_limit_waits``, ``rate_limit_wait_seconds``,
        ``breaker_transitions``, ``fallbacks``, ``bulkhead_rejections`` and
        ``p50_ms``/``p95_ms``/``p99_ms`` over the last ``window`` network
        attempts. Rates and latencies without data are ``0.0``.
        """
        with self._lock:
            dropped = self._drain_locked()
            tallies = {name: _copy_tally(t) for name, t in self._tallies.items()}
            recent = {name: list(r) for name, r in self._recent.items()}
        if dropped:
            self._warn_dropped(dropped)

        result: dict[str, dict[str, float]] = {}
        for name, tally in sorted(tallies.items()):
            figures = _figures(tally, sorted(recent.get(name, ())))
            figures["cache_misses"] = tally.events.get("cache_miss", 0)
            result[name] = {
                key: float(value or 0.0)
                for key, value in figures.items()
                if not isinstance(value, Mapping)
            }
        return result


def _copy_tally(tally: _Tally) -> _Tally:
    copy = _Tally()
    copy.merge(tally)
    return copy


def _write_rows(database: Database, rows: Sequence[_Row]) -> None:
    attempts = [row for row in rows if len(row) == _ATTEMPT_ROW_LEN]
    events = [row for row in rows if len(row) != _ATTEMPT_ROW_LEN]
    with database.write() as conn:
        if attempts:
            conn.executemany(_INSERT_ATTEMPTS, attempts)
        if events:
            conn.executemany(_INSERT_EVENTS, events)


# -- summaries read back from the database -----------------------------------


def _reader(db: Database) -> sqlite_utils.Database:
    # sqlite-utils turns rows into dicts; its pragmas and plugins are not
    # wanted on a connection shared with the rest of the SDK.
    return sqlite_utils.Database(
        db.connection(), recursive_triggers=False, execute_plugins=False
    )


def summarize(
    db: Database, *, since: float | None = None, integration: str | None = None
) -> list[dict[str, Any]]:
    """Per-integration figures from the stored metrics, sorted by name.

    Each dict holds ``integration``, ``calls``, ``attempts``, ``successes``,
    ``errors``, ``failed_attempts``, ``success_rate``, ``error_rate``,
    ``retries``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``cache_hits``,
    ``cache_hit_rate``, ``rate_limit_waits``, ``rate_limit_wait_seconds``,
    ``breaker_transitions``, ``fallbacks``, ``bulkhead_rejections``,
    ``events`` (count by kind) and ``routes`` (the call figures per route,
    busiest first). Rates and latencies without data are ``None``. The
    module docstring defines each figure.

    :param since: only rows at or after this epoch time.
    :param integration: only this integration.
    """
    reader = _reader(db)
    where, params = _where(since, integration)

    routes: dict[str, dict[str, _Tally]] = {}
    for row in reader.query(
        f"""
        SELECT integration, route, outcome, MAX(attempt) AS attempt,
               COUNT(*) AS n, TOTAL(rate_limit_wait_ms > 0) AS waits,
               TOTAL(rate_limit_wait_ms) / 1000.0 AS wait_seconds
        FROM metric_attempts WHERE {where}
        GROUP BY integration, route, outcome, attempt > 1
        """,  # noqa: S608 - where holds placeholders only, values are params
        params,
    ):
        tally = routes.setdefault(row["integration"], {}).setdefault(
            row["route"], _Tally()
        )
        _add_grouped(tally, row)

    latencies: dict[str, dict[str, list[float]]] = {}
    rolled: dict[str, dict[str, _Latencies]] = {}
    for row in attempt_groups(db, since=since, integration=integration):
        tally = routes.setdefault(row["integration"], {}).setdefault(
            row["route"], _Tally()
        )
        _add_grouped(tally, row)
        if row["latency_n"]:
            lat = rolled.setdefault(row["integration"], {}).setdefault(
                row["route"], _Latencies()
            )
            mean = row["latency_sum_ms"] / row["latency_n"]
            lat.buckets.extend(
                (bucket_value(i, mean), count)
                for i, count in enumerate(row["hist"])
                if count
            )
            lat.bucket_sum += row["latency_sum_ms"]

    offline = ", ".join("?" * len(OFFLINE_OUTCOMES))
    for row in reader.query(
        f"""
        SELECT integration, route, latency_ms FROM metric_attempts
        WHERE {where} AND outcome NOT IN ({offline})
        ORDER BY integration, latency_ms
        """,  # noqa: S608 - placeholders only
        [*params, *sorted(OFFLINE_OUTCOMES)],
    ):
        by_route = latencies.setdefault(row["integration"], {})
        by_route.setdefault(row["route"], []).append(row["latency_ms"])

    event_tallies: dict[str, _Tally] = {}
    for row in reader.query(
        f"""
        SELECT integration, kind, COUNT(*) AS n, TOTAL(value) AS total
        FROM metric_events WHERE {where} GROUP BY integration, kind
        """,  # noqa: S608 - placeholders only
        params,
    ):
        tally = event_tallies.setdefault(row["integration"], _Tally())
        tally.add_event(row["kind"], row["total"], row["n"])
    for row in event_groups(db, since=since, integration=integration):
        tally = event_tallies.setdefault(row["integration"], _Tally())
        tally.add_event(row["kind"], row["total"], row["n"])

    summaries = []
    for name in sorted(routes.keys() | event_tallies.keys()):
        total = event_tallies.get(name, _Tally())
        route_rows = []
        merged = _Latencies()
        for route, tally in routes.get(name, {}).items():
            total.merge(tally)
            route_latencies = rolled.get(name, {}).get(route, _Latencies())
            route_latencies.raw = latencies.get(name, {}).get(route, [])
            merged.extend(route_latencies)
            route_rows.append({"route": route, **_call_figures(tally, route_latencies)})
        route_rows.sort(key=lambda r: (-r["attempts"], r["route"]))
        summaries.append(
            {"integration": name, **_figures(total, merged), "routes": route_rows}
        )
    return summaries


def _add_grouped(tally: _Tally, row: dict[str, Any]) -> None:
    """Add one ``GROUP BY outcome, attempt`` row of the attempts query."""
    n = int(row["n"])
    outcome, attempt = row["outcome"], int(row["attempt"])
    tally.attempts += n
    if attempt > 1:
        tally.retries += n
    elif outcome != "fallback":
        tally.calls += n
    if outcome in SUCCESS_OUTCOMES:
        tally.successes += n
        if outcome == "cache_hit":
            tally.cache_hits += n
    elif outcome != "fallback":
        tally.failed_attempts += n
    tally.waits += int(row["waits"])
    tally.wait_seconds += float(row["wait_seconds"])


def last_breaker_states(
    db: Database, *, integration: str | None = None
) -> dict[str, dict[str, Any]]:
    """The last breaker change stored for each integration.

    :returns: integration -> ``{"state": new, "previous": old, "at": epoch}``
        read from ``breaker_change`` events (``detail`` is ``"old->new"``).
    """
    where, params = _where(None, integration)
    states: dict[str, dict[str, Any]] = {}
    for row in _reader(db).query(
        f"""
        SELECT integration, ts, detail FROM (
            SELECT integration, ts, detail, ROW_NUMBER() OVER (
                PARTITION BY integration ORDER BY ts DESC, id DESC) AS n
            FROM (
                SELECT integration, ts, detail, id FROM metric_events
                WHERE kind = 'breaker_change'
                UNION ALL
                SELECT integration, last_ts, detail, -id FROM metric_event_rollups
                WHERE kind = 'breaker_change'
            ) WHERE {where}
        ) WHERE n = 1 ORDER BY integration
        """,  # noqa: S608 - placeholders only
        params,
    ):
        old, _, new = str(row["detail"]).rpartition("->")
        states[row["integration"]] = {
            "state": new.strip() or None,
            "previous": old.strip() or None,
            "at": row["ts"],
        }
    return states
