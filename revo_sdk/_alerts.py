"""Alert rules: evaluated against stored metrics, fired and resolved once each.

A rule names a metric (from :mod:`revo_sdk._monitor_names`), an
aggregation over a window (``mean``, ``min``, ``max``, ``sum``, ``count``,
``last``, ``p95``...), a comparison and a threshold, a severity
(``critical``, ``warning``, ``info``) and a cooldown. The
:class:`AlertManager` evaluates every rule for every integration (the
monitor's scheduler thread does it after each round of health probes):

- when the condition becomes true, the alert *fires*: a row is added to the
  ``alerts`` table and every sink is told once;
- while it stays true nothing more is sent;
- when it becomes false, the alert *resolves*: the row gets
  ``resolved_at`` and every sink is told once;
- a rule does not fire again for the same integration until ``cooldown``
  seconds after its last firing, so a flapping metric does not page anyone
  every minute (the resolve is still sent).

Firing alerts live in the database, so another process (``revo-sdk
alerts``, a restarted application) sees and resolves them.

Sinks are callables taking an :class:`~revo_sdk.AlertRecord`:
:func:`log_sink`, any callback, :class:`HookSink` (the ``on_alert`` plugin
hook) and :class:`SlackSink` (a message through the SDK's own Slack
integration).
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pluggy

from ._db import Database
from ._health import last_event_values, oldest_ready_age, webhook_lags
from ._metrics import last_breaker_states, percentile, summarize
from ._monitor_names import BREAKER_VALUES, BY_NAME, EVENT_METRICS
from ._plugins import notify
from ._records import AlertRecord

if TYPE_CHECKING:
    from ._client import Client

log = logging.getLogger(__name__)

SEVERITIES: Final = ("critical", "warning", "info")
AGGREGATIONS: Final = (
    "mean", "min", "max", "sum", "count", "last", "p50", "p95", "p99",
)  # fmt: skip
COMPARISONS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}

AlertSink = Callable[[AlertRecord], None]


@dataclass(frozen=True, slots=True)
class AlertRule:
    """When to fire an alert.

    :param name: unique rule name (the key of its history).
    :param metric: a name from the metric table that alerts can read
        (:data:`ALERT_METRICS`).
    :param aggregation: how samples in the window become one number.
    :param comparison: one of ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``.
    :param threshold: the value compared with.
    :param window: seconds of data the aggregation covers.
    :param severity: ``critical``, ``warning`` or ``info``.
    :param cooldown: seconds after a firing before it may fire again.
    :param integration: only this integration (``None``: each one).
    :param min_samples: fewer samples in the window never fire (rates
        over two calls are noise).
    :param description: shown in notifications and ``revo-sdk alerts``.
    """

    name: str
    metric: str
    aggregation: str
    comparison: str
    threshold: float
    window: float = 300.0
    severity: str = "warning"
    cooldown: float = 600.0
    integration: str | None = None
    min_samples: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if self.metric not in ALERT_METRICS:
            known = ", ".join(sorted(ALERT_METRICS))
            raise ValueError(f"rule {self.name!r}: metric must be one of {known}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"rule {self.name!r}: unknown aggregation")
        if self.comparison not in COMPARISONS:
            raise ValueError(f"rule {self.name!r}: unknown comparison")
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"rule {self.name!r}: severity must be one of {SEVERITIES}"
            )
        if self.window <= 0 or self.cooldown < 0:
            raise ValueError(f"rule {self.name!r}: window > 0 and cooldown >= 0")

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` meets the condition (no data never does)."""
        return value is not None and COMPARISONS[self.comparison](value, self.threshold)

    def describe(self) -> str:
        return (
            f"{self.aggregation}({self.metric}) over {self.window:g}s "
            f"{self.comparison} {self.threshold:g}"
        )


# -- metric readers --------------------------------------------------------------

#: A reader returns the samples of a metric for one integration in a window.
Reader = Callable[[Database, str, float, float], list[float]]


