"""revo-sdk: resilient calls, durable webhooks and monitoring for GitHub,
Slack, Jira and any provider a plugin adds.

Start with :class:`Client`; the user guide is in ``docs/``.
"""

from __future__ import annotations

import logging

from ._adapter import PipelineAdapter
from ._alerts import DEFAULT_RULES, AlertRule
from ._breaker import StateChange
from ._client import Client, IntegrationHandle
from ._config import (
    NO_FALLBACK,
    BreakerPolicy,
    BulkheadPolicy,
    CachePolicy,
    IntegrationConfig,
    LimiterPolicy,
    RetryPolicy,
    Timeouts,
)
from ._exceptions import (
    AuthenticationError,
    BulkheadFullError,
    CallError,
    CallTimeoutError,
    CircuitOpenError,
    ClientClosedError,
    ConfigurationError,
    HTTPStatusError,
    PaginationError,
    PermanentHandlerError,
    RateLimitedError,
    ResponseTooLargeError,
    RetryExhaustedError,
    RetryLater,
    RevoError,
    RevoWarning,
    StorageError,
    TooManyRedirectsError,
    TransportError,
    UnknownIntegrationError,
    UnsafeURLError,
    WebhookError,
    WebhookRejected,
)
from ._health import HealthResult, HealthThresholds
from ._monitor import Monitor
from ._monitor_names import METRICS, MetricName
from ._outbox import Enqueued
from ._provider import Outcome, Provider, RateLimitInfo, VerifyResult, WebhookEvent
from ._records import AlertRecord, AttemptRecord, BreakerChange, WebhookRecord
from ._retry import RetryBudget
from ._webhooks import Delivery, WebhookManager, WebhookResponse
from .hookspecs import hookimpl

__all__ = [
    "DEFAULT_RULES",
    "METRICS",
    "NO_FALLBACK",
    "AlertRecord",
    "AlertRule",
    "AttemptRecord",
    "AuthenticationError",
    "BreakerChange",
    "BreakerPolicy",
    "BulkheadFullError",
    "BulkheadPolicy",
    "CachePolicy",
    "CallError",
    "CallTimeoutError",
    "CircuitOpenError",
    "Client",
    "ClientClosedError",
    "ConfigurationError",
    "Delivery",
    "Enqueued",
    "HTTPStatusError",
    "HealthResult",
    "HealthThresholds",
    "IntegrationConfig",
    "IntegrationHandle",
    "LimiterPolicy",
    "MetricName",
    "Monitor",
    "Outcome",
    "PaginationError",
    "PermanentHandlerError",
    "PipelineAdapter",
    "Provider",
    "RateLimitInfo",
    "RateLimitedError",
    "ResponseTooLargeError",
    "RetryBudget",
    "RetryExhaustedError",
    "RetryLater",
    "RetryPolicy",
    "RevoError",
    "RevoWarning",
    "StateChange",
    "StorageError",
    "Timeouts",
    "TooManyRedirectsError",
    "TransportError",
    "UnknownIntegrationError",
    "UnsafeURLError",
    "VerifyResult",
    "WebhookError",
    "WebhookEvent",
    "WebhookManager",
    "WebhookRecord",
    "WebhookRejected",
    "WebhookResponse",
    "hookimpl",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> object:
    if name == "__version__":
        from importlib.metadata import version

        return version("revo-sdk")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
