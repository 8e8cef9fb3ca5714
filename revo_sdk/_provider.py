"""The provider interface a plugin implements, and the values it returns.

A provider knows one service's protocol: where it lives, how to authenticate,
how to read its answers (including rate-limit signals) and how to verify and
name its webhooks. Providers are pure: they never perform I/O, so each method
can be tested with plain values.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ._config import CachePolicy, IntegrationConfig, LimiterPolicy, Timeouts
from ._pagination import first_list, link_next
from ._retry import parse_retry_after

OutcomeKind = Literal[
    "ok",  # a usable answer
    "retry",  # transient failure; retry after ``retry_after`` or the backoff
    "rate_limited",  # the scope is exhausted until ``retry_after`` seconds from now
    "auth",  # credentials rejected; never retried
    "client_error",  # the request itself is wrong (4xx); never retried
    "fatal",  # a failure retrying cannot fix
]

VerifyReason = Literal[
    "ok",
    "missing_header",
    "bad_format",
    "stale_timestamp",
    "future_timestamp",
    "mismatch",
    "no_secret",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A provider's reading of one response.

    :param kind: what the pipeline should do with it.
    :param reason: a short stable code for logs and metrics, such as
        ``http_503`` or ``secondary_rate_limit``.
    :param retry_after: seconds the server asked us to wait, if it said.
    :param scope: the rate-limit bucket the answer speaks for.
    """

    kind: OutcomeKind
    reason: str = ""
    retry_after: float | None = None
    scope: str = "default"
    #: ``retry_after`` is the provider's guess, not the server's word: the
    #: pipeline doubles it for each further rate limit in a row on the same
    #: scope (GitHub's advice for secondary limits).
    grows: bool = False

    @property
    def is_failure(self) -> bool:
        """True for outcomes the circuit breaker counts against the service."""
        return self.kind in ("retry", "rate_limited", "fatal")


OK = Outcome("ok", "ok")


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What the provider's headers said about remaining quota."""

    scope: str
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # epoch seconds


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The result of checking a webhook signature; never an exception."""

    ok: bool
    reason: VerifyReason

    def __bool__(self) -> bool:
        return self.ok


VERIFIED = VerifyResult(True, "ok")


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified delivery, named.

    :param event: the event name handlers subscribe to (GitHub's
        ``X-GitHub-Event``, Slack's inner ``event.type``, Jira's
        ``webhookEvent``).
    :param delivery_id: the sender's id for this delivery.
    :param dedup_key: identical for redeliveries of the same event, and
        different for distinct events; the queue stores one row per key.
    :param payload: the decoded body.
    :param reply: when set, answered to the sender at once and not queued
        (a handshake such as Slack's URL verification): status, content type,
        body.
    """

    event: str
    delivery_id: str
    dedup_key: str
    payload: Any = None
    reply: tuple[int, str, bytes] | None = None


class Provider:
    """Base class of provider plugins; override what differs.

    Subclasses set :attr:`name` and usually :attr:`default_base_url`,
    :attr:`health_path` and the defaults, and implement
    :meth:`auth_headers`, :meth:`classify`, :meth:`verify_webhook` and
    :meth:`parse_webhook`. Instances are shared between threads and must not
    keep per-call state.
    """

    #: The provider's name; integrations select it with ``provider=``.
    name: ClassVar[str] = ""
    #: Base URL used when the integration does not give one; ``None`` makes
    #: ``base_url`` required.
    default_base_url: ClassVar[str | None] = None
    #: Path of a cheap authenticated request that tells whether the service
    #: is reachable and the credentials work.
    health_path: ClassVar[str] = "/"
    health_method: ClassVar[str] = "GET"
    default_timeouts: ClassVar[Timeouts] = Timeouts()
    default_limiter: ClassVar[LimiterPolicy] = LimiterPolicy()
    default_cache: ClassVar[CachePolicy] = CachePolicy()
    #: Header names whose values are secret (merged with the core's set).
    sensitive_headers: ClassVar[frozenset[str]] = frozenset()

    def default_headers(self, config: IntegrationConfig) -> dict[str, str]:
        """Headers sent on every request (``Accept``, API version, ...)."""
        return {}

    def auth_headers(self, config: IntegrationConfig) -> dict[str, str]:
        """Credential headers for ``config``; empty when it has no token."""
        if config.token:
            return {"Authorization": f"Bearer {config.token}"}
        return {}

    def classify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, path: str = ""
    ) -> Outcome:
        """Read one response. ``headers`` is case-insensitive; ``path`` is the
        request's path under the base URL (Slack names its method there).

        The default treats 2xx/3xx as ok, 429 and 5xx as retryable, 401 as
        an authentication failure and other 4xx as client errors, honouring
        a numeric ``Retry-After``.
        """
        if status < 400:
            return OK
        retry_after = parse_retry_after_seconds(headers.get("Retry-After"))
        if status == 429:
            return Outcome("rate_limited", "http_429", retry_after)
        if status >= 500:
            return Outcome("retry", f"http_{status}", retry_after)
        if status == 401:
            return Outcome("auth", "http_401")
        return Outcome("client_error", f"http_{status}")

    def scope_for(self, method: str, path: str) -> str:
        """The rate-limit bucket a request draws from, besides the
        integration's own ``default`` one.

        A rate-limit :class:`Outcome` whose ``scope`` equals this pauses only
        that bucket; any other scope pauses the whole integration.
        """
        return "default"

    def rate_limit_info(self, headers: Mapping[str, str]) -> RateLimitInfo | None:
        """Quota left according to the response headers, if they say."""
        return None

    def next_page(
        self,
        status: int,
        headers: Mapping[str, str],
        body: Any,
        params: Mapping[str, Any],
    ) -> Mapping[str, Any] | str | None:
        """Where the page after this one is, for :meth:`IntegrationHandle.paginate`.

        :param body: the decoded JSON body (``None`` when there is none).
        :param params: the query parameters this page was fetched with.
        :return: the next page's query parameters, its URL, or ``None``
            after the last page. The default follows an RFC 8288
            ``Link: <url>; rel="next"`` header.
        """
        return link_next(headers)

    def page_items(self, body: Any, path: str) -> list[Any]:
        """The items of one decoded page: the body when it is a list, else
        the first list among its values (``items``, ``members``, ``issues``
        ...), else none."""
        return first_list(body)

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: tuple[str, ...],
        *,
        now: float,
    ) -> VerifyResult:
        """Check a delivery's signature over the raw ``body``.

        Must not raise on malformed input; it returns a reason instead. The
        base class knows no scheme and refuses every signed delivery.
        """
        return VerifyResult(False, "no_secret" if not secrets else "bad_format")

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> WebhookEvent:
        """Name a verified delivery.

        Raises :class:`~revo_sdk.WebhookRejected` (status 400) when the body
        or headers are malformed.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def parse_retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value: whole or decimal seconds
    (fractions round up) or an HTTP date; ``None`` for anything else.

    Strict on purpose: ``1e3``, ``-1``, ``1m0s`` and ``nan`` are garbage, and
    garbage falls back to the normal backoff. Providers share this with the
    pipeline, so a hint means the same whoever reads it.
    """
    if not value:
        return None
    return parse_retry_after(value, now=time.time())
