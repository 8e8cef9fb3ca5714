"""Tests for in-memory metrics, their batched flushing and the summaries."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revo_sdk import AttemptRecord, StorageError
from revo_sdk._db import Database
from revo_sdk._metrics import (
    EVENT_KINDS,
    Metrics,
    last_breaker_states,
    percentile,
    summarize,
)
from revo_sdk._monitor_names import EVENT_METRICS, markdown_table
from revo_sdk._rollup import (
    BOUNDS_MS,
    Retention,
    compact,
    per_minute,
    weighted_percentile,
)

T0 = 1_700_000_000.0


def attempt(
    integration: str = "github",
    *,
    outcome: str = "ok",
    latency_ms: float = 10.0,
    attempt_no: int = 1,
    ts: float = T0,
    route: str = "/repos/{owner}/{repo}",
    wait: float = 0.0,
) -> AttemptRecord:
    """An attempt record with sensible defaults."""
    status = {"ok": 200, "retry": 503, "rate_limited": 429}.get(outcome, 0)
    return AttemptRecord(
        integration=integration,
        method="GET",
        route=route,
        status=status,
        outcome=outcome,
        reason=outcome,
        latency=latency_ms / 1000,
        attempt=attempt_no,
        timestamp=ts,
        rate_limit_wait=wait,
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A fresh database file."""
    database = Database(tmp_path / "metrics.db")
    yield database
    database.close()


def row_count(db: Database, table: str) -> int:
    """Rows in ``table``."""
    return int(db.query(f"SELECT COUNT(*) FROM {table}")[0][0])


class FlakyDatabase:
    """A database factory that fails while ``down`` is true."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.down = True
        self.calls = 0

    def __call__(self) -> Database:
        self.calls += 1
        if self.down:
            raise StorageError("disk I/O error")
        return self.db


def test_metrics_close_flushes_every_record(db: Database) -> None:
    """Everything recorded before close() is in the tables afterwards."""
    metrics = Metrics(lambda: db, flush_interval=60, batch_size=7)
    for i in range(50):
        metrics.record_attempt(attempt(latency_ms=i))
    for _ in range(5):
        metrics.record_event("github", "retry", "http_503", 0.5)

    metrics.close()

    assert row_count(db, "metric_attempts") == 50
    assert row_count(db, "metric_events") == 5
    assert metrics.buffered == 0


def test_metrics_rows_keep_every_field(db: Database) -> None:
    """A flushed attempt row holds the record's values, times in ms."""
    clock_value = T0 + 5
    metrics = Metrics(lambda: db, clock=lambda: clock_value)
    metrics.record_attempt(attempt(outcome="retry", latency_ms=250, wait=1.5))
    metrics.record_event("slack", "breaker_change", "closed->open", 1.0)
    metrics.close()

    row = dict(db.query("SELECT * FROM metric_attempts")[0])
    assert row["integration"] == "github"
    assert row["status"] == 503
    assert row["outcome"] == "retry"
    assert row["latency_ms"] == pytest.approx(250)
    assert row["rate_limit_wait_ms"] == pytest.approx(1500)
    event = dict(db.query("SELECT * FROM metric_events")[0])
    assert (event["ts"], event["kind"], event["detail"]) == (
        clock_value,
        "breaker_change",
        "closed->open",
    )


def test_metrics_flusher_thread_writes_without_flush(db: Database) -> None:
    """The background thread starts on the first record and writes on its own."""
    metrics = Metrics(lambda: db, flush_interval=0.01)
    metrics.record_attempt(attempt())
    try:
        for _ in range(500):  # bounded: 500 polls of 10 ms at most
            if row_count(db, "metric_attempts") == 1:
                break
            time.sleep(0.01)
        assert row_count(db, "metric_attempts") == 1
    finally:
        metrics.close()


