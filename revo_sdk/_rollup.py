"""Rolling old metric rows up so the SQLite file stays bounded.

Raw rows (``metric_attempts``, ``metric_events``) are kept for
``raw_retention`` seconds; older ones are folded into one row per minute
and label set (``resolution = 60``) and deleted. Minute rows older than
``minute_retention`` are folded into hour rows (``resolution = 3600``);
hour rows older than ``hour_retention`` are deleted, as are health probe
results older than ``health_retention`` and resolved alerts older than
``alert_retention``. Every step runs in one write transaction, so a crash
leaves either the raw rows or their rollup, never both or neither.

A rollup keeps exact counts, sums and waits, and latencies as a histogram
over :data:`BOUNDS_MS`; percentiles read from rollups are therefore the
upper bound of the bucket the rank falls in (an over-estimate by at most
one bucket). The read helpers here return the same shapes as the raw
queries of :func:`revo_sdk._metrics.summarize`, which merges both.
"""

from __future__ import annotations

import bisect
import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from ._db import Database

log = logging.getLogger(__name__)

#: Upper bounds (milliseconds) of the latency histogram buckets; a last,
#: unbounded bucket follows.
BOUNDS_MS: Final[tuple[float, ...]] = (
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
    1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
)  # fmt: skip

MINUTE: Final = 60
HOUR: Final = 3600

_OFFLINE = ("cache_hit", "breaker_open", "fallback")


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each resolution is kept, in seconds."""

    raw: float = 2 * HOUR
    minute: float = 2 * 86400
    hour: float = 90 * 86400
    health: float = 14 * 86400
    alerts: float = 90 * 86400


def bucket_of(latency_ms: float) -> int:
    """Index of the histogram bucket ``latency_ms`` falls in."""
    return bisect.bisect_left(BOUNDS_MS, latency_ms)


def bucket_value(index: int, mean_ms: float) -> float:
    """The value a percentile reports for bucket ``index``: its upper bound,
    or the rollup's mean latency for the unbounded last bucket."""
    return BOUNDS_MS[index] if index < len(BOUNDS_MS) else max(mean_ms, BOUNDS_MS[-1])


def compact(
    db: Database, *, now: float, retention: Retention | None = None
) -> dict[str, int]:
    """Roll up and prune everything older than the retention allows.

    :returns: rows handled per step (``attempts``, ``events``,
        ``minutes``, ``event_minutes``, ``hours_pruned``, ``health_pruned``,
        ``alerts_pruned``).
    """
    keep = retention or Retention()
    raw_cut = (now - keep.raw) // MINUTE * MINUTE
    minute_cut = (now - keep.minute) // HOUR * HOUR
    done: dict[str, int] = {}
    with db.write() as conn:
        done["attempts"] = _roll_attempts(conn, "metric_attempts", raw_cut, 0, MINUTE)
        done["events"] = _roll_events(conn, "metric_events", raw_cut, 0, MINUTE)
    with db.write() as conn:
        done["minutes"] = _roll_attempts(
            conn, "metric_rollups", minute_cut, MINUTE, HOUR
        )
        done["event_minutes"] = _roll_events(
            conn, "metric_event_rollups", minute_cut, MINUTE, HOUR
        )
    with db.write() as conn:
        hour_cut = now - keep.hour
        done["hours_pruned"] = (
            conn.execute(
                "DELETE FROM metric_rollups WHERE ts < ?", (hour_cut,)
            ).rowcount
            + conn.execute(
                "DELETE FROM metric_event_rollups WHERE ts < ?", (hour_cut,)
            ).rowcount
        )
        done["health_pruned"] = conn.execute(
            "DELETE FROM health_checks WHERE ts < ?", (now - keep.health,)
        ).rowcount
        done["alerts_pruned"] = conn.execute(
            "DELETE FROM alerts WHERE resolved_at IS NOT NULL AND resolved_at < ?",
            (now - keep.alerts,),
        ).rowcount
    if any(done.values()):
        log.debug("metrics rollup: %s", done)
    return done