def _aggregate(samples: Sequence[float], aggregation: str) -> float | None:
    if aggregation == "count":
        return float(len(samples))
    if not samples:
        return None
    if aggregation == "sum":
        return float(sum(samples))
    if aggregation == "mean":
        return sum(samples) / len(samples)
    if aggregation == "min":
        return min(samples)
    if aggregation == "max":
        return max(samples)
    if aggregation == "last":
        return samples[-1]
    return percentile(sorted(samples), float(aggregation[1:]))


def _error_samples(db: Database, name: str, since: float, now: float) -> list[float]:
    # One sample per call: 1 for a call that did not succeed. Counts come
    # from the summary so that retried-then-successful calls are not errors.
    found = summarize(db, since=since, integration=name)
    if not found or not found[0]["calls"]:
        return []
    calls, errors = int(found[0]["calls"]), int(found[0]["errors"])
    return [1.0] * errors + [0.0] * (calls - errors)


def _latency_samples(db: Database, name: str, since: float, now: float) -> list[float]:
    rows = db.query(
        "SELECT latency_ms / 1000.0 FROM metric_attempts WHERE integration = ?"
        " AND ts >= ? AND outcome NOT IN ('cache_hit', 'breaker_open', 'fallback')"
        " ORDER BY ts",
        (name, since),
    )
    return [float(value) for (value,) in rows]


def _breaker_samples(db: Database, name: str, since: float, now: float) -> list[float]:
    state = (last_breaker_states(db, integration=name).get(name) or {}).get("state")
    return [] if state is None else [float(BREAKER_VALUES.get(state, 0))]


def _event_values(kind: str) -> Reader:
    def read(db: Database, name: str, since: float, now: float) -> list[float]:
        rows = db.query(
            "SELECT value FROM metric_events WHERE integration = ? AND kind = ?"
            " AND ts >= ? ORDER BY ts, id",
            (name, kind, since),
        )
        return [float(value) for (value,) in rows]

    return read


def _remaining_samples(
    db: Database, name: str, since: float, now: float
) -> list[float]:
    samples = _event_values("rate_limit_remaining")(db, name, since, now)
    if not samples:
        # Outside the window the last known value still holds.
        last = last_event_values(db, "rate_limit_remaining").get(name)
        samples = [] if last is None else [last]
    return samples


def _dead_samples(db: Database, name: str, since: float, now: float) -> list[float]:
    rows = db.query(
        "SELECT COUNT(*) FROM webhook_events WHERE integration = ? AND status = 'dead'",
        (name,),
    )
    return [float(rows[0][0])]


def _health_samples(db: Database, name: str, since: float, now: float) -> list[float]:
    rows = db.query(
        "SELECT ok FROM health_checks WHERE integration = ? AND ts >= ?"
        " ORDER BY ts, id",
        (name, since),
    )
    return [float(ok) for (ok,) in rows]


def _lag_samples(db: Database, name: str, since: float, now: float) -> list[float]:
    # Processed deliveries, plus the age of the oldest one still waiting:
    # a stuck queue is lag too, even before anything is processed.
    samples = list(webhook_lags(db, since=since).get(name, []))
    waiting = oldest_ready_age(db, now=now).get(name)
    if waiting is not None:
        samples.append(waiting)
    return samples


def _depth_samples(db: Database, name: str, since: float, now: float) -> list[float]:
    rows = db.query(
        "SELECT COUNT(*) FROM webhook_events WHERE integration = ?"
        " AND status IN ('pending', 'processing')",
        (name,),
    )
    return [float(rows[0][0])]


#: Metric name -> reader of its samples; the names an alert rule accepts.
ALERT_METRICS: Final[dict[str, Reader]] = {
    "revo.client.error_rate": _error_samples,
    "revo.client.attempt.duration": _latency_samples,
    "revo.client.breaker.state": _breaker_samples,
    "revo.client.limiter.remaining": _remaining_samples,
    "revo.webhook.dead_letters": _dead_samples,
    "revo.webhook.queue.depth": _depth_samples,
    "revo.webhook.processing.lag": _lag_samples,
    "revo.health.check.status": _health_samples,
    **{
        name: _event_values(kind)
        for kind, name in EVENT_METRICS.items()
        if BY_NAME[name].instrument == "counter"
    },
}