def test_metrics_concurrent_records_are_all_written(db: Database) -> None:
    """Records from many threads at once are neither lost nor duplicated."""
    metrics = Metrics(lambda: db, flush_interval=0.005, max_buffer=1_000_000)
    start = threading.Barrier(4)

    def produce(name: str) -> None:
        start.wait()
        for i in range(2000):
            metrics.record_attempt(attempt(name, latency_ms=i % 50))

    threads = [threading.Thread(target=produce, args=(f"i{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    metrics.close()

    assert row_count(db, "metric_attempts") == 8000
    assert {name: snap["calls"] for name, snap in metrics.snapshot().items()} == {
        f"i{n}": 2000 for n in range(4)
    }


def test_metrics_failing_flush_warns_and_keeps_rows(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed write logs a warning and the rows go out with the next flush."""
    flaky = FlakyDatabase(db)
    metrics = Metrics(flaky, flush_interval=60)
    for _ in range(3):
        metrics.record_attempt(attempt())

    with caplog.at_level(logging.WARNING, logger="revo_sdk._metrics"):
        assert metrics.flush() == 0
    assert "keeping 3 rows" in caplog.text
    assert metrics.buffered == 3

    flaky.down = False
    assert metrics.flush() == 3
    metrics.close()
    assert row_count(db, "metric_attempts") == 3


def test_metrics_buffer_bound_drops_oldest_with_count(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Past max_buffer unwritable rows the oldest go, counted and logged."""
    flaky = FlakyDatabase(db)
    metrics = Metrics(flaky, flush_interval=60, max_buffer=10)
    with caplog.at_level(logging.WARNING, logger="revo_sdk._metrics"):
        for i in range(25):
            metrics.record_attempt(attempt(ts=T0 + i))
        metrics.flush()

    assert metrics.dropped == 15
    assert "dropped the" in caplog.text
    flaky.down = False
    metrics.close()
    kept = [row[0] for row in db.query("SELECT ts FROM metric_attempts ORDER BY ts")]
    assert kept == [T0 + i for i in range(15, 25)]


def test_metrics_counters_survive_dropped_rows(db: Database) -> None:
    """Dropping unwritable rows never loses them from the in-memory counters."""
    metrics = Metrics(FlakyDatabase(db), flush_interval=60, max_buffer=5)
    for _ in range(20):
        metrics.record_attempt(attempt())
    metrics.flush()

    assert metrics.snapshot()["github"]["calls"] == 20
    metrics.close()


def test_metrics_without_database_counts_in_memory_only() -> None:
    """With no database there is no thread, no backlog and flush writes nothing."""
    metrics = Metrics(None, max_buffer=10)
    for _ in range(30):
        metrics.record_attempt(attempt())
    metrics.record_event("github", "cache_hit")

    assert metrics.flush() == 0
    assert metrics.buffered == 0
    assert metrics.snapshot()["github"]["calls"] == 30
    assert metrics.dropped == 0
    metrics.close()


def test_metrics_snapshot_reports_rates_and_recent_latency() -> None:
    """snapshot() derives calls, retries, rates and percentiles from records."""
    metrics = Metrics(None)
    metrics.record_attempt(attempt(outcome="retry", latency_ms=100))
    metrics.record_attempt(attempt(outcome="ok", latency_ms=20, attempt_no=2))
    metrics.record_attempt(attempt(outcome="ok", latency_ms=30))
    metrics.record_attempt(attempt(outcome="transport_error", latency_ms=40))
    metrics.record_event("github", "cache_hit")
    metrics.record_event("github", "cache_miss")
    metrics.record_event("github", "cache_miss")
    metrics.record_event("github", "breaker_change", "closed->open")

    snap = metrics.snapshot()["github"]

    assert snap["calls"] == 3
    assert snap["attempts"] == 4
    assert snap["retries"] == 1
    assert snap["successes"] == 2
    assert snap["errors"] == 1
    assert snap["failed_attempts"] == 2
    assert snap["success_rate"] == pytest.approx(2 / 3)
    assert snap["cache_hits"] == 1
    assert snap["cache_misses"] == 2
    assert snap["cache_hit_rate"] == pytest.approx(1 / 3)
    assert snap["breaker_transitions"] == 1
    assert snap["p50_ms"] == pytest.approx(30)
    assert snap["p99_ms"] == pytest.approx(100)


def test_metrics_close_is_idempotent_and_stops_thread(db: Database) -> None:
    """close() twice is harmless and leaves no flusher running."""
    metrics = Metrics(lambda: db, flush_interval=60)
    metrics.record_attempt(attempt())
    metrics.close()
    metrics.close()

    assert metrics._thread is not None
    assert not metrics._thread.is_alive()
    assert row_count(db, "metric_attempts") == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"flush_interval": 0}, {"batch_size": 0}, {"max_buffer": 0}, {"window": 0}],
)
def test_metrics_rejects_nonsense_settings(kwargs: dict[str, Any]) -> None:
    """Zero intervals and sizes are refused at construction."""
    with pytest.raises(ValueError, match="must be"):
        Metrics(None, **kwargs)


def write(db: Database, *records: AttemptRecord) -> None:
    """Store ``records`` through a Metrics object."""
    metrics = Metrics(lambda: db)
    for record in records:
        metrics.record_attempt(record)
    metrics.close()


def write_events(
    db: Database, events: list[tuple[str, str, str, float]], *, ts: float = T0
) -> None:
    """Store ``(integration, kind, detail, value)`` events at ``ts``."""
    metrics = Metrics(lambda: db, clock=lambda: ts)
    for event in events:
        metrics.record_event(*event)
    metrics.close()


def test_summarize_percentiles_of_known_distribution(db: Database) -> None:
    """Latencies 1..100 ms give nearest-rank p50/p95/p99 of 50/95/99 ms."""
    records = [attempt(latency_ms=float(ms)) for ms in range(100, 0, -1)]
    # Answers without a request must not drag the percentiles down.
    records += [attempt(outcome="cache_hit", latency_ms=0.0) for _ in range(50)]
    write(db, *records)

    (github,) = summarize(db)

    assert (github["p50_ms"], github["p95_ms"], github["p99_ms"]) == (50, 95, 99)


def test_summarize_counts_calls_retries_and_rates(db: Database) -> None:
    """Calls count first attempts; success and error rates are per call."""
    write(
        db,
        attempt(outcome="retry"),
        attempt(outcome="ok", attempt_no=2),
        attempt(outcome="ok"),
        attempt(outcome="client_error"),
        attempt(outcome="retry"),
        attempt(outcome="retry", attempt_no=2),
        attempt(outcome="fallback", attempt_no=2),
    )

    (github,) = summarize(db)

    assert github["calls"] == 4
    assert github["attempts"] == 7
    assert github["retries"] == 3
    assert github["successes"] == 2
    assert github["errors"] == 2
    assert github["failed_attempts"] == 4
    assert github["success_rate"] == pytest.approx(0.5)
    assert github["error_rate"] == pytest.approx(0.5)


def test_summarize_filters_by_time_and_integration(db: Database) -> None:
    """since and integration restrict the rows that are summarized."""
    write(
        db,
        attempt("github", ts=T0 - 3600),
        attempt("github", ts=T0),
        attempt("slack", ts=T0),
    )

    recent = summarize(db, since=T0 - 60)
    only_slack = summarize(db, integration="slack")

    assert {s["integration"]: s["calls"] for s in recent} == {"github": 1, "slack": 1}
    assert [(s["integration"], s["calls"]) for s in only_slack] == [("slack", 1)]
    assert summarize(db, since=T0 + 1) == []


def test_summarize_prefers_events_for_cache_and_waits(db: Database) -> None:
    """Cache and wait figures come from events when there are any, else records."""
    write(db, attempt("github", wait=2.0), attempt("slack", wait=0.5))
    write_events(
        db,
        [
            ("github", "cache_hit", "/r", 1.0),
            ("github", "cache_hit", "/r", 1.0),
            ("github", "cache_miss", "/r", 1.0),
            ("github", "rate_limit_wait", "default", 3.0),
            ("github", "rate_limit_wait", "default", 4.0),
        ],
    )

    by_name = {s["integration"]: s for s in summarize(db)}

    assert by_name["github"]["cache_hits"] == 2
    assert by_name["github"]["cache_hit_rate"] == pytest.approx(2 / 3)
    assert by_name["github"]["rate_limit_waits"] == 2
    assert by_name["github"]["rate_limit_wait_seconds"] == pytest.approx(7.0)
    assert by_name["slack"]["cache_hit_rate"] == 0.0
    assert by_name["slack"]["rate_limit_waits"] == 1
    assert by_name["slack"]["rate_limit_wait_seconds"] == pytest.approx(0.5)


def test_summarize_breaks_calls_down_by_route(db: Database) -> None:
    """Each route gets its own call figures, busiest route first."""
    write(
        db,
        attempt(route="/a", latency_ms=10),
        attempt(route="/a", latency_ms=30, outcome="retry"),
        attempt(route="/b", latency_ms=5),
    )

    (github,) = summarize(db)

    assert [r["route"] for r in github["routes"]] == ["/a", "/b"]
    route_a = github["routes"][0]
    assert (route_a["calls"], route_a["successes"], route_a["p99_ms"]) == (2, 1, 30)
    assert github["routes"][1]["p50_ms"] == 5


def test_summarize_includes_integrations_with_only_events(db: Database) -> None:
    """An integration that only has events still gets a summary without rates."""
    write_events(db, [("jira", "breaker_change", "closed->open", 1.0)])

    (jira,) = summarize(db)

    assert jira["calls"] == 0
    assert jira["success_rate"] is None
    assert jira["p95_ms"] is None
    assert jira["breaker_transitions"] == 1
    assert jira["routes"] == []


def test_summarize_empty_database_is_empty(db: Database) -> None:
    """No rows means an empty list, not an error."""
    assert summarize(db) == []


def test_last_breaker_states_latest_change_wins(db: Database) -> None:
    """The newest breaker_change event per integration gives its state."""
    write_events(db, [("github", "breaker_change", "closed->open", 1.0)], ts=T0)
    write_events(db, [("github", "breaker_change", "open->half_open", 1.0)], ts=T0 + 1)
    write_events(db, [("slack", "breaker_change", "half_open->closed", 1.0)], ts=T0)
    write_events(db, [("slack", "cache_hit", "", 1.0)], ts=T0 + 5)

    states = last_breaker_states(db)

    assert states == {
        "github": {"state": "half_open", "previous": "open", "at": T0 + 1},
        "slack": {"state": "closed", "previous": "half_open", "at": T0},
    }
    assert set(last_breaker_states(db, integration="slack")) == {"slack"}


@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(0.01, 100),
)
def test_percentile_is_the_nearest_rank(values: list[float], pct: float) -> None:
    """The result is a sample with at least pct% of the samples at or below it."""
    ordered = sorted(values)
    result = percentile(ordered, pct)

    rank = math.ceil(pct / 100 * len(ordered))
    assert result in ordered
    assert sum(v <= result for v in ordered) >= rank
    assert sum(v < result for v in ordered) < rank


