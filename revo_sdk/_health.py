"""Health probes, health states, uptime and the per-integration status row.

Each provider names a cheap probe (``health_method``/``health_path``:
GitHub ``GET /rate_limit``, Slack ``POST /auth.test``, Jira
``GET /rest/api/2/myself``). A :class:`HealthScheduler` thread runs every
integration's probe at an interval with jitter and stores each result in
the ``health_checks`` table. :func:`assess` turns the latest probes, the
recent error rate and latency and the breaker state into ``healthy``,
``degraded`` or ``unhealthy``; :func:`collect_status` builds the row that
``revo-sdk status``, the dashboard and the Prometheus endpoint show.

Everything here reads the database with plain queries, so it works in the
process that owns the client and in the command line alike.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from . import _queue
from ._db import Database
from ._metrics import last_breaker_states, percentile, summarize

log = logging.getLogger(__name__)

HEALTHY: Final = "healthy"
DEGRADED: Final = "degraded"
UNHEALTHY: Final = "unhealthy"
UNKNOWN: Final = "unknown"

#: Seconds of recent calls a status row reports.
STATUS_WINDOW: Final = 15 * 60

#: Seconds of probes uptime is computed over.
UPTIME_WINDOW: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class HealthResult:
    """One probe of one integration. ``error`` never holds a header or body."""

    integration: str
    ok: bool
    status: int
    latency_ms: float
    error: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """When an integration stops being healthy.

    :param error_rate_degraded: error rate above which it is degraded.
    :param error_rate_unhealthy: error rate above which it is unhealthy.
    :param latency_ms_degraded: mean latency above which it is degraded.
    :param failed_probes_unhealthy: this many failed probes in a row make
        it unhealthy (one makes it degraded).
    :param min_calls: calls needed before the error rate counts.
    """

    error_rate_degraded: float = 0.02
    error_rate_unhealthy: float = 0.25
    latency_ms_degraded: float = 2000.0
    failed_probes_unhealthy: int = 2
    min_calls: int = 10


def store_result(db: Database, result: HealthResult) -> None:
    """Append one probe result to ``health_checks``."""
    with db.write() as conn:
        conn.execute(
            "INSERT INTO health_checks (ts, integration, ok, status, latency_ms, error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                result.timestamp,
                result.integration,
                int(result.ok),
                result.status,
                result.latency_ms,
                result.error[:300],
            ),
        )


def recent_results(
    db: Database, integration: str | None = None, *, limit: int = 20
) -> dict[str, list[HealthResult]]:
    """The latest ``limit`` probe results per integration, newest first."""
    params: list[Any] = [limit]
    where = ""
    if integration is not None:
        where, params = "WHERE integration = ?", [integration, limit]
    rows = db.query(
        "SELECT integration, ok, status, latency_ms, error, ts FROM ("  # noqa: S608 - placeholders only
        " SELECT *, ROW_NUMBER() OVER (PARTITION BY integration"
        f" ORDER BY ts DESC, id DESC) AS n FROM health_checks {where})"
        " WHERE n <= ? ORDER BY integration, ts DESC, n",
        tuple(params),
    )
    found: dict[str, list[HealthResult]] = {}
    for name, ok, status, latency, error, ts in rows:
        found.setdefault(name, []).append(
            HealthResult(name, bool(ok), status, latency, error, ts)
        )
    return found


def uptime(
    db: Database, *, since: float, integration: str | None = None
) -> dict[str, float]:
    """Fraction of passed probes since ``since``, per integration."""
    params: list[Any] = [since]
    extra = ""
    if integration is not None:
        extra, params = " AND integration = ?", [since, integration]
    rows = db.query(
        "SELECT integration, AVG(ok) FROM health_checks WHERE ts >= ?"  # noqa: S608 - placeholders only
        f"{extra} GROUP BY integration",
        tuple(params),
    )
    return {name: float(value) for name, value in rows}


def assess(
    probes: Iterable[HealthResult],
    *,
    calls: int = 0,
    error_rate: float | None = None,
    mean_ms: float | None = None,
    breaker: str | None = None,
    thresholds: HealthThresholds | None = None,
) -> tuple[str, list[str]]:
    """The health state and the reasons for it.

    :param probes: the latest probe results, newest first.
    :returns: ``(state, reasons)``; ``unknown`` when there are neither
        probes nor calls nor a breaker state.
    """
    limits = thresholds or HealthThresholds()
    latest = list(probes)
    bad: list[str] = []
    worse: list[str] = []
    failed_run = 0
    for probe in latest:
        if probe.ok:
            break
        failed_run += 1
    if failed_run >= limits.failed_probes_unhealthy:
        worse.append(f"{failed_run} health checks failed in a row")
    elif failed_run:
        bad.append("last health check failed")
    if breaker in ("open", "forced_open"):
        worse.append(f"circuit breaker {breaker.replace('_', ' ')}")
    elif breaker == "half_open":
        bad.append("circuit breaker half-open")
    if error_rate is not None and calls >= limits.min_calls:
        if error_rate > limits.error_rate_unhealthy:
            worse.append(f"error rate {error_rate:.1%}")
        elif error_rate > limits.error_rate_degraded:
            bad.append(f"error rate {error_rate:.1%}")
    if mean_ms is not None and mean_ms > limits.latency_ms_degraded:
        bad.append(f"mean latency {mean_ms:.0f} ms")
    if worse:
        return UNHEALTHY, worse + bad
    if bad:
        return DEGRADED, bad
    if not latest and not calls and breaker is None:
        return UNKNOWN, []
    return HEALTHY, []


# -- webhook queue figures -----------------------------------------------------


def webhook_lags(db: Database, *, since: float | None = None) -> dict[str, list[float]]:
    """Seconds from receipt to processing of done deliveries, per integration,
    sorted (read from the queue table)."""
    rows = db.query(
        "SELECT integration, updated_at - received_at FROM webhook_events"
        " WHERE status = ? AND updated_at >= ? ORDER BY 2",
        (_queue.DONE, since if since is not None else 0.0),
    )
    found: dict[str, list[float]] = {}
    for name, lag in rows:
        found.setdefault(name, []).append(max(float(lag), 0.0))
    return found


def oldest_ready_age(db: Database, *, now: float) -> dict[str, float]:
    """Age in seconds of the oldest delivery ready to run, per integration."""
    rows = db.query(
        "SELECT integration, MIN(received_at) FROM webhook_events"
        " WHERE status = ? AND available_at <= ? GROUP BY integration",
        (_queue.PENDING, now),
    )
    return {name: max(now - float(ts), 0.0) for name, ts in rows}


# -- the status row ------------------------------------------------------------


def collect_status(
    db: Database,
    *,
    now: float | None = None,
    window: float = STATUS_WINDOW,
    live: Mapping[str, Mapping[str, Any]] | None = None,
    names: Iterable[str] = (),
    thresholds: HealthThresholds | None = None,
) -> list[dict[str, Any]]:
    """One row per integration, as ``revo-sdk status`` shows it.

    :param live: :meth:`Client.status` when called in the process that owns
        the client; adds the live breaker state and the limiter headroom.
    :param names: integrations to show even without any stored data.
    :returns: dicts with ``integration``, ``health``, ``health_reasons``,
        ``breaker``, ``limiter_headroom`` (0 to 1, or None),
        ``rate_limit_remaining``, ``calls``, ``p95_ms``, ``mean_ms``,
        ``error_rate``, ``cache_hit_rate``, ``queue_depth``,
        ``dead_letters``, ``oldest_ready_age``, ``webhook_lag_p95``,
        ``uptime``, ``last_check`` and ``firing_alerts`` (rule names).
    """
    now = time.time() if now is None else now
    live = live or {}
    since = now - window
    recent = {s["integration"]: s for s in summarize(db, since=since)}
    breakers = last_breaker_states(db)
    queue = _queue.counts(db)
    probes = recent_results(db, limit=5)
    up = uptime(db, since=now - UPTIME_WINDOW)
    ages = oldest_ready_age(db, now=now)
    lags = webhook_lags(db, since=since)
    remaining = last_event_values(db, "rate_limit_remaining")
    firing: dict[str, list[str]] = {}
    for rule, integration in db.query(
        "SELECT rule, integration FROM alerts WHERE resolved_at IS NULL ORDER BY rule"
    ):
        firing.setdefault(integration, []).append(rule)

    everyone = set(names) | live.keys() | recent.keys() | breakers.keys()
    everyone |= queue.keys() | probes.keys()
    everyone.discard("?")
    rows = []
    for name in sorted(everyone):
        calls = recent.get(name, {})
        state = live.get(name, {})
        breaker = (state.get("breaker") or {}).get("state") or (
            breakers.get(name) or {}
        ).get("state")
        health, reasons = assess(
            probes.get(name, []),
            calls=int(calls.get("calls") or 0),
            error_rate=calls.get("error_rate"),
            mean_ms=calls.get("mean_ms"),
            breaker=breaker,
            thresholds=thresholds,
        )
        statuses = queue.get(name, {})
        last = probes.get(name, [None])[0]
        rows.append(
            {
                "integration": name,
                "health": health,
                "health_reasons": reasons,
                "breaker": breaker,
                "limiter_headroom": _headroom(state.get("limiter")),
                "rate_limit_remaining": remaining.get(name),
                "calls": int(calls.get("calls") or 0),
                "p95_ms": calls.get("p95_ms"),
                "mean_ms": calls.get("mean_ms"),
                "error_rate": calls.get("error_rate"),
                "cache_hit_rate": calls.get("cache_hit_rate"),
                "queue_depth": statuses.get(_queue.PENDING, 0)
                + statuses.get(_queue.PROCESSING, 0),
                "dead_letters": statuses.get(_queue.DEAD, 0),
                "oldest_ready_age": ages.get(name),
                "webhook_lag_p95": percentile(lags.get(name, []), 95),
                "uptime": up.get(name),
                "last_check": None
                if last is None
                else {
                    "ok": last.ok,
                    "status": last.status,
                    "latency_ms": last.latency_ms,
                    "error": last.error,
                    "at": last.timestamp,
                },
                "firing_alerts": firing.get(name, []),
            }
        )
    return rows


def _headroom(limiter: Any) -> float | None:
    """The smallest ``available / burst`` over the limiter's scopes."""
    if not isinstance(limiter, Mapping) or not limiter:
        return None
    ratios = [
        float(scope["available"]) / float(scope["burst"])
        for scope in limiter.values()
        if isinstance(scope, Mapping) and scope.get("burst")
    ]
    return min(ratios) if ratios else None