def _roll_attempts(
    conn: sqlite3.Connection, table: str, cut: float, source_res: int, res: int
) -> int:
    groups: dict[tuple[Any, ...], list[Any]] = {}
    if source_res == 0:
        rows = conn.execute(
            "SELECT ts, integration, method, route, outcome, attempt > 1, 1,"
            " latency_ms, NULL, rate_limit_wait_ms > 0, rate_limit_wait_ms"
            " FROM metric_attempts WHERE ts < ?",
            (cut,),
        )
    else:
        rows = conn.execute(
            "SELECT ts, integration, method, route, outcome, retry, n,"  # noqa: S608 - fixed table name
            f" latency_sum_ms, latency_hist, waits, wait_ms FROM {table}"
            " WHERE resolution = ? AND ts < ?",
            (source_res, cut),
        )
    handled = 0
    for ts, integ, method, route, outcome, retry, n, lat, hist, waits, wait in rows:
        handled += 1
        key = (ts // res * res, integ, method, route, outcome, int(retry))
        group = groups.get(key)
        if group is None:
            group = groups[key] = [0, 0, 0.0, [0] * (len(BOUNDS_MS) + 1), 0, 0.0]
        group[0] += n
        if hist is None:
            if outcome not in _OFFLINE:
                group[1] += 1
                group[2] += lat
                group[3][bucket_of(lat)] += 1
        else:
            counts = json.loads(hist)
            group[1] += sum(counts)
            group[2] += lat
            for i, count in enumerate(counts):
                group[3][i] += count
        group[4] += int(waits)
        group[5] += wait
    if not handled:
        return 0
    conn.executemany(
        "INSERT INTO metric_rollups (ts, resolution, integration, method, route,"
        " outcome, retry, n, latency_n, latency_sum_ms, latency_hist, waits, wait_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (*key[:1], res, *key[1:], g[0], g[1], g[2], json.dumps(g[3]), g[4], g[5])
            for key, g in groups.items()
        ],
    )
    if source_res == 0:
        conn.execute("DELETE FROM metric_attempts WHERE ts < ?", (cut,))
    else:
        conn.execute(
            "DELETE FROM metric_rollups WHERE resolution = ? AND ts < ?",
            (source_res, cut),
        )
    return handled


