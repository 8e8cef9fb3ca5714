"""Immutable configuration values.

Every policy is a frozen dataclass with keyword-only fields, so one instance
can be shared by many integrations and threads; use :func:`dataclasses.replace`
to derive a changed copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._exceptions import ConfigurationError

RetryStrategy = Literal["exponential", "linear", "fixed", "immediate", "none"]
BreakerMode = Literal["consecutive", "rate"]
BreakerWindow = Literal["count", "time"]
LimiterMode = Literal["token", "window"]

#: Statuses retried by default (429 and the transient 5xx family).
DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

#: Methods that may be resent without the caller saying so (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def _positive(name: str, value: float, *, allow_zero: bool = True) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigurationError(
            f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}"
        )


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Connect and read timeouts in seconds for one integration."""

    connect: float = 10.0
    read: float = 30.0

    def __post_init__(self) -> None:
        _positive("Timeouts.connect", self.connect, allow_zero=False)
        _positive("Timeouts.read", self.read, allow_zero=False)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How failed attempts are retried.

    :param strategy: ``exponential`` (``base_delay * 2**n``), ``linear``
        (``base_delay * n``), ``fixed`` (``base_delay``), ``immediate`` (no
        wait) or ``none`` (never retry).
    :param max_attempts: attempts in all, the first included.
    :param base_delay: seconds; the unit of every strategy.
    :param max_delay: no single wait is longer than this, jitter included.
    :param jitter: spread each wait over ``[delay/2, delay]`` so clients that
        failed together do not retry together, even at the cap.
    :param deadline: seconds for the whole call, every attempt and wait
        included; ``None`` for no deadline.
    :param retry_statuses: statuses that are retried when the provider does
        not classify them itself.
    :param budget_ratio: retries allowed as a share of the integration's
        recent requests (``0.2``: at most one retry per five requests, over
        ``budget_window``), so an outage does not multiply the load on it;
        ``None`` turns the retry budget off.
    :param budget_floor: retries per second always allowed on top of the
        share, so a quiet integration can still retry.
    :param budget_window: seconds of history the budget looks at.
    """

    strategy: RetryStrategy = "exponential"
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True
    deadline: float | None = 120.0
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    budget_ratio: float | None = 0.2
    budget_floor: float = 1.0
    budget_window: float = 10.0

    def __post_init__(self) -> None:
        if self.strategy not in ("exponential", "linear", "fixed", "immediate", "none"):
            raise ConfigurationError(f"unknown retry strategy {self.strategy!r}")
        if self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy.max_attempts must be at least 1")
        _positive("RetryPolicy.base_delay", self.base_delay)
        _positive("RetryPolicy.max_delay", self.max_delay)
        if self.deadline is not None:
            _positive("RetryPolicy.deadline", self.deadline, allow_zero=False)
        if self.budget_ratio is not None:
            _positive("RetryPolicy.budget_ratio", self.budget_ratio)
        _positive("RetryPolicy.budget_floor", self.budget_floor)
        _positive("RetryPolicy.budget_window", self.budget_window, allow_zero=False)

    @property
    def attempts(self) -> int:
        """Attempts actually allowed (1 when the strategy is ``none``)."""
        return 1 if self.strategy == "none" else self.max_attempts


@dataclass(frozen=True, kw_only=True)
class BreakerPolicy:
    """Circuit breaker settings.

    :param failure_threshold: in ``consecutive`` mode, consecutive failures
        that open the circuit.
    :param recovery_timeout: seconds the circuit stays open before it lets
        trial calls through (half-open).
    :param half_open_max_calls: trial permits handed out per half-open round;
        in ``consecutive`` mode that many successes close the circuit and one
        failure opens it again; in ``rate`` mode the round's failure rate
        decides once every trial has reported.
    :param enabled: ``False`` turns the breaker off for the integration.
    :param mode: ``consecutive`` (count failures in a row) or ``rate``
        (failure rate over a window).
    :param failure_rate_threshold: in ``rate`` mode, the share of failed
        calls in the window (``0.5`` is 50 %) at which the circuit opens.
    :param window: ``count`` (the last ``window_size`` calls) or ``time``
        (calls of the last ``window_duration`` seconds).
    :param window_size: calls a ``count`` window holds.
    :param window_duration: seconds a ``time`` window spans; it advances in
        tenths of this span.
    :param minimum_calls: in ``rate`` mode, calls the window must hold before
        its failure rate can open the circuit.
    :param slow_call_duration: seconds after which a successful call counts
        as a failure (reason ``slow_call``); ``None`` never counts a call as
        slow.
    :param max_half_open_time: seconds a half-open round may last before the
        circuit reopens, so a trial that never reports cannot keep it
        half-open; ``None`` waits for the trials forever.
    :param backoff_multiplier: each reopening after a failed half-open round
        multiplies the open period by this (``1.0`` keeps it constant); the
        period returns to ``recovery_timeout`` once the circuit closes.
    :param max_recovery_timeout: longest open period the multiplier reaches.
    """

    failure_threshold: int = 5
    recovery_timeout: float = 30.0
    half_open_max_calls: int = 1
    enabled: bool = True
    mode: BreakerMode = "consecutive"
    failure_rate_threshold: float = 0.5
    window: BreakerWindow = "count"
    window_size: int = 100
    window_duration: float = 60.0
    minimum_calls: int = 10
    slow_call_duration: float | None = None
    max_half_open_time: float | None = 120.0
    backoff_multiplier: float = 1.0
    max_recovery_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ConfigurationError(
                "BreakerPolicy.failure_threshold must be at least 1"
            )
        if self.half_open_max_calls < 1:
            raise ConfigurationError(
                "BreakerPolicy.half_open_max_calls must be at least 1"
            )
        _positive("BreakerPolicy.recovery_timeout", self.recovery_timeout)
        if self.mode not in ("consecutive", "rate"):
            raise ConfigurationError(f"unknown breaker mode {self.mode!r}")
        if self.window not in ("count", "time"):
            raise ConfigurationError(f"unknown breaker window {self.window!r}")
        if not 0.0 < self.failure_rate_threshold <= 1.0:
            raise ConfigurationError(
                "BreakerPolicy.failure_rate_threshold must be in (0, 1], got "
                f"{self.failure_rate_threshold!r}"
            )
        if self.window_size < 1:
            raise ConfigurationError("BreakerPolicy.window_size must be at least 1")
        _positive(
            "BreakerPolicy.window_duration", self.window_duration, allow_zero=False
        )
        if self.minimum_calls < 1:
            raise ConfigurationError("BreakerPolicy.minimum_calls must be at least 1")
        if self.slow_call_duration is not None:
            _positive(
                "BreakerPolicy.slow_call_duration",
                self.slow_call_duration,
                allow_zero=False,
            )
        if self.max_half_open_time is not None:
            _positive(
                "BreakerPolicy.max_half_open_time",
                self.max_half_open_time,
                allow_zero=False,
            )
        if self.backoff_multiplier < 1.0:
            raise ConfigurationError(
                "BreakerPolicy.backoff_multiplier must be at least 1, got "
                f"{self.backoff_multiplier!r}"
            )
        if self.max_recovery_timeout < self.recovery_timeout:
            raise ConfigurationError(
                "BreakerPolicy.max_recovery_timeout must be >= recovery_timeout"
            )


@dataclass(frozen=True, kw_only=True)
class LimiterPolicy:
    """Client-side rate limit of every scope of an integration.

    In ``token`` mode (the default) each scope is a token bucket: ``rate``
    tokens a second, up to ``burst`` saved. In ``window`` mode each scope
    admits at most ``limit`` tokens in any ``window`` seconds, with no burst
    beyond that, which is how quotas such as "30 a minute" are stated.

    :param max_wait: longest a call blocks waiting for a token before it
        raises :class:`~revo_sdk.RateLimitedError`; ``0`` fails fast.
    :param enabled: ``False`` turns client-side rate limiting off.
    :param mode: ``token`` or ``window``; setting ``window`` and ``limit``
        selects ``window`` mode without naming it.
    :param window: seconds of the ``window`` mode's sliding window.
    :param limit: tokens the ``window`` mode admits in any window.
    :param write_interval: least seconds between two writes (calls that are
        not GET, HEAD or OPTIONS) of the integration, which the pipeline
        enforces through the ``write`` scope; ``0`` leaves writes unspaced.
    :param spacing: ``(scope, seconds)`` pairs: each named scope admits one
        call per ``seconds`` at most, instead of the policy's rate and burst.
    :param pace_below: when a server reports that at most this share of its
        quota remains (or, its limit unknown, fewer than ``burst`` calls), the
        scope is paced to spread what remains until the reset.
    """

    rate: float = 10.0
    burst: int = 20
    max_wait: float = 30.0
    enabled: bool = True
    mode: LimiterMode = "token"
    window: float | None = None
    limit: int | None = None
    write_interval: float = 0.0
    spacing: tuple[tuple[str, float], ...] = ()
    pace_below: float = 0.1

    def __post_init__(self) -> None:
        _positive("LimiterPolicy.rate", self.rate, allow_zero=False)
        if self.burst < 1:
            raise ConfigurationError("LimiterPolicy.burst must be at least 1")
        _positive("LimiterPolicy.max_wait", self.max_wait)
        if self.mode not in ("token", "window"):
            raise ConfigurationError(f"unknown limiter mode {self.mode!r}")
        if self.mode == "token" and self.window is not None and self.limit is not None:
            object.__setattr__(self, "mode", "window")
        if self.mode == "window" and (self.window is None or self.limit is None):
            raise ConfigurationError(
                "LimiterPolicy in window mode needs window= (seconds) and limit="
            )
        if self.window is not None:
            _positive("LimiterPolicy.window", self.window, allow_zero=False)
        if self.limit is not None and self.limit < 1:
            raise ConfigurationError("LimiterPolicy.limit must be at least 1")
        _positive("LimiterPolicy.write_interval", self.write_interval)
        for scope, seconds in self.spacing:
            _positive(f"LimiterPolicy spacing of {scope!r}", seconds, allow_zero=False)
        if not 0.0 <= self.pace_below <= 1.0:
            raise ConfigurationError("LimiterPolicy.pace_below must be in [0, 1]")


@dataclass(frozen=True, kw_only=True)
class CachePolicy:
    """Response cache for GETs.

    :param route_ttls: ``(pattern, seconds)`` pairs; the first pattern that
        matches a request path gives its TTL. Patterns are paths in which
        ``*`` matches one segment and a trailing ``**`` any rest.
    :param default_ttl: TTL of paths no pattern matches; ``0`` (the default)
        leaves them uncached.
    :param maxsize: most responses kept per integration.
    """

    enabled: bool = True
    route_ttls: tuple[tuple[str, float], ...] = ()
    default_ttl: float = 0.0
    maxsize: int = 1024

    def __post_init__(self) -> None:
        _positive("CachePolicy.default_ttl", self.default_ttl)
        if self.maxsize < 1:
            raise ConfigurationError("CachePolicy.maxsize must be at least 1")
        for pattern, ttl in self.route_ttls:
            _positive(f"CachePolicy TTL for {pattern!r}", ttl)


@dataclass(frozen=True, kw_only=True)
class BulkheadPolicy:
    """Concurrency limits for one integration.

    :param max_concurrent: calls in flight at once (direct and submitted).
    :param max_wait: seconds a direct call waits for a free slot before
        :class:`~revo_sdk.BulkheadFullError`.
    :param max_queue: submitted calls waiting for a worker thread; one more
        raises :class:`~revo_sdk.BulkheadFullError` at once.
    """

    max_concurrent: int = 10
    max_wait: float = 1.0
    max_queue: int = 100

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ConfigurationError("BulkheadPolicy.max_concurrent must be at least 1")
        if self.max_queue < 0:
            raise ConfigurationError("BulkheadPolicy.max_queue must be >= 0")
        _positive("BulkheadPolicy.max_wait", self.max_wait)


class _Missing:
    """Sentinel type: no fallback configured."""

    def __repr__(self) -> str:
        return "NO_FALLBACK"


NO_FALLBACK: Any = _Missing()

Fallback = Any  # a value, or a callable taking the exception that triggered it


@dataclass(frozen=True, kw_only=True)
class IntegrationConfig:
    """Everything the client needs to talk to one integration.

    ``name`` is how the integration is addressed (``client.<name>``);
    ``provider`` names the plugin that speaks its protocol and defaults to
    ``name``. Settings left ``None`` take the provider's defaults. Secrets are
    kept out of ``repr``.

    :param webhook_secrets: secrets that sign incoming webhooks; several are
        accepted at once so a secret can be rotated without losing events.
    :param allow_unsigned_webhooks: accept deliveries with no signature when
        no secret is configured. Off by default: an integration without a
        secret refuses webhooks.
    :param options: provider-specific settings (for example Jira's
        ``username`` for basic authentication).
    """

    name: str
    provider: str | None = None
    base_url: str | None = None
    token: str | None = field(default=None, repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    allow_unsigned_webhooks: bool = False
    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    breaker: BreakerPolicy | None = None
    limiter: LimiterPolicy | None = None
    cache: CachePolicy | None = None
    bulkhead: BulkheadPolicy | None = None
    fallback: Fallback = NO_FALLBACK
    headers: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "a").isalnum():
            raise ConfigurationError(
                f"integration name {self.name!r} may hold only letters, digits and _"
            )
        secrets: object = self.webhook_secrets  # a lone str is a common slip
        if isinstance(secrets, str):
            object.__setattr__(self, "webhook_secrets", (secrets,))

    @property
    def provider_name(self) -> str:
        return self.provider or self.name