def test_percentile_of_nothing_is_none() -> None:
    """An empty sample has no percentile."""
    assert percentile([], 50) is None


# -- rollups --------------------------------------------------------------------

HOUR = 3600.0


def count(db: Database, table: str) -> int:
    """Rows in ``table``."""
    return int(db.query(f"SELECT COUNT(*) FROM {table}")[0][0])


def seed_history(db: Database) -> None:
    """Three days of attempts and events for two integrations."""
    metrics = Metrics(lambda: db)
    for i in range(600):
        ts = T0 - i * 431.0  # every ~7 minutes, back three days
        outcome = ("ok", "ok", "retry", "cache_hit")[i % 4]
        metrics.record_attempt(
            attempt(
                "github" if i % 3 else "jira",
                outcome=outcome,
                latency_ms=float(1 + (i * 37) % 3000),
                attempt_no=2 if i % 5 == 0 else 1,
                ts=ts,
                wait=0.2 if i % 7 == 0 else 0.0,
            )
        )
        if i % 10 == 0:
            metrics.record_event("github", "retry", "server_error", 0.5)
    metrics.close()
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO metric_events (ts, integration, kind, detail, value)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (T0 - 2 * 86400, "jira", "breaker_change", "closed->open", 1.0),
                (T0 - 2 * 86400 + 60, "jira", "breaker_change", "open->half_open", 1.0),
                (T0 - 5 * HOUR, "github", "cache_miss", "/r", 1.0),
            ],
        )


