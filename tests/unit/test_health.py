"""Health probes, states, uptime, the scheduler, status rows and service levels."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Upstream, json_answer

from revo_sdk import AttemptRecord, Client, IntegrationConfig, _queue
from revo_sdk._db import Database
from revo_sdk._health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    HealthResult,
    HealthScheduler,
    assess,
    collect_status,
    recent_results,
    service_levels,
    store_result,
    uptime,
)
from revo_sdk._metrics import Metrics

T0 = 1_700_000_000.0


def result(ok: bool, at: float = T0, name: str = "github") -> HealthResult:
    """A probe result."""
    return HealthResult(
        name, ok, 200 if ok else 503, 12.0, "" if ok else "http 503", at
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A fresh database file."""
    database = Database(tmp_path / "health.db")
    yield database
    database.close()


def test_health_assess_passing_probe_is_healthy() -> None:
    """A passing probe, few errors, fast calls and a closed breaker are healthy."""
    state, reasons = assess(
        [result(True)], calls=100, error_rate=0.01, mean_ms=80, breaker="closed"
    )
    assert (state, reasons) == (HEALTHY, [])


def test_health_assess_one_failed_probe_is_degraded() -> None:
    """The last probe failing (but not twice in a row) is degraded."""
    state, reasons = assess([result(False), result(True)])
    assert state == DEGRADED
    assert reasons == ["last health check failed"]


def test_health_assess_failed_probes_in_a_row_are_unhealthy() -> None:
    """Two failed probes in a row make the integration unhealthy."""
    state, _ = assess([result(False), result(False), result(True)])
    assert state == UNHEALTHY


def test_health_assess_open_breaker_is_unhealthy() -> None:
    """An open breaker is unhealthy even with a passing probe."""
    state, reasons = assess([result(True)], breaker="open")
    assert (state, reasons) == (UNHEALTHY, ["circuit breaker open"])


@pytest.mark.parametrize(
    ("error_rate", "mean_ms", "expected"),
    [
        (0.03, 50.0, DEGRADED),
        (0.5, 50.0, UNHEALTHY),
        (0.0, 2500.0, DEGRADED),
        (0.02, 2000.0, HEALTHY),
    ],
)
def test_health_assess_error_rate_and_latency(
    error_rate: float, mean_ms: float, expected: str
) -> None:
    """Errors above 2 % or mean latency above 2 s degrade; errors above 25 % fail."""
    state, _ = assess([result(True)], calls=50, error_rate=error_rate, mean_ms=mean_ms)
    assert state == expected


def test_health_assess_error_rate_needs_enough_calls() -> None:
    """One failed call out of two does not degrade an integration."""
    state, _ = assess([result(True)], calls=2, error_rate=0.5)
    assert state == HEALTHY


def test_health_assess_without_data_is_unknown() -> None:
    """No probes, no calls and no breaker state is unknown, not healthy."""
    assert assess([]) == (UNKNOWN, [])


def test_health_results_are_stored_and_read_newest_first(db: Database) -> None:
    """Stored probes come back per integration, newest first, limited."""
    for i in range(5):
        store_result(db, result(i % 2 == 0, T0 + i))
    store_result(db, result(True, T0, name="slack"))

    found = recent_results(db, limit=3)

    assert [r.timestamp for r in found["github"]] == [T0 + 4, T0 + 3, T0 + 2]
    assert len(found["slack"]) == 1


def test_health_uptime_is_share_of_passed_probes_in_window(db: Database) -> None:
    """Uptime counts only probes inside the window."""
    store_result(db, result(False, T0 - 1000))
    for i, ok in enumerate([True, True, True, False]):
        store_result(db, result(ok, T0 + i))

    assert uptime(db, since=T0) == {"github": 0.75}


def test_health_scheduler_jitter_stays_within_bounds() -> None:
    """Every wait lies within interval * (1 ± jitter)."""
    scheduler = HealthScheduler(
        names=list,
        probe=result,  # type: ignore[arg-type]  # never called here
        store=lambda r: None,
        interval=10.0,
        jitter=0.2,
        rng=random.Random(7),
    )
    waits = [scheduler.next_wait() for _ in range(500)]
    assert 8.0 <= min(waits) < 8.5
    assert 11.5 < max(waits) <= 12.0


def test_health_scheduler_round_stores_every_integration(db: Database) -> None:
    """One round probes each name, stores each result and then runs after_round."""
    after: list[int] = []

    def probe(name: str) -> HealthResult:
        if name == "jira":
            raise RuntimeError("probe bug")
        return result(True, name=name)

    scheduler = HealthScheduler(
        names=lambda: ["github", "jira"],
        probe=probe,
        store=lambda r: store_result(db, r),
        after_round=lambda: after.append(1),
    )

    results = scheduler.run_round()

    assert [(r.integration, r.ok) for r in results] == [
        ("github", True),
        ("jira", False),
    ]
    assert sorted(recent_results(db)) == ["github", "jira"]
    assert after == [1]