def last_event_values(db: Database, kind: str) -> dict[str, float]:
    """The value of the newest ``kind`` event per integration (raw rows)."""
    rows = db.query(
        "SELECT integration, value FROM (SELECT integration, value,"
        " ROW_NUMBER() OVER (PARTITION BY integration ORDER BY ts DESC, id DESC)"
        " AS n FROM metric_events WHERE kind = ?) WHERE n = 1",
        (kind,),
    )
    return {name: float(value) for name, value in rows}


# -- service levels ------------------------------------------------------------

#: The service levels shown as pass/fail lines.
SERVICE_LEVELS: Final = (
    ("integration success rate", "> 98 %"),
    ("mean external API response", "< 2 s"),
    ("webhook processing (p95)", "< 5 s"),
)


def service_levels(
    db: Database, *, now: float | None = None, window: float = STATUS_WINDOW
) -> list[dict[str, Any]]:
    """The service levels over the last ``window`` seconds.

    Each dict has ``name``, ``target``, ``value`` (a display string),
    ``measured`` (the number, None without data) and ``passed`` (None
    without data).
    """
    now = time.time() if now is None else now
    since = now - window
    summaries = summarize(db, since=since)
    calls = sum(int(s["calls"]) for s in summaries)
    successes = sum(int(s["successes"]) for s in summaries)
    rate = min(successes / calls, 1.0) if calls else None
    weighted = [
        (s["mean_ms"], s["attempts"] - s["retries"]) for s in summaries if s["mean_ms"]
    ]
    total_weight = sum(w for _, w in weighted)
    mean_ms = (
        sum(m * w for m, w in weighted) / total_weight if total_weight > 0 else None
    )
    lags = sorted(
        v for values in webhook_lags(db, since=since).values() for v in values
    )
    lag = percentile(lags, 95)
    measured = [
        (
            rate,
            rate is not None and rate > 0.98,
            f"{rate:.2%}" if rate is not None else "-",
        ),
        (
            mean_ms,
            mean_ms is not None and mean_ms < 2000,
            f"{mean_ms / 1000:.3f} s" if mean_ms is not None else "-",
        ),
        (lag, lag is not None and lag < 5, f"{lag:.3f} s" if lag is not None else "-"),
    ]
    return [
        {
            "name": name,
            "target": target,
            "measured": value,
            "value": text,
            "passed": None if value is None else passed,
        }
        for (name, target), (value, passed, text) in zip(
            SERVICE_LEVELS, measured, strict=True
        )
    ]


