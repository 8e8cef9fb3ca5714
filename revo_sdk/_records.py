"""Frozen records handed to metrics and to observation hooks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of an outgoing call, or a call answered without one.

    ``status`` is 0 when no HTTP answer arrived (connection error, open
    breaker, cache hit). ``outcome`` is the provider's classification kind or
    one of ``cache_hit``, ``breaker_open``, ``transport_error``, ``fallback``.
    """

    integration: str
    method: str
    route: str
    status: int
    outcome: str
    reason: str
    latency: float  # seconds
    attempt: int  # 1 for the first attempt
    timestamp: float  # epoch seconds
    rate_limit_wait: float = 0.0  # seconds spent waiting for the limiter


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """A circuit breaker changed state."""

    integration: str
    old: str
    new: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """Something happened to a webhook delivery.

    ``stage`` is one of ``received``, ``duplicate``, ``rejected``,
    ``processed``, ``retried``, ``dead``; ``reason`` says why for the
    unhappy stages.
    """

    integration: str
    event: str
    stage: str
    reason: str
    timestamp: float
    event_id: int | None = None


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert rule started or stopped firing for one integration.

    ``state`` is ``firing`` or ``resolved``; ``value`` is the aggregated
    metric value that crossed (or went back over) ``threshold``, ``None``
    when there was no data. ``alert_id`` is the row of the alert history.
    """

    rule: str
    integration: str
    severity: str
    state: str
    metric: str
    value: float | None
    threshold: float
    message: str
    timestamp: float
    alert_id: int | None = None