def test_health_scheduler_thread_runs_rounds_until_stopped() -> None:
    """The thread keeps probing at its interval and stops when asked."""
    seen: list[HealthResult] = []
    scheduler = HealthScheduler(
        names=lambda: ["github"],
        probe=lambda name: result(True, name=name),
        store=seen.append,
        interval=0.01,
        jitter=0.5,
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while scheduler.rounds < 3:
            assert time.monotonic() < deadline, "scheduler made no progress"
            time.sleep(0.005)
    finally:
        scheduler.stop()
    rounds = scheduler.rounds
    time.sleep(0.05)

    assert not scheduler.running
    assert scheduler.rounds == rounds
    assert len(seen) >= 3


def test_health_monitor_check_probes_the_provider_path(
    upstream: Upstream, tmp_path: Path
) -> None:
    """client.monitor.check calls GitHub's /rate_limit and stores the result."""
    upstream.script(
        "GET", "/rate_limit", json_answer(200, {}), json_answer(401, {"message": "x"})
    )
    with Client(db_path=tmp_path / "c.db") as client:
        client.register(
            IntegrationConfig(
                name="github", provider="github", base_url=upstream.url, token="t0k"
            )
        )
        first = client.monitor.check("github")
        second = client.monitor.check("github")
        stored = recent_results(client.database)["github"]

    assert (first.ok, first.status) == (True, 200)
    assert (second.ok, second.status) == (False, 401)
    assert [r.ok for r in stored] == [False, True]
    assert upstream.calls("GET", "/rate_limit")


def seed(db: Database) -> None:
    """Calls for github (one failure in 40), a dead and a waiting delivery."""
    metrics = Metrics(lambda: db, clock=lambda: T0 - 10)
    for i in range(40):
        outcome = "server_error" if i == 0 else "ok"
        metrics.record_attempt(
            AttemptRecord("github", "GET", "/r", 200, outcome, "", 0.1, 1, T0 - 30)
        )
    metrics.record_event("github", "cache_hit", "/r", 1.0)
    metrics.record_event("github", "cache_miss", "/r", 1.0)
    metrics.close()
    for n in range(3):
        _queue.enqueue(
            db,
            integration="github",
            event="push",
            delivery_id=f"d{n}",
            dedup_key=f"k{n}",
            headers={},
            body=b"{}",
            max_attempts=1,
            now=T0 - 100,
        )
    done, dead = _queue.claim(db, limit=2, lease=30, now=T0 - 100)
    _queue.ack(db, done.id, now=T0 - 99)
    _queue.fail(db, dead.id, error="boom", retry_in=None, now=T0 - 99)
    store_result(db, result(True, T0 - 5))


def test_health_status_row_has_every_column(db: Database) -> None:
    """The status row reports health, latency, errors, cache, queue and dead letters."""
    seed(db)

    (row,) = collect_status(
        db,
        now=T0,
        live={"github": {"limiter": {"default": {"available": 25.0, "burst": 100.0}}}},
    )

    assert row["integration"] == "github"
    assert row["health"] == DEGRADED  # 2.5 % errors
    assert row["calls"] == 40
    assert row["error_rate"] == pytest.approx(1 / 40)
    assert row["p95_ms"] == pytest.approx(100.0)
    assert row["cache_hit_rate"] == 0.5
    assert row["limiter_headroom"] == 0.25
    assert (row["queue_depth"], row["dead_letters"]) == (1, 1)
    assert row["oldest_ready_age"] == pytest.approx(100.0)
    assert row["uptime"] == 1.0
    assert row["firing_alerts"] == []


def test_health_service_levels_pass_and_fail(db: Database) -> None:
    """Success 97.5 % fails the 98 % line; latency and webhook lines pass."""
    seed(db)

    levels = {lv["name"]: lv for lv in service_levels(db, now=T0)}

    assert levels["integration success rate"]["passed"] is False
    assert levels["mean external API response"]["passed"] is True
    assert levels["webhook processing (p95)"]["passed"] is True
    assert levels["webhook processing (p95)"]["measured"] == pytest.approx(1.0)


def test_health_service_levels_without_data_say_so(db: Database) -> None:
    """An empty database gives no verdict rather than a pass."""
    assert [lv["passed"] for lv in service_levels(db, now=T0)] == [None, None, None]
