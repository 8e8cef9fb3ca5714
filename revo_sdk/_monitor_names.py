"""The one table of metric names, units and labels revo-sdk reports.

Names follow the OpenTelemetry semantic-convention style: dotted,
lower-case, a namespace first (``revo.client`` for outgoing calls,
``revo.webhook`` for incoming deliveries, ``revo.health`` and
``revo.alert`` for the monitor), units in UCUM (``s``, ``1``,
``{request}``). :func:`prometheus_name` turns one into the name Prometheus
scrapes (``revo.client.requests`` -> ``revo_client_requests_total``).

Each entry also says where its numbers come from (``source``): the stored
attempt records, a pipeline event kind, the webhook queue, the health
probes or the alert history. ``docs/monitoring.md`` prints this table, and
the tests check that every name is produced by the scenario that should
produce it.

Label values are always bounded sets chosen by the SDK or the operator
(integration names, route templates, outcome kinds, reasons); nothing a
remote sender chooses ever becomes a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Instrument = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True, slots=True)
class MetricName:
    """One documented metric.

    :param name: the dotted OpenTelemetry-style name.
    :param instrument: ``counter`` (only goes up), ``histogram`` or ``gauge``.
    :param unit: a UCUM unit.
    :param labels: label (attribute) names, in order.
    :param description: one sentence.
    :param source: where the value comes from.
    """

    name: str
    instrument: Instrument
    unit: str
    labels: tuple[str, ...]
    description: str
    source: str


def _m(
    name: str,
    instrument: Instrument,
    unit: str,
    labels: tuple[str, ...],
    description: str,
    source: str,
) -> MetricName:
    return MetricName(name, instrument, unit, labels, description, source)


_I = ("integration",)
_CALL = ("integration", "method", "route", "outcome")

#: Every metric revo-sdk reports, in the order the docs list them.
METRICS: Final[tuple[MetricName, ...]] = (
    _m("revo.client.requests", "counter", "{request}", _CALL,
       "Calls made (first attempts), by how the attempt ended.",
       "attempt records with attempt = 1"),
    _m("revo.client.attempts", "counter", "{attempt}", _CALL,
       "Every attempt, retries included.", "attempt records"),
    _m("revo.client.attempt.duration", "histogram", "s",
       ("integration", "method", "route"),
       "Time of attempts that went to the network.",
       "attempt records (not cache hits, open breaker, fallback)"),
    _m("revo.client.error_rate", "gauge", "1", _I,
       "Share of calls that did not succeed, over a window.",
       "attempt records (1 - successes / calls)"),
    _m("revo.client.retries", "counter", "{retry}", ("integration", "reason"),
       "Retries scheduled, by the reason of the failed attempt.",
       "event retry"),
    _m("revo.client.retry_budget.refusals", "counter", "{retry}", _I,
       "Retries refused because the retry budget was spent.",
       "event retry_budget_refused"),
    _m("revo.client.cache.hits", "counter", "{request}", _I,
       "Calls answered from the response cache.", "event cache_hit"),
    _m("revo.client.cache.misses", "counter", "{request}", _I,
       "Cacheable calls that went to the network.", "event cache_miss"),
    _m("revo.client.cache.revalidations", "counter", "{request}", _I,
       "Cached responses revalidated by a conditional request.",
       "event cache_revalidated"),
    _m("revo.client.cache.stale_served", "counter", "{request}", _I,
       "Stale cached responses served because the call failed.",
       "event cache_stale"),
    _m("revo.client.fallbacks", "counter", "{request}", _I,
       "Calls answered by the caller's fallback.", "event fallback"),
    _m("revo.client.breaker.state", "gauge", "1", _I,
       "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
       "last event breaker_change"),
    _m("revo.client.breaker.transitions", "counter", "{transition}",
       ("integration", "from", "to"),
       "Circuit breaker state changes.", "event breaker_change"),
    _m("revo.client.limiter.waits", "counter", "{wait}", ("integration", "scope"),
       "Calls that waited for the rate limiter.",
       "event rate_limit_wait, else attempt records with a wait"),
    _m("revo.client.limiter.wait.duration", "counter", "s",
       ("integration", "scope"),
       "Total time calls waited for the rate limiter.",
       "event rate_limit_wait, else attempt records with a wait"),
    _m("revo.client.limiter.pauses", "counter", "{pause}", ("integration", "scope"),
       "Pauses a server asked for (429, Retry-After, reset headers).",
       "event rate_limit_pause"),
    _m("revo.client.limiter.remaining", "gauge", "1", ("integration", "scope"),
       "Fraction of the server's rate limit still available (0 to 1).",
       "last event rate_limit_remaining"),
    _m("revo.client.bulkhead.rejections", "counter", "{request}", _I,
       "Calls refused because the bulkhead was full.",
       "event bulkhead_rejected"),
    _m("revo.webhook.received", "counter", "{delivery}", _I,
       "Deliveries accepted into the queue.", "event webhook_received"),
    _m("revo.webhook.rejected", "counter", "{delivery}", ("integration", "reason"),
       "Deliveries refused, by reason.", "event webhook_rejected"),
    _m("revo.webhook.verification.failures", "counter", "{delivery}",
       ("integration", "reason"),
       "Deliveries refused because their signature did not verify.",
       "event webhook_rejected with a signature reason"),
    _m("revo.webhook.duplicates", "counter", "{delivery}", _I,
       "Deliveries already in the queue.", "event webhook_duplicate"),
    _m("revo.webhook.processed", "counter", "{delivery}", _I,
       "Deliveries handled successfully.", "event webhook_processed"),
    _m("revo.webhook.retried", "counter", "{delivery}", _I,
       "Handler failures that will be tried again.", "event webhook_retried"),
    _m("revo.webhook.dead", "counter", "{delivery}", _I,
       "Deliveries moved to the dead letters.", "event webhook_dead"),
    _m("revo.webhook.processing.lag", "histogram", "s", _I,
       "Time from receipt to successful processing.",
       "webhook queue (done events)"),
    _m("revo.webhook.queue.depth", "gauge", "{delivery}", ("integration", "status"),
       "Deliveries in the queue, by status.", "webhook queue"),
    _m("revo.webhook.dead_letters", "gauge", "{delivery}", _I,
       "Deliveries in the dead letters.", "webhook queue"),
    _m("revo.webhook.queue.oldest_ready_age", "gauge", "s", _I,
       "Age of the oldest delivery ready to be processed.", "webhook queue"),
    _m("revo.health.check.status", "gauge", "1", _I,
       "Last health probe: 1 passed, 0 failed.", "health_checks table"),
    _m("revo.health.check.duration", "gauge", "s", _I,
       "Latency of the last health probe.", "health_checks table"),
    _m("revo.health.state", "gauge", "1", _I,
       "Assessed health: 0 healthy, 1 degraded, 2 unhealthy.",
       "probes, error rate, latency, breaker"),
    _m("revo.health.uptime", "gauge", "1", _I,
       "Fraction of passed probes over the uptime window.", "health_checks table"),
    _m("revo.alert.firing", "gauge", "{alert}", ("rule", "integration", "severity"),
       "1 while an alert fires.", "alerts table"),
    _m("revo.alert.notifications", "counter", "{notification}",
       ("rule", "severity", "state"),
       "Fire and resolve notifications sent.", "alerts table"),
)  # fmt: skip

#: Name -> entry.
BY_NAME: Final[dict[str, MetricName]] = {m.name: m for m in METRICS}

#: Event kinds (``Metrics.record_event``) and the counter each one feeds.
EVENT_METRICS: Final[dict[str, str]] = {
    "retry": "revo.client.retries",
    "retry_budget_refused": "revo.client.retry_budget.refusals",
    "cache_hit": "revo.client.cache.hits",
    "cache_miss": "revo.client.cache.misses",
    "cache_revalidated": "revo.client.cache.revalidations",
    "cache_stale": "revo.client.cache.stale_served",
    "fallback": "revo.client.fallbacks",
    "breaker_change": "revo.client.breaker.transitions",
    "rate_limit_wait": "revo.client.limiter.waits",
    "rate_limit_pause": "revo.client.limiter.pauses",
    "rate_limit_remaining": "revo.client.limiter.remaining",
    "bulkhead_rejected": "revo.client.bulkhead.rejections",
    "webhook_received": "revo.webhook.received",
    "webhook_rejected": "revo.webhook.rejected",
    "webhook_duplicate": "revo.webhook.duplicates",
    "webhook_processed": "revo.webhook.processed",
    "webhook_retried": "revo.webhook.retried",
    "webhook_dead": "revo.webhook.dead",
}

#: ``webhook_rejected`` reasons that are not about the signature (the
#: others, answered 401, are counted as verification failures too).
NON_VERIFICATION_REASONS: Final[frozenset[str]] = frozenset(
    {
        "malformed",
        "malformed_body",
        "malformed_header",
        "missing_delivery_id",
        "missing_event",
        "no event name",
        "storage_unavailable",
        "too_large",
        "unknown_integration",
        "unsupported_media_type",
    }
)


def is_verification_failure(reason: str) -> bool:
    """Whether a ``webhook_rejected`` reason says the signature did not verify."""
    return reason not in NON_VERIFICATION_REASONS and not reason.startswith("malformed")


#: Breaker state -> value of ``revo.client.breaker.state``.
BREAKER_VALUES: Final[dict[str, int]] = {"closed": 0, "half_open": 1, "open": 2}

#: Health state -> value of ``revo.health.state``.
HEALTH_VALUES: Final[dict[str, int]] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def prometheus_name(name: str) -> str:
    """The Prometheus family name of ``name`` (without ``_total``).

    Dots become underscores and a seconds unit becomes a ``_seconds``
    suffix, as the OpenTelemetry-to-Prometheus convention does.
    """
    metric = BY_NAME[name]
    base = name.replace(".", "_")
    if metric.unit == "s" and not base.endswith("_seconds"):
        base += "_seconds"
    elif metric.unit == "1" and metric.instrument == "gauge":
        base += "_ratio" if name.endswith(("remaining", "uptime")) else ""
    return base


def markdown_table() -> str:
    """The table as Markdown, as ``docs/monitoring.md`` shows it."""
    lines = [
        "| name | type | unit | labels | what | source |",
        "|---|---|---|---|---|---|",
    ]
    for m in METRICS:
        lines.append(
            f"| `{m.name}` | {m.instrument} | `{m.unit}` | "
            f"{', '.join(m.labels)} | {m.description} | {m.source} |"
        )
    return "\n".join(lines)


__all__ = ["BY_NAME", "EVENT_METRICS", "METRICS", "MetricName", "prometheus_name"]