def figures(db: Database) -> list[dict[str, Any]]:
    """The exact (non-latency) figures of every integration."""
    keep = (
        "calls", "attempts", "successes", "retries", "failed_attempts",
        "cache_hits", "rate_limit_waits", "breaker_transitions", "events",
    )  # fmt: skip
    return [{k: s[k] for k in ("integration", *keep)} for s in summarize(db)]


def test_rollup_keeps_counts_exact(db: Database) -> None:
    """Rolling raw rows into minutes and hours changes no count."""
    seed_history(db)
    before = figures(db)

    compact(db, now=T0, retention=Retention(raw=HOUR, minute=6 * HOUR))

    assert figures(db) == before
    assert summarize(db, integration="github")[0]["rate_limit_wait_seconds"] == (
        pytest.approx(summarize(db, integration="github")[0]["rate_limit_waits"] * 0.2)
    )


def test_rollup_latency_percentiles_within_one_bucket(db: Database) -> None:
    """After a rollup p50/p95 are the upper bound of the true value's bucket."""
    seed_history(db)
    before = {s["integration"]: s for s in summarize(db)}

    compact(db, now=T0, retention=Retention(raw=0.0))

    for after in summarize(db):
        for key in ("p50_ms", "p95_ms"):
            exact = before[after["integration"]][key]
            bound = next((b for b in BOUNDS_MS if exact <= b), exact)
            assert exact <= after[key] <= bound
        assert after["mean_ms"] == pytest.approx(
            before[after["integration"]]["mean_ms"]
        )


