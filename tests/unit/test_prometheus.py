"""Prometheus exposition, parsed back by prometheus-client's own parser."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import Upstream
from monitor_scenario import REMAINING_RATIO, live_through_everything, make_client

from revo_sdk._db import Database
from revo_sdk._metrics import Metrics
from revo_sdk._monitor_names import EVENT_METRICS, METRICS, prometheus_name
from revo_sdk._prometheus import PrometheusUnavailable, render
from revo_sdk._records import AttemptRecord
from revo_sdk._rollup import compact

parser = pytest.importorskip("prometheus_client.parser")

NOW = 1_700_000_000.0


def families(text: str) -> dict[str, object]:
    """Family name -> family, as prometheus-client reads the exposition."""
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def test_prometheus_every_metric_name_is_exposed_by_the_scenario(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Every documented metric has samples after the scenario that records it."""
    with make_client(upstream, tmp_path / "app.db") as client:
        live_through_everything(client, upstream)
        text = render(client.database, live=client.status()).decode()

    found = families(text)
    missing = [
        m.name
        for m in METRICS
        if prometheus_name(m.name) not in found
        or not found[prometheus_name(m.name)].samples  # type: ignore[attr-defined]
    ]
    assert missing == []


def test_prometheus_samples_match_the_scenario(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Counters and gauges carry the values the scenario produced."""
    with make_client(upstream, tmp_path / "app.db") as client:
        live_through_everything(client, upstream)
        text = render(client.database, live=client.status()).decode()

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser.text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    base = {"integration": "github", "method": "GET"}
    assert (
        value("revo_client_requests_total", **base, route="/flaky", outcome="retry")
        == 1
    )
    assert (
        value("revo_client_attempts_total", **base, route="/flaky", outcome="ok") == 1
    )
    assert value("revo_client_breaker_state", integration="github") == 2
    assert (
        value(
            "revo_client_breaker_transitions_total",
            integration="github",
            **{"from": "closed", "to": "open"},
        )
        == 1
    )
    assert value("revo_webhook_duplicates_total", integration="github") == 1
    assert value("revo_webhook_dead_total", integration="github") == 1
    assert value("revo_webhook_processed_total", integration="github") == 1
    assert value("revo_webhook_retried_total", integration="github") >= 1
    assert (
        value("revo_webhook_queue_depth", integration="github", status="pending") == 1
    )
    assert value("revo_health_check_status", integration="github") == 0
    assert value("revo_health_state", integration="github") == 2
    assert (
        value(
            "revo_alert_firing",
            rule="breaker_open",
            integration="github",
            severity="critical",
        )
        == 1
    )
    assert (
        value("revo_client_limiter_remaining_ratio", integration="github", scope="core")
        == REMAINING_RATIO
    )


def test_prometheus_histogram_buckets_are_cumulative_after_rollup(
    tmp_path: Path,
) -> None:
    """Raw rows and rolled-up rows give one cumulative histogram with the same count."""
    db = Database(tmp_path / "m.db")
    metrics = Metrics(lambda: db)
    for i, latency in enumerate([0.004, 0.02, 0.2, 3.0]):
        ts = NOW - 86_400 if i % 2 else NOW - 10
        metrics.record_attempt(
            AttemptRecord("jira", "GET", "/issue", 200, "ok", "", latency, 1, ts)
        )
    metrics.close()
    compact(db, now=NOW)

    found = families(render(db, now=NOW).decode())
    duration = found["revo_client_attempt_duration_seconds"]
    buckets = [
        s
        for s in duration.samples
        if s.name.endswith("_bucket")  # type: ignore[attr-defined]
    ]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)
    assert buckets[-1].labels["le"] == "+Inf"
    assert counts[-1] == 4
    total = next(
        s.value
        for s in duration.samples  # type: ignore[attr-defined]
        if s.name.endswith("_sum")
    )
    assert total == pytest.approx(3.224)
    requests = found["revo_client_requests"]
    assert sum(s.value for s in requests.samples) == 4  # type: ignore[attr-defined]
    db.close()


def test_prometheus_names_follow_the_convention() -> None:
    """Dots become underscores, seconds get a suffix, counters gain _total."""
    assert prometheus_name("revo.client.requests") == "revo_client_requests"
    assert (
        prometheus_name("revo.client.attempt.duration")
        == "revo_client_attempt_duration_seconds"
    )
    assert prometheus_name("revo.health.uptime") == "revo_health_uptime_ratio"
    assert set(EVENT_METRICS.values()) <= {m.name for m in METRICS}


def test_prometheus_missing_package_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without prometheus-client, render() names the extra to install."""
    db = Database(tmp_path / "m.db")
    monkeypatch.setitem(sys.modules, "prometheus_client.core", None)

    with pytest.raises(PrometheusUnavailable, match=r"revo-sdk\[prometheus\]"):
        render(db)
    db.close()


def test_prometheus_single_label_counter_sums_its_details(tmp_path: Path) -> None:
    """Events with different details but one series are summed, never repeated."""
    db = Database(tmp_path / "m.db")
    metrics = Metrics(lambda: db)
    metrics.record_event("github", "webhook_processed", "", 1.0)
    metrics.record_event("github", "webhook_processed", "no_handler", 1.0)
    metrics.record_event("github", "webhook_processed", "no_handler", 1.0)
    metrics.close()
    text = render(db).decode()
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("revo_webhook_processed_total{")
    ]
    assert len(lines) == 1
    assert lines[0].endswith(" 3.0")
    db.close()