#: The built-in rules; pass your own list to replace them, or change one
#: with ``monitor.alerts.set_rule(replace(rule, threshold=...))``.
DEFAULT_RULES: Final[tuple[AlertRule, ...]] = (
    AlertRule(
        "breaker_open", "revo.client.breaker.state", "last", ">=", 2,
        window=60, severity="critical", cooldown=300,
        description="the circuit breaker is open: calls fail fast",
    ),
    AlertRule(
        "error_rate", "revo.client.error_rate", "mean", ">", 0.02,
        window=300, severity="warning", cooldown=600, min_samples=10,
        description="more than 2 % of calls failed over 5 minutes",
    ),
    AlertRule(
        "latency", "revo.client.attempt.duration", "mean", ">", 2.0,
        window=300, severity="warning", cooldown=600,
        description="mean response time above 2 s over 5 minutes",
    ),
    AlertRule(
        "rate_limit_low", "revo.client.limiter.remaining", "min", "<", 0.10,
        window=300, severity="warning", cooldown=600,
        description="less than 10 % of the server's rate limit left",
    ),
    AlertRule(
        "dead_letters", "revo.webhook.dead_letters", "last", ">", 0,
        window=60, severity="warning", cooldown=3600,
        description="webhook deliveries are in the dead letters",
    ),
    AlertRule(
        "health_failing", "revo.health.check.status", "last", "<", 1,
        window=900, severity="critical", cooldown=300,
        description="the last health check failed",
    ),
    AlertRule(
        "webhook_lag", "revo.webhook.processing.lag", "max", ">", 5.0,
        window=300, severity="warning", cooldown=600,
        description="webhook processing took (or is waiting) more than 5 s",
    ),
)  # fmt: skip


# -- sinks -------------------------------------------------------------------------


def log_sink(alert: AlertRecord) -> None:
    """Log a firing alert as a warning (critical: error), a resolve as info."""
    if alert.state == "firing":
        level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        log.log(
            level,
            "alert %s firing for %s (%s): %s",
            alert.rule,
            alert.integration,
            alert.severity,
            alert.message,
        )
    else:
        log.info("alert %s resolved for %s", alert.rule, alert.integration)


class HookSink:
    """Calls the ``on_alert`` hook of every plugin.

    Thread safety: as safe as the plugins' hook implementations.
    """

    def __init__(self, plugin_manager: pluggy.PluginManager) -> None:
        self._pm = plugin_manager

    def __call__(self, alert: AlertRecord) -> None:
        notify(self._pm, "on_alert", alert=alert)


class SlackSink:
    """Posts each alert to a Slack channel through the client's own Slack
    integration (so it gets the pipeline's limits, retries and breaker).

    The message is stored in the client's outbox (``client.<name>.enqueue``)
    with an idempotency key per alert and edge, so it survives a restart and
    is sent once, in order, by the webhook workers (``client.webhooks.start()``
    or ``revo-sdk serve``): without running workers nothing is posted. A
    client without an outbox submits it on the integration's thread pool.
    The evaluating thread never waits for Slack; an alert about the Slack
    integration itself is still attempted.

    :param client: the :class:`~revo_sdk.Client`.
    :param integration: name of a Slack integration on that client.
    :param channel: channel id or name.

    Thread safety: safe to call from any thread.
    """

    def __init__(self, client: Client, integration: str, channel: str) -> None:
        self._client = client
        self.integration = integration
        self.channel = channel

    def message(self, alert: AlertRecord) -> dict[str, Any]:
        """The ``chat.postMessage`` body for ``alert``."""
        mark = {"critical": ":red_circle:", "warning": ":warning:"}.get(
            alert.severity, ":information_source:"
        )
        if alert.state == "resolved":
            mark = ":white_check_mark:"
        text = (
            f"{mark} [{alert.severity}] {alert.rule} {alert.state} "
            f"for {alert.integration}: {alert.message}"
        )
        return {"channel": self.channel, "text": text}

    def __call__(self, alert: AlertRecord) -> None:
        handle = self._client.integration(self.integration)
        body = self.message(alert)
        enqueue = getattr(handle, "enqueue", None)
        if callable(enqueue):
            key = f"revo-alert-{alert.alert_id}-{alert.state}"
            if alert.alert_id is None:
                key += f"-{alert.rule}-{alert.integration}-{alert.timestamp}"
            enqueue(
                "POST",
                "/chat.postMessage",
                json=body,
                idempotency_key=key,
                ordering_key="revo-alerts",
            )
        else:
            handle.submit("POST", "/chat.postMessage", json=body, idempotent=False)


