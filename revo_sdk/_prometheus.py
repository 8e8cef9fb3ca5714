"""Prometheus text exposition of the stored metrics.

Built on the ``prometheus-client`` package (``pip install
'revo-sdk[prometheus]'``): a custom collector reads the SQLite file on each
scrape (raw rows plus rollups, so counters cover everything still
stored) and yields the families of :mod:`revo_sdk._monitor_names` under
their Prometheus names (``revo.client.requests`` ->
``revo_client_requests_total``).

Counters are totals over what the file holds: rollups keep them exact, but
hour rollups older than the retention (90 days by default) are deleted,
and a counter then goes down once; Prometheus treats that as a reset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from ._db import Database
from ._health import collect_status, webhook_lags
from ._metrics import last_breaker_states
from ._monitor_names import (
    BREAKER_VALUES,
    BY_NAME,
    EVENT_METRICS,
    HEALTH_VALUES,
    is_verification_failure,
    prometheus_name,
)
from ._rollup import BOUNDS_MS, attempt_groups, bucket_of, event_groups

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

#: The media type of the text exposition format.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_CALL_LABELS = ("integration", "method", "route", "outcome")
_BUCKET_CASE = (
    "CASE "
    + " ".join(f"WHEN latency_ms <= {b!r} THEN {i}" for i, b in enumerate(BOUNDS_MS))
    + f" ELSE {len(BOUNDS_MS)} END"
)
_OFFLINE = "('cache_hit', 'breaker_open', 'fallback')"


class PrometheusUnavailable(RuntimeError):
    """``prometheus-client`` is not installed."""


def _client() -> Any:
    try:
        import prometheus_client.core as core
    except ImportError as exc:
        raise PrometheusUnavailable(
            "the Prometheus endpoint needs prometheus-client: "
            "pip install 'revo-sdk[prometheus]'"
        ) from exc
    return core


def _doc(name: str) -> str:
    metric = BY_NAME[name]
    return f"{metric.description} Unit: {metric.unit}. ({name})"


class StoreCollector:
    """A prometheus-client collector over one revo-sdk database.

    :param database: the database to read on each scrape.
    :param live: returns :meth:`Client.status` for live breaker and limiter
        figures (optional).

    Thread safety: :meth:`collect` may run on any thread; it only reads.
    """

    def __init__(
        self,
        database: Database,
        *,
        live: Mapping[str, Mapping[str, Any]] | None = None,
        now: float | None = None,
    ) -> None:
        self._db = database
        self._live = live
        self._now = now

    def describe(self) -> list[Metric]:
        return []  # no up-front description: families depend on stored data

    def collect(self) -> Iterator[Metric]:
        core = _client()
        db = self._db
        now = time.time() if self._now is None else self._now

        requests = core.CounterMetricFamily(
            prometheus_name("revo.client.requests"),
            _doc("revo.client.requests"),
            labels=_CALL_LABELS,
        )
        attempts = core.CounterMetricFamily(
            prometheus_name("revo.client.attempts"),
            _doc("revo.client.attempts"),
            labels=_CALL_LABELS,
        )
        totals: dict[tuple[str, ...], list[int]] = {}
        key: tuple[str, ...]
        for integ, method, route, outcome, retry, n in db.query(
            "SELECT integration, method, route, outcome, attempt > 1, COUNT(*)"
            " FROM metric_attempts GROUP BY 1, 2, 3, 4, 5"
        ):
            _add_call(totals, (integ, method, route, outcome), int(retry), n)
        hist: dict[tuple[str, ...], list[float]] = {}
        for row in attempt_groups(db):
            key = (row["integration"], row["method"], row["route"], row["outcome"])
            _add_call(totals, key, row["attempt"] > 1, row["n"])
            series = _hist(hist, key[:3])
            for i, count in enumerate(row["hist"]):
                series[i] += count
            series[-1] += row["latency_sum_ms"]
        for key, (first, every) in sorted(totals.items()):
            if first:
                requests.add_metric(key, first)
            attempts.add_metric(key, every)
        yield requests
        yield attempts

        for integ, method, route, bucket, n, total in db.query(
            f"SELECT integration, method, route, {_BUCKET_CASE}, COUNT(*),"  # noqa: S608 - built from constants
            f" TOTAL(latency_ms) FROM metric_attempts WHERE outcome NOT IN {_OFFLINE}"
            " GROUP BY 1, 2, 3, 4"
        ):
            series = _hist(hist, (integ, method, route))
            series[bucket] += n
            series[-1] += total
        duration = core.HistogramMetricFamily(
            prometheus_name("revo.client.attempt.duration"),
            _doc("revo.client.attempt.duration"),
            labels=("integration", "method", "route"),
        )
        for key, series in sorted(hist.items()):
            duration.add_metric(key, _buckets(series), sum_value=series[-1] / 1000.0)
        yield duration

        yield from self._events(core, db)
        yield from self._state(core, db, now)

    def _events(self, core: Any, db: Database) -> Iterator[Metric]:
        counts: dict[tuple[str, str, str], list[float]] = {}
        for integ, kind, detail, n, total in db.query(
            "SELECT integration, kind, detail, COUNT(*), TOTAL(value)"
            " FROM metric_events GROUP BY 1, 2, 3"
        ):
            _add_event(counts, (integ, kind, detail), n, total)
        for row in event_groups(db):
            key = (row["integration"], row["kind"], row["detail"])
            _add_event(counts, key, row["n"], row["total"])

        # Sums per (metric, label values): several stored details can map to
        # one series (a single-label counter ignores the detail), and the
        # exposition must hold each series once.
        series: dict[str, dict[tuple[str, ...], float]] = {}

        def add(name: str, values: tuple[str, ...], amount: float) -> None:
            per_name = series.setdefault(name, {})
            per_name[values] = per_name.get(values, 0.0) + amount

        wait_events = {
            integ for (integ, kind, _) in counts if kind == "rate_limit_wait"
        }
        waits = "revo.client.limiter.waits"
        wait = "revo.client.limiter.wait.duration"
        for (integ, kind, detail), (n, total) in sorted(counts.items()):
            name = EVENT_METRICS.get(kind)
            if name is None or BY_NAME[name].instrument != "counter":
                continue
            if name == "revo.client.breaker.transitions":
                old, _, new = detail.rpartition("->")
                add(name, (integ, old, new), n)
            elif name == waits:
                add(name, (integ, detail or "default"), n)
                add(wait, (integ, detail or "default"), total)
            elif len(BY_NAME[name].labels) == 2:
                add(name, (integ, detail), n)
                if kind == "webhook_rejected" and is_verification_failure(detail):
                    add("revo.webhook.verification.failures", (integ, detail), n)
            else:
                add(name, (integ,), n)

        # Limiter waits seen only on attempt records (no wait events).
        for integ, n, wait_ms in db.query(
            "SELECT integration, COUNT(*), TOTAL(rate_limit_wait_ms)"
            " FROM metric_attempts WHERE rate_limit_wait_ms > 0 GROUP BY 1"
        ):
            if integ not in wait_events:
                add(waits, (integ, "default"), n)
                add(wait, (integ, "default"), wait_ms / 1000.0)

        for name, values in series.items():
            family = core.CounterMetricFamily(
                prometheus_name(name), _doc(name), labels=BY_NAME[name].labels
            )
            for labels, amount in sorted(values.items()):
                family.add_metric(list(labels), amount)
            yield family

    def _state(self, core: Any, db: Database, now: float) -> Iterator[Metric]:
        def gauge(name: str) -> Any:
            return core.GaugeMetricFamily(
                prometheus_name(name), _doc(name), labels=BY_NAME[name].labels
            )

        breaker = gauge("revo.client.breaker.state")
        live = self._live or {}
        states = {k: v.get("state") for k, v in last_breaker_states(db).items()}
        for name, status in live.items():
            state = (status.get("breaker") or {}).get("state")
            if state:
                states[name] = state
        for name, state in sorted(states.items()):
            if state in BREAKER_VALUES:
                breaker.add_metric([name], BREAKER_VALUES[state])
        yield breaker

        remaining = gauge("revo.client.limiter.remaining")
        for integ, scope, value in db.query(
            "SELECT integration, detail, value FROM (SELECT integration, detail,"
            " value, ROW_NUMBER() OVER (PARTITION BY integration, detail"
            " ORDER BY ts DESC, id DESC) AS n FROM metric_events"
            " WHERE kind = 'rate_limit_remaining') WHERE n = 1"
        ):
            remaining.add_metric([integ, scope or "default"], value)
        yield remaining

        depth = gauge("revo.webhook.queue.depth")
        for integ, status, n in db.query(
            "SELECT integration, status, COUNT(*) FROM webhook_events GROUP BY 1, 2"
        ):
            depth.add_metric([integ, status], n)
        yield depth

        lag = core.HistogramMetricFamily(
            prometheus_name("revo.webhook.processing.lag"),
            _doc("revo.webhook.processing.lag"),
            labels=("integration",),
        )
        for integ, lags in sorted(webhook_lags(db).items()):
            series = [0.0] * (len(BOUNDS_MS) + 2)
            for value in lags:
                series[bucket_of(value * 1000.0)] += 1
            lag.add_metric([integ], _buckets(series), sum_value=sum(lags))
        yield lag

        rows = collect_status(db, now=now, live=live)
        families = {
            name: gauge(name)
            for name in (
                "revo.client.error_rate",
                "revo.webhook.dead_letters",
                "revo.webhook.queue.oldest_ready_age",
                "revo.health.check.status",
                "revo.health.check.duration",
                "revo.health.state",
                "revo.health.uptime",
            )
        }
        for row in rows:
            labels = [row["integration"]]
            values: dict[str, float | None] = {
                "revo.client.error_rate": row["error_rate"],
                "revo.webhook.dead_letters": row["dead_letters"],
                "revo.webhook.queue.oldest_ready_age": row["oldest_ready_age"],
                "revo.health.state": HEALTH_VALUES.get(row["health"]),
                "revo.health.uptime": row["uptime"],
            }
            check = row["last_check"]
            if check is not None:
                values["revo.health.check.status"] = 1.0 if check["ok"] else 0.0
                values["revo.health.check.duration"] = check["latency_ms"] / 1000.0
            for name, value in values.items():
                if value is not None:
                    families[name].add_metric(labels, value)
        yield from families.values()

        firing = gauge("revo.alert.firing")
        for rule, integ, severity in db.query(
            "SELECT rule, integration, severity FROM alerts WHERE resolved_at IS NULL"
        ):
            firing.add_metric([rule, integ, severity], 1)
        yield firing
        sent = core.CounterMetricFamily(
            prometheus_name("revo.alert.notifications"),
            _doc("revo.alert.notifications"),
            labels=BY_NAME["revo.alert.notifications"].labels,
        )
        for rule, severity, fired, resolved in db.query(
            "SELECT rule, severity, COUNT(*), COUNT(resolved_at) FROM alerts"
            " GROUP BY 1, 2"
        ):
            sent.add_metric([rule, severity, "firing"], fired)
            sent.add_metric([rule, severity, "resolved"], resolved)
        yield sent


def _add_call(
    totals: dict[tuple[str, ...], list[int]], key: tuple[str, ...], retry: int, n: int
) -> None:
    counts = totals.setdefault(key, [0, 0])
    if not retry:
        counts[0] += n
    counts[1] += n


def _add_event(
    counts: dict[tuple[str, str, str], list[float]],
    key: tuple[str, str, str],
    n: int,
    total: float,
) -> None:
    found = counts.setdefault(key, [0.0, 0.0])
    found[0] += n
    found[1] += total


def _hist(
    hist: dict[tuple[str, ...], list[float]], key: tuple[str, ...]
) -> list[float]:
    # Bucket counts, the unbounded bucket, then the sum in milliseconds.
    series = hist.get(key)
    if series is None:
        series = hist[key] = [0.0] * (len(BOUNDS_MS) + 2)
    return series


def _buckets(series: list[float]) -> list[tuple[str, float]]:
    cumulative = 0.0
    out = []
    for bound, count in zip(BOUNDS_MS, series, strict=False):
        cumulative += count
        out.append((f"{bound / 1000.0:g}", cumulative))
    cumulative += series[len(BOUNDS_MS)]
    out.append(("+Inf", cumulative))
    return out


def render(
    db: Database,
    *,
    live: Mapping[str, Mapping[str, Any]] | None = None,
    now: float | None = None,
) -> bytes:
    """The whole exposition, in the text format Prometheus scrapes.

    :raises PrometheusUnavailable: when prometheus-client is not installed.
    """
    _client()
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(db, live=live, now=now))
    output: bytes = generate_latest(registry)
    return output


__all__ = ["CONTENT_TYPE", "PrometheusUnavailable", "StoreCollector", "render"]
