"""Alert rules on a fake clock: fire and resolve edges, cooldown, defaults, sinks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Upstream, json_answer

from revo_sdk import AttemptRecord, Client, IntegrationConfig, _queue, hookimpl
from revo_sdk._alerts import (
    DEFAULT_RULES,
    AlertManager,
    AlertRule,
    HookSink,
    SlackSink,
    get_alert,
    list_alerts,
)
from revo_sdk._db import Database
from revo_sdk._health import HealthResult, store_result
from revo_sdk._metrics import Metrics
from revo_sdk._plugins import make_plugin_manager
from revo_sdk._records import AlertRecord

T0 = 1_700_000_000.0

HEALTH = AlertRule(
    "health_failing",
    "revo.health.check.status",
    "last",
    "<",
    1,
    window=900,
    severity="critical",
    cooldown=300,
)


class Clock:
    """A settable epoch clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A fresh database file."""
    database = Database(tmp_path / "alerts.db")
    yield database
    database.close()


def probe(db: Database, ok: bool, at: float, name: str = "github") -> None:
    """Store one health probe result."""
    store_result(db, HealthResult(name, ok, 200 if ok else 0, 5.0, "", at))


def manager(
    db: Database, clock: Clock, rules: list[AlertRule], seen: list[AlertRecord]
) -> AlertManager:
    """A manager whose only sink appends to ``seen``."""
    return AlertManager(lambda: db, rules=rules, sinks=[seen.append], clock=clock)


def test_alerts_fire_once_while_condition_holds(db: Database) -> None:
    """A failing check fires one notification however often rules run."""
    clock, seen = Clock(), []
    alerts = manager(db, clock, [HEALTH], seen)
    probe(db, False, T0)

    for step in range(5):
        clock.now = T0 + step * 10
        alerts.evaluate(["github"])

    assert [(a.rule, a.state) for a in seen] == [("health_failing", "firing")]
    assert list_alerts(db, firing_only=True)[0]["integration"] == "github"


def test_alerts_resolve_once_when_condition_clears(db: Database) -> None:
    """A passing check resolves the alert once and records when."""
    clock, seen = Clock(), []
    alerts = manager(db, clock, [HEALTH], seen)
    probe(db, False, T0)
    alerts.evaluate(["github"])
    probe(db, True, T0 + 20)
    clock.now = T0 + 20

    alerts.evaluate(["github"])
    clock.now = T0 + 30
    alerts.evaluate(["github"])

    assert [a.state for a in seen] == ["firing", "resolved"]
    stored = get_alert(db, seen[0].alert_id or 0)
    assert stored is not None
    assert (stored["state"], stored["resolved_at"]) == ("resolved", T0 + 20)


def test_alerts_cooldown_holds_back_a_refire(db: Database) -> None:
    """After a resolve, the rule fires again only once the cooldown has passed."""
    clock, seen = Clock(), []
    alerts = manager(db, clock, [HEALTH], seen)
    probe(db, False, T0)
    alerts.evaluate(["github"])
    probe(db, True, T0 + 20)
    clock.now = T0 + 20
    alerts.evaluate(["github"])

    probe(db, False, T0 + 30)
    for now in (T0 + 30, T0 + 200, T0 + 299):
        clock.now = now
        alerts.evaluate(["github"])
    held_back = len(seen)
    clock.now = T0 + 300
    alerts.evaluate(["github"])

    assert held_back == 2
    assert [a.state for a in seen] == ["firing", "resolved", "firing"]
    assert seen[-1].timestamp == T0 + 300


def test_alerts_state_survives_a_new_manager(db: Database) -> None:
    """A firing alert stored by one process is resolved by the next one."""
    clock, first, second = Clock(), [], []
    probe(db, False, T0)
    manager(db, clock, [HEALTH], first).evaluate(["github"])
    probe(db, True, T0 + 60)
    clock.now = T0 + 60

    manager(db, clock, [HEALTH], second).evaluate(["github"])

    assert [a.state for a in first] == ["firing"]
    assert [(a.state, a.alert_id) for a in second] == [("resolved", first[0].alert_id)]
    assert list_alerts(db, firing_only=True) == []


def test_alerts_removed_rule_resolves_its_alert(db: Database) -> None:
    """Dropping a rule resolves what it had fired instead of leaving it firing."""
    clock, seen = Clock(), []
    alerts = manager(db, clock, [HEALTH], seen)
    probe(db, False, T0)
    alerts.evaluate(["github"])

    alerts.remove_rule("health_failing")
    alerts.evaluate(["github"])

    assert [a.state for a in seen] == ["firing", "resolved"]


def test_alerts_min_samples_keeps_quiet_on_little_data(db: Database) -> None:
    """One failed call out of one is not an error-rate alert (min_samples=10)."""
    clock, seen = Clock(), []
    metrics = Metrics(lambda: db)
    metrics.record_attempt(
        AttemptRecord("github", "GET", "/x", 500, "server_error", "", 0.1, 1, T0 - 5)
    )
    metrics.close()
    rule = next(r for r in DEFAULT_RULES if r.name == "error_rate")

    manager(db, clock, [rule], seen).evaluate(["github"])

    assert seen == []


def seed_every_default_condition(db: Database) -> None:
    """Data that breaks every built-in rule for ``github``."""
    metrics = Metrics(lambda: db, clock=lambda: T0 - 10)
    for i in range(20):
        outcome = "server_error" if i % 2 else "ok"
        metrics.record_attempt(
            AttemptRecord("github", "GET", "/x", 200, outcome, "", 3.0, 1, T0 - 30)
        )
    metrics.record_event("github", "breaker_change", "closed->open", 1.0)
    metrics.record_event("github", "rate_limit_remaining", "core", 0.05)
    metrics.close()
    probe(db, False, T0 - 5)
    for n in range(2):
        _queue.enqueue(
            db,
            integration="github",
            event="push",
            delivery_id=f"d{n}",
            dedup_key=f"k{n}",
            headers={},
            body=b"{}",
            max_attempts=1,
            now=T0 - 60,
        )
    first, second = _queue.claim(db, limit=2, lease=30, now=T0 - 60)
    _queue.ack(db, first.id, now=T0 - 10)  # 50 s from receipt to done
    _queue.fail(db, second.id, error="boom", retry_in=None, now=T0 - 10)


def test_alerts_every_default_rule_fires_on_its_condition(db: Database) -> None:
    """Breaker, error rate, latency, rate limit, dead letters, health, lag: all fire."""
    seed_every_default_condition(db)
    clock, seen = Clock(), []

    manager(db, clock, list(DEFAULT_RULES), seen).evaluate(["github"])

    assert sorted(a.rule for a in seen) == sorted(r.name for r in DEFAULT_RULES)
    assert {a.state for a in seen} == {"firing"}


def test_alerts_defaults_stay_quiet_on_a_healthy_integration(db: Database) -> None:
    """Fast, successful calls and a passing probe fire nothing."""
    metrics = Metrics(lambda: db)
    for _ in range(20):
        metrics.record_attempt(
            AttemptRecord("github", "GET", "/x", 200, "ok", "", 0.05, 1, T0 - 30)
        )
    metrics.close()
    probe(db, True, T0 - 5)
    seen: list[AlertRecord] = []

    manager(db, Clock(), list(DEFAULT_RULES), seen).evaluate(["github"])

    assert seen == []


def test_alerts_rule_rejects_unknown_metric() -> None:
    """A rule naming a metric alerts cannot read is refused at once."""
    with pytest.raises(ValueError, match="metric must be one of"):
        AlertRule("x", "revo.nothing", "mean", ">", 1)


def test_alerts_rule_rejects_unknown_severity() -> None:
    """Severity is one of critical, warning, info."""
    with pytest.raises(ValueError, match="severity"):
        AlertRule("x", "revo.client.error_rate", "mean", ">", 1, severity="page")


def test_alerts_broken_sink_does_not_silence_others(db: Database) -> None:
    """A sink that raises is logged; the next sink still hears the alert."""
    seen: list[AlertRecord] = []

    def broken(alert: AlertRecord) -> None:
        raise RuntimeError("sink down")

    alerts = AlertManager(
        lambda: db, rules=[HEALTH], sinks=[broken, seen.append], clock=Clock()
    )
    probe(db, False, T0)

    alerts.evaluate(["github"])

    assert len(seen) == 1


def test_alerts_hook_sink_calls_on_alert_plugins(db: Database) -> None:
    """The on_alert hook receives the frozen AlertRecord."""
    received: list[AlertRecord] = []

    class Plugin:
        @hookimpl
        def on_alert(self, alert: AlertRecord) -> None:
            received.append(alert)

    pm = make_plugin_manager([Plugin()], load_entry_points=False)
    alerts = AlertManager(
        lambda: db, rules=[HEALTH], sinks=[HookSink(pm)], clock=Clock()
    )
    probe(db, False, T0)

    alerts.evaluate(["github"])

    assert [(a.rule, a.severity) for a in received] == [("health_failing", "critical")]


def test_alerts_slack_sink_posts_through_the_slack_integration(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The Slack sink sends chat.postMessage through the client's Slack integration."""
    upstream.script("POST", "/chat.postMessage", json_answer(200, {"ok": True}))
    with Client(db_path=tmp_path / "c.db") as client:
        client.register(
            IntegrationConfig(
                name="slack", provider="slack", base_url=upstream.url, token="xoxb-t"
            )
        )
        sink = SlackSink(client, "slack", "#ops")
        alert = AlertRecord(
            "dead_letters", "github", "warning", "firing", "revo.webhook.dead_letters",
            1.0, 0.0, "webhook deliveries are in the dead letters", T0, 1,
        )  # fmt: skip

        sink(alert)
        sink(alert)  # the same edge twice is stored once
        deadline = time.monotonic() + 5
        while not upstream.calls("POST", "/chat.postMessage"):
            assert time.monotonic() < deadline, "no message reached Slack"
            client.webhooks.drain(timeout=1)  # the outbox is sent by workers
            time.sleep(0.01)
        client.webhooks.drain(timeout=1)

    assert len(upstream.calls("POST", "/chat.postMessage")) == 1

    body: dict[str, Any] = json.loads(
        upstream.calls("POST", "/chat.postMessage")[0].body
    )
    assert body["channel"] == "#ops"
    assert "dead_letters firing for github" in body["text"]


def test_alerts_two_managers_on_one_file_notify_each_edge_once(
    db: Database, tmp_path: Path
) -> None:
    """Two processes' managers sharing a file store and tell each edge once."""
    clock, seen_a, seen_b = Clock(), [], []
    other = Database(db.path)  # a second handle, as another process would have
    a = manager(db, clock, [HEALTH], seen_a)
    b = manager(other, clock, [HEALTH], seen_b)
    probe(db, False, T0)

    a.evaluate(["github"])
    b.evaluate(["github"])  # loaded before a's row existed in its own view
    assert len(seen_a) + len(seen_b) == 1
    # Evaluating at the same moment, b would find no firing row yet: its
    # insert must then lose to a's.
    assert b._fire(other, HEALTH, "github", 0.0, clock.now) is None
    assert len(db.query("SELECT id FROM alerts WHERE resolved_at IS NULL")) == 1

    clock.now += 60
    probe(db, True, clock.now)
    a.evaluate(["github"])
    b.evaluate(["github"])
    states = [x.state for x in seen_a + seen_b]
    assert states.count("resolved") == 1
    other.close()