# -- evaluation ----------------------------------------------------------------------


class AlertManager:
    """Evaluates rules, records alert history and notifies sinks.

    :param database: returns the database (called on each evaluation).
    :param rules: the rules (default: :data:`DEFAULT_RULES`).
    :param sinks: callables told about every fire and resolve edge.
    :param clock: epoch seconds; inject a fake clock in tests.

    Thread safety: :meth:`evaluate` may be called from any thread; a call
    made while another evaluation runs returns ``[]`` at once. Sinks and
    rules may be changed at any time (they are copied per evaluation).
    """

    def __init__(
        self,
        database: Callable[[], Database],
        *,
        rules: Iterable[AlertRule] | None = None,
        sinks: Iterable[AlertSink] = (log_sink,),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._rules: dict[str, AlertRule] = {
            r.name: r for r in (DEFAULT_RULES if rules is None else rules)
        }
        self.sinks: list[AlertSink] = list(sinks)
        self._clock = clock
        self._running = threading.Lock()
        self._last_fired: dict[tuple[str, str], float] = {}

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        return tuple(self._rules.values())

    def set_rule(self, rule: AlertRule) -> None:
        """Add ``rule`` or replace the rule of the same name."""
        self._rules = {**self._rules, rule.name: rule}

    def remove_rule(self, name: str) -> None:
        """Drop a rule; an alert of it still firing resolves on the next run."""
        self._rules = {k: v for k, v in self._rules.items() if k != name}

    def add_sink(self, sink: AlertSink) -> None:
        self.sinks = [*self.sinks, sink]

    def evaluate(self, integrations: Iterable[str]) -> list[AlertRecord]:
        """Evaluate every rule for every integration once.

        :returns: the fire and resolve notifications sent by this run.
        """
        if not self._running.acquire(blocking=False):
            return []
        try:
            return self._evaluate(list(integrations))
        finally:
            self._running.release()

    def _evaluate(self, integrations: list[str]) -> list[AlertRecord]:
        db = self._database()
        now = self._clock()
        rules = dict(self._rules)
        firing = {
            (rule, integ): (alert_id, fired_at)
            for alert_id, rule, integ, fired_at in db.query(
                "SELECT id, rule, integration, fired_at FROM alerts"
                " WHERE resolved_at IS NULL"
            )
        }
        for (rule, integ), (_, fired_at) in firing.items():
            key = (rule, integ)
            self._last_fired[key] = max(self._last_fired.get(key, fired_at), fired_at)
        sent: list[AlertRecord] = []
        for rule in rules.values():
            names = [rule.integration] if rule.integration else integrations
            for name in names:
                samples = ALERT_METRICS[rule.metric](db, name, now - rule.window, now)
                value = _aggregate(samples, rule.aggregation)
                holds = len(samples) >= rule.min_samples and rule.holds(value)
                key = (rule.name, name)
                if holds and key not in firing:
                    last = self._last_fired.get(key)
                    if last is not None and now - last < rule.cooldown:
                        continue
                    fired = self._fire(db, rule, name, value, now)
                    self._last_fired[key] = now
                    if fired is not None:
                        sent.append(fired)
                elif not holds and key in firing:
                    resolved = self._resolve(db, key, firing[key][0], value, now)
                    if resolved is not None:
                        sent.append(resolved)
        for key, (alert_id, _) in firing.items():
            if key[0] not in rules:  # the rule was removed
                resolved = self._resolve(db, key, alert_id, None, now)
                if resolved is not None:
                    sent.append(resolved)
        for alert in sent:
            self._notify(alert)
        return sent

    def _fire(
        self, db: Database, rule: AlertRule, name: str, value: float | None, now: float
    ) -> AlertRecord | None:
        """Store a firing alert; ``None`` when another process stored it first
        (a unique index allows one firing row per rule and integration)."""
        shown = "no data" if value is None else f"{value:.4g}"
        message = (
            f"{rule.description or rule.describe()} "
            f"({rule.aggregation} {shown} {rule.comparison} {rule.threshold:g})"
        )
        with db.write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO alerts (rule, integration, severity, metric,"
                " value, threshold, message, fired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rule.name, name, rule.severity, rule.metric, value,
                 rule.threshold, message, now),
            )  # fmt: skip
            if cursor.rowcount == 0:
                return None
            alert_id = cursor.lastrowid
        return AlertRecord(
            rule.name, name, rule.severity, "firing", rule.metric, value,
            rule.threshold, message, now, alert_id,
        )  # fmt: skip

    def _resolve(
        self,
        db: Database,
        key: tuple[str, str],
        alert_id: int,
        value: float | None,
        now: float,
    ) -> AlertRecord | None:
        """Store the resolution; ``None`` when another process resolved it."""
        with db.write() as conn:
            changed = conn.execute(
                "UPDATE alerts SET resolved_at = ?, resolved_value = ?"
                " WHERE id = ? AND resolved_at IS NULL",
                (now, value, alert_id),
            ).rowcount
            if changed == 0:
                return None
            severity, metric, threshold, message = conn.execute(
                "SELECT severity, metric, threshold, message FROM alerts WHERE id = ?",
                (alert_id,),
            ).fetchone()
        return AlertRecord(
            key[0], key[1], severity, "resolved", metric, value, threshold,
            message, now, alert_id,
        )  # fmt: skip

    def _notify(self, alert: AlertRecord) -> None:
        for sink in list(self.sinks):
            try:
                sink(alert)
            except Exception as exc:  # one broken sink must not silence the others
                log.warning(
                    "alert sink %r failed for %s: %s: %s",
                    sink,
                    alert.rule,
                    type(exc).__name__,
                    exc,
                )