# -- the scheduler -------------------------------------------------------------


class HealthScheduler:
    """A daemon thread that probes every integration at an interval with jitter.

    :param names: returns the integrations to probe on each round.
    :param probe: runs one probe; must not raise (an exception is logged and
        recorded as a failed probe).
    :param store: keeps a result (for example :func:`store_result`).
    :param interval: mean seconds between two rounds.
    :param jitter: each wait is ``interval * (1 ± jitter)`` so that many
        processes do not probe in step.
    :param after_round: called after each round (the monitor evaluates its
        alert rules there).
    :param rng: random source for the jitter.

    Thread safety: :meth:`start` and :meth:`stop` may be called from any
    thread; probes run on the scheduler thread only.
    """

    def __init__(
        self,
        *,
        names: Callable[[], Iterable[str]],
        probe: Callable[[str], HealthResult],
        store: Callable[[HealthResult], None],
        interval: float = 60.0,
        jitter: float = 0.1,
        after_round: Callable[[], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if interval <= 0 or not 0 <= jitter < 1:
            raise ValueError("interval must be > 0 and 0 <= jitter < 1")
        self._names = names
        self._probe = probe
        self._store = store
        self.interval = interval
        self.jitter = jitter
        self._after = after_round
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.rounds = 0

    def next_wait(self) -> float:
        """Seconds until the next round."""
        spread = self.interval * self.jitter
        return self.interval + self._rng.uniform(-spread, spread)

    def run_round(self) -> list[HealthResult]:
        """Probe every integration once, store the results, run ``after_round``."""
        results = []
        for name in list(self._names()):
            if self._stop.is_set() and self._thread is not None:
                break
            try:
                result = self._probe(name)
            except Exception as exc:  # a probe reports, it never kills the thread
                log.warning("health probe of %s crashed: %s", name, type(exc).__name__)
                result = HealthResult(
                    name, False, 0, 0.0, type(exc).__name__, time.time()
                )
            results.append(result)
            try:
                self._store(result)
            except Exception as exc:  # storage trouble: keep probing
                log.warning("storing a health result failed: %s", exc)
        self.rounds += 1
        if self._after is not None:
            try:
                self._after()
            except Exception:  # alert evaluation must not stop health checks
                log.exception("evaluation after a health round failed")
        return results

    def start(self) -> None:
        """Start the thread (no-op when running)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            thread = threading.Thread(target=self._run, name="revo-health", daemon=True)
            thread.start()
            self._thread = thread
        log.debug("health scheduler started (every %.3g s)", self.interval)

    def _run(self) -> None:
        while not self._stop.wait(self.next_wait()):
            self.run_round()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for a round."""
        with self._lock:
            thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None


__all__ = [
    "HealthResult",
    "HealthScheduler",
    "HealthThresholds",
    "assess",
    "collect_status",
    "service_levels",
    "uptime",
]