def test_rollup_bounds_the_file(db: Database) -> None:
    """Old raw rows become minute then hour rows; expired hours are deleted."""
    seed_history(db)
    keep = Retention(raw=HOUR, minute=6 * HOUR, hour=2 * 86400)

    done = compact(db, now=T0, retention=keep)

    assert count(db, "metric_attempts") < 10
    assert done["attempts"] > 500
    oldest_minute = db.query(
        "SELECT MIN(ts) FROM metric_rollups WHERE resolution = 60"
    )[0][0]
    assert oldest_minute >= T0 - 7 * HOUR
    oldest_hour = db.query("SELECT MIN(ts) FROM metric_rollups")[0][0]
    assert oldest_hour >= T0 - 2 * 86400 - HOUR
    assert done["hours_pruned"] > 0


def test_rollup_twice_changes_nothing_more(db: Database) -> None:
    """A second compaction at the same time finds nothing to do."""
    seed_history(db)
    compact(db, now=T0, retention=Retention(raw=HOUR, minute=6 * HOUR))
    before = figures(db)

    again = compact(db, now=T0, retention=Retention(raw=HOUR, minute=6 * HOUR))

    assert set(again.values()) == {0}
    assert figures(db) == before


def test_rollup_keeps_last_breaker_state(db: Database) -> None:
    """The breaker state survives its events being rolled into hours."""
    seed_history(db)

    compact(db, now=T0, retention=Retention(raw=HOUR, minute=HOUR))

    remaining = db.query(
        "SELECT COUNT(*) FROM metric_events WHERE kind = 'breaker_change'"
    )[0][0]
    assert remaining == 0
    assert last_breaker_states(db)["jira"]["state"] == "half_open"


def test_rollup_per_minute_merges_raw_and_rolled(db: Database) -> None:
    """The chart series has the same calls before and after a rollup."""
    seed_history(db)
    before = per_minute(db, since=T0 - 6 * HOUR)

    compact(db, now=T0, retention=Retention(raw=HOUR))

    assert per_minute(db, since=T0 - 6 * HOUR) == before


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1), st.floats(0, 100))
def test_weighted_percentile_with_unit_weights_is_nearest_rank(
    values: list[float], pct: float
) -> None:
    """With every weight 1 the weighted percentile is the plain one."""
    assert weighted_percentile([(v, 1) for v in values], pct) == percentile(
        sorted(values), pct
    )


def test_metrics_flusher_rolls_up_in_background(tmp_path: Path) -> None:
    """The flusher thread compacts old rows without being asked."""
    db = Database(tmp_path / "bg.db")
    metrics = Metrics(
        lambda: db, flush_interval=0.01, rollup_interval=0.01, clock=lambda: T0
    )
    metrics.record_attempt(attempt(ts=T0 - 3 * HOUR))
    deadline = time.monotonic() + 10
    while count(db, "metric_rollups") == 0:
        assert time.monotonic() < deadline, "no rollup happened"
        time.sleep(0.01)
    metrics.close()

    assert count(db, "metric_attempts") == 0
    assert summarize(db)[0]["calls"] == 1
    db.close()


def test_metrics_close_loses_nothing_under_load(tmp_path: Path) -> None:
    """Every record made by several threads is in the file after close()."""
    db = Database(tmp_path / "load.db")
    metrics = Metrics(lambda: db, flush_interval=0.005)

    def work() -> None:
        for _ in range(2000):
            metrics.record_attempt(attempt())
            metrics.record_event("github", "cache_miss", "/r", 1.0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    metrics.close()

    assert count(db, "metric_attempts") == 8000
    assert count(db, "metric_events") == 8000
    db.close()


# -- the names table --------------------------------------------------------------


def test_metric_names_cover_every_event_kind() -> None:
    """Each event kind the SDK records maps to a documented metric."""
    assert EVENT_METRICS.keys() >= EVENT_KINDS
    assert {f"webhook_{s}" for s in ("received", "rejected", "processed")} <= (
        EVENT_METRICS.keys()
    )


def test_metric_names_table_is_in_the_docs() -> None:
    """docs/monitoring.md shows the table exactly as the code defines it."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
    assert markdown_table() in docs.read_text()