# -- history -------------------------------------------------------------------------


def list_alerts(
    db: Database,
    *,
    firing_only: bool = False,
    integration: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alert history, newest first."""
    clauses: list[str] = ["1"]
    params: list[Any] = []
    if firing_only:
        clauses.append("resolved_at IS NULL")
    if integration is not None:
        clauses.append("integration = ?")
        params.append(integration)
    if since is not None:
        clauses.append("(fired_at >= ? OR resolved_at >= ? OR resolved_at IS NULL)")
        params += [since, since]
    rows = db.query(
        "SELECT id, rule, integration, severity, metric, value, threshold,"  # noqa: S608 - placeholders only
        " message, fired_at, resolved_at, resolved_value FROM alerts"
        f" WHERE {' AND '.join(clauses)} ORDER BY fired_at DESC, id DESC LIMIT ?",
        (*params, limit),
    )
    return [_alert_dict(row) for row in rows]


def get_alert(db: Database, alert_id: int) -> dict[str, Any] | None:
    """One alert of the history, or ``None``."""
    rows = db.query(
        "SELECT id, rule, integration, severity, metric, value, threshold,"
        " message, fired_at, resolved_at, resolved_value FROM alerts WHERE id = ?",
        (alert_id,),
    )
    return _alert_dict(rows[0]) if rows else None


def _alert_dict(row: Sequence[Any]) -> dict[str, Any]:
    keys = (
        "id", "rule", "integration", "severity", "metric", "value", "threshold",
        "message", "fired_at", "resolved_at", "resolved_value",
    )  # fmt: skip
    alert = dict(zip(keys, row, strict=True))
    alert["state"] = "firing" if alert["resolved_at"] is None else "resolved"
    return alert


__all__ = [
    "ALERT_METRICS",
    "DEFAULT_RULES",
    "AlertManager",
    "AlertRule",
    "HookSink",
    "SlackSink",
    "get_alert",
    "list_alerts",
    "log_sink",
]