def _roll_events(
    conn: sqlite3.Connection, table: str, cut: float, source_res: int, res: int
) -> int:
    if source_res == 0:
        rows = conn.execute(
            "SELECT ts, integration, kind, detail, 1, value, value, ts"
            " FROM metric_events WHERE ts < ? ORDER BY ts, id",
            (cut,),
        )
    else:
        rows = conn.execute(
            "SELECT ts, integration, kind, detail, n, value, last_value, last_ts"  # noqa: S608 - fixed table name
            f" FROM {table} WHERE resolution = ? AND ts < ? ORDER BY last_ts, id",
            (source_res, cut),
        )
    groups: dict[tuple[Any, ...], list[Any]] = {}
    handled = 0
    for ts, integ, kind, detail, n, value, last_value, last_ts in rows:
        handled += 1
        key = (ts // res * res, integ, kind, detail)
        group = groups.get(key)
        if group is None:
            group = groups[key] = [0, 0.0, 0.0, 0.0]
        group[0] += n
        group[1] += value
        if last_ts >= group[3]:
            group[2], group[3] = last_value, last_ts
    if not handled:
        return 0
    conn.executemany(
        "INSERT INTO metric_event_rollups (ts, resolution, integration, kind,"
        " detail, n, value, last_value, last_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(key[0], res, *key[1:], *g) for key, g in groups.items()],
    )
    if source_res == 0:
        conn.execute("DELETE FROM metric_events WHERE ts < ?", (cut,))
    else:
        conn.execute(
            "DELETE FROM metric_event_rollups WHERE resolution = ? AND ts < ?",
            (source_res, cut),
        )
    return handled


# -- reading -----------------------------------------------------------------


def _where(
    since: float | None, integration: str | None, *, since_sql: str = "ts >= ?"
) -> tuple[str, list[Any]]:
    """A WHERE clause (and its parameters) for an optional time window and
    integration; ``since_sql`` compares the time column with ``since``."""
    clauses: list[str] = ["1"]
    params: list[Any] = []
    if since is not None:
        clauses.append(since_sql)
        params.append(since)
    if integration is not None:
        clauses.append("integration = ?")
        params.append(integration)
    return " AND ".join(clauses), params


# A bucket counts when it starts in the window (its start is floored, so up
# to one bucket before ``since`` may be included).
_BUCKET_SINCE = "ts >= ? - resolution"


def attempt_groups(
    db: Database, *, since: float | None = None, integration: str | None = None
) -> Iterator[dict[str, Any]]:
    """Rolled-up attempts grouped like the raw summary query: ``integration``,
    ``method``, ``route``, ``outcome``, ``attempt`` (1 or 2), ``n``,
    ``waits``, ``wait_seconds``, ``latency_n``, ``latency_sum_ms`` and
    ``hist`` (bucket counts)."""
    where, params = _where(since, integration, since_sql=_BUCKET_SINCE)
    rows = db.query(
        "SELECT integration, method, route, outcome, retry, SUM(n), SUM(waits),"  # noqa: S608 - placeholders only
        " TOTAL(wait_ms), SUM(latency_n), TOTAL(latency_sum_ms),"
        " json_group_array(latency_hist)"
        f" FROM metric_rollups WHERE {where}"
        " GROUP BY integration, method, route, outcome, retry",
        tuple(params),
    )
    for (
        integ,
        method,
        route,
        outcome,
        retry,
        n,
        waits,
        wait_ms,
        lat_n,
        lat,
        hists,
    ) in rows:
        counts = [0] * (len(BOUNDS_MS) + 1)
        for hist in json.loads(hists):
            for i, count in enumerate(json.loads(hist)):
                counts[i] += count
        yield {
            "integration": integ,
            "method": method,
            "route": route,
            "outcome": outcome,
            "attempt": 2 if retry else 1,
            "n": n,
            "waits": waits,
            "wait_seconds": wait_ms / 1000.0,
            "latency_n": lat_n,
            "latency_sum_ms": lat,
            "hist": counts,
        }


def event_groups(
    db: Database, *, since: float | None = None, integration: str | None = None
) -> Iterator[dict[str, Any]]:
    """Rolled-up events: ``integration``, ``kind``, ``detail``, ``n``,
    ``total``, ``last_value``, ``last_ts``."""
    where, params = _where(since, integration, since_sql=_BUCKET_SINCE)
    rows = db.query(
        "SELECT integration, kind, detail, SUM(n), TOTAL(value),"  # noqa: S608 - placeholders only
        " MAX(last_ts) FROM metric_event_rollups"
        f" WHERE {where} GROUP BY integration, kind, detail",
        tuple(params),
    )
    for integ, kind, detail, n, total, last_ts in rows:
        yield {
            "integration": integ,
            "kind": kind,
            "detail": detail,
            "n": n,
            "total": total,
            "last_ts": last_ts,
        }


def weighted_percentile(pairs: list[tuple[float, int]], pct: float) -> float | None:
    """The nearest-rank percentile of ``(value, weight)`` pairs (sorted here)."""
    total = sum(w for _, w in pairs)
    if total <= 0:
        return None
    rank = max(1, -(-pct * total // 100))
    seen = 0
    for value, weight in sorted(pairs):
        seen += weight
        if seen >= rank:
            return value
    return sorted(pairs)[-1][0]


def per_minute(
    db: Database, *, since: float, integration: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Calls, errors and mean latency per minute since ``since``, per
    integration, oldest first (raw rows and minute rollups merged).

    Each point has ``ts`` (minute start), ``calls``, ``errors`` and
    ``mean_ms`` (None when no attempt went to the network).
    """
    extra = ""
    params: tuple[object, ...] = (since,)
    if integration is not None:
        extra = " AND integration = ?"
        params = (since, integration)
    points: dict[tuple[str, float], list[float]] = {}
    raw = db.query(
        "SELECT integration, CAST(ts / 60 AS INTEGER) * 60,"  # noqa: S608 - placeholders only
        " TOTAL(attempt <= 1 AND outcome != 'fallback'),"
        " TOTAL(outcome IN ('ok', 'cache_hit')),"
        " TOTAL(outcome NOT IN ('cache_hit', 'breaker_open', 'fallback')),"
        " TOTAL(CASE WHEN outcome NOT IN ('cache_hit', 'breaker_open', 'fallback')"
        " THEN latency_ms ELSE 0 END)"
        f" FROM metric_attempts WHERE ts >= ?{extra} GROUP BY 1, 2",
        params,
    )
    rolled = db.query(
        "SELECT integration, ts, TOTAL(CASE WHEN retry = 0 AND outcome != 'fallback'"  # noqa: S608 - placeholders only
        " THEN n ELSE 0 END), TOTAL(CASE WHEN outcome IN ('ok', 'cache_hit')"
        " THEN n ELSE 0 END), TOTAL(latency_n), TOTAL(latency_sum_ms)"
        f" FROM metric_rollups WHERE resolution = 60 AND ts >= ?{extra} GROUP BY 1, 2",
        tuple(params),
    )
    for name, ts, calls, ok, lat_n, lat_sum in [*raw, *rolled]:
        point = points.setdefault((name, float(ts)), [0.0, 0.0, 0.0, 0.0])
        point[0] += calls
        point[1] += ok
        point[2] += lat_n
        point[3] += lat_sum
    series: dict[str, list[dict[str, Any]]] = {}
    for (name, ts), (calls, ok, lat_n, lat_sum) in sorted(points.items()):
        series.setdefault(name, []).append(
            {
                "ts": ts,
                "calls": int(calls),
                "errors": max(int(calls - ok), 0),
                "mean_ms": lat_sum / lat_n if lat_n else None,
            }
        )
    return series


__all__ = [
    "BOUNDS_MS",
    "Retention",
    "attempt_groups",
    "compact",
    "event_groups",
    "per_minute",
]
