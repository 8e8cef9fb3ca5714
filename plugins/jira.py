"""The Jira provider: Jira Cloud and Data Center REST API, and webhooks
signed with ``X-Hub-Signature``.

Every Jira site has its own address, so an integration must give
``base_url`` (or ``REVO_<NAME>_BASE_URL``); the provider has no default.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from revo_sdk import (
    CachePolicy,
    ConfigurationError,
    LimiterPolicy,
    Outcome,
    Provider,
    RateLimitInfo,
    Timeouts,
    VerifyResult,
    WebhookEvent,
    WebhookRejected,
    hookimpl,
)
from revo_sdk._config import IntegrationConfig
from revo_sdk._pagination import first_list
from revo_sdk._provider import OK, parse_retry_after_seconds
from revo_sdk._signatures import (
    QUOTA_HEADERS,
    as_bytes,
    body_fingerprint,
    header_date,
    header_int,
    header_value,
    is_token,
    lacks_headers,
    load_json_object,
    parse_iso8601,
    verify_jira,
)

log = logging.getLogger(__name__)

#: Signature methods accepted in ``X-Hub-Signature`` (Jira signs with
#: SHA-256; the others are allowed because the header names its method).
SIGNATURE_METHODS = frozenset({"sha256", "sha1", "sha512"})

_SCOPE = re.compile(r"[a-z0-9_.:\-]{1,64}")


class JiraProvider(Provider):
    """Talks to one Jira site (``base_url`` is required).

    Authentication: with ``options["username"]`` (Jira Cloud: the account's
    e-mail) the token is an API token sent as HTTP Basic; without it the
    token is a personal access token sent as ``Bearer`` (Data Center).

    Defaults: 10 s connect / 45 s read (JQL searches can be slow); project
    metadata cached for four hours; the core's default client-side limit of
    10 requests a second with a burst of 20, since Jira publishes no fixed
    number for token traffic and answers overload with 429 and headers that
    pause the named scope.

    Instances hold no per-call state and are safe to share between threads.

    :param clock: wall-clock time in epoch seconds, used with
        ``X-RateLimit-Reset`` when the response has no ``Date`` header.
    """

    name = "jira"
    default_base_url = None
    # /myself needs valid credentials; /serverInfo answers anonymous callers
    # and so would call a revoked token healthy.
    health_path = "/rest/api/2/myself"
    default_timeouts = Timeouts(connect=10.0, read=45.0)
    default_limiter = LimiterPolicy(rate=10.0, burst=20)
    default_cache = CachePolicy(
        route_ttls=(
            ("/rest/api/*/project", 14400.0),
            ("/rest/api/*/project/**", 14400.0),
        )
    )

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def default_headers(self, config: IntegrationConfig) -> dict[str, str]:
        """Ask for JSON; Jira otherwise picks by the request."""
        return {"Accept": "application/json"}

    def auth_headers(self, config: IntegrationConfig) -> dict[str, str]:
        """Basic with ``options["username"]``, else Bearer; empty without a token.

        :raises ConfigurationError: if the username contains ``:``, which
            Basic authentication cannot carry.
        """
        if not config.token:
            return {}
        username = config.options.get("username")
        if not username:
            return {"Authorization": f"Bearer {config.token}"}
        if ":" in username:
            raise ConfigurationError(
                f"Jira username for integration {config.name!r} must not contain ':'"
            )
        pair = f"{username}:{config.token}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}

    def classify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, path: str = ""
    ) -> Outcome:
        """Read one Jira response.

        429 is a rate limit; a 503 is one too when it carries
        ``RateLimit-Reason`` or ``Retry-After`` (Atlassian asks clients to
        treat both alike), and otherwise a retryable overload. The wait is
        ``Retry-After``, else the time until ``X-RateLimit-Reset``; the scope
        is ``RateLimit-Reason`` (``jira-burst-based``, ...) or ``default``.
        Every one of these headers may be absent.
        """
        if status < 400:
            return OK
        reason = _limit_reason(headers)
        hinted = reason is not None or header_value(headers, "Retry-After") is not None
        if status == 429 or (status == 503 and hinted):
            scope = reason or "default"
            wait = self._wait(headers)
            log.debug("jira rate limit on %s: wait %s s", scope, wait)
            return Outcome("rate_limited", f"http_{status}", wait, scope)
        if status >= 500:
            return Outcome("retry", f"http_{status}", self._wait(headers))
        if status == 401:
            return Outcome("auth", "http_401")
        if status == 403:
            return Outcome("client_error", "forbidden")
        return Outcome("client_error", f"http_{status}")

    def _wait(self, headers: Mapping[str, str]) -> float | None:
        retry_after = parse_retry_after_seconds(header_value(headers, "Retry-After"))
        if retry_after is not None:
            return retry_after
        reset = parse_iso8601(header_value(headers, "X-RateLimit-Reset"))
        if reset is None:
            return None  # the pipeline's backoff decides
        now = header_date(headers)
        if now is None:
            now = self._clock()
        return max(reset - now, 1.0)

    def next_page(
        self,
        status: int,
        headers: Mapping[str, str],
        body: Any,
        params: Mapping[str, Any],
    ) -> Mapping[str, Any] | None:
        """The next page of a Jira collection.

        ``nextPageToken`` (the enhanced JQL search) wins; otherwise the next
        ``startAt`` is this page's ``startAt`` plus the ``maxResults`` the
        server *returned* (it may cap what was asked). ``isLast``, reaching
        ``total`` or an empty page ends the walk.
        """
        if not isinstance(body, dict) or body.get("isLast") is True:
            return None
        token = body.get("nextPageToken")
        if isinstance(token, str) and token:
            following = {k: v for k, v in params.items() if k != "startAt"}
            following["nextPageToken"] = token
            return following
        start, size = _count(body.get("startAt")), _count(body.get("maxResults"))
        if start is None or not size or not first_list(body):
            return None
        total = _count(body.get("total"))
        if total is not None and start + size >= total:
            return None
        return {**params, "startAt": start + size}

    def rate_limit_info(self, headers: Mapping[str, str]) -> RateLimitInfo | None:
        """``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (ISO-8601)."""
        if lacks_headers(headers, QUOTA_HEADERS):
            return None  # most answers: skip three case-insensitive scans
        limit = header_int(headers, "X-RateLimit-Limit")
        remaining = header_int(headers, "X-RateLimit-Remaining")
        reset = parse_iso8601(header_value(headers, "X-RateLimit-Reset"))
        if limit is None and remaining is None and reset is None:
            return None
        return RateLimitInfo(
            scope=_limit_reason(headers) or "default",
            limit=limit,
            remaining=remaining,
            reset_at=reset,
        )

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: tuple[str, ...],
        *,
        now: float,
    ) -> VerifyResult:
        """Check ``X-Hub-Signature: <method>=<hex>`` over the raw body.

        The method (``sha256``, ``sha1`` or ``sha512``) chooses the digest.
        See :func:`revo_sdk._signatures.verify_jira`.
        """
        return verify_jira(headers, body, secrets, methods=SIGNATURE_METHODS)

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> WebhookEvent:
        """Name a delivery by the body's ``webhookEvent``.

        The delivery id is ``X-Atlassian-Webhook-Identifier`` (the same for
        Jira's retries of one delivery), else a SHA-256 of the body.
        """
        raw = as_bytes(body)
        if raw is None:
            raise WebhookRejected(400, "malformed_body")
        payload = load_json_object(raw)
        event = payload.get("webhookEvent")
        if not isinstance(event, str) or not event:
            raise WebhookRejected(400, "missing_event")
        if not is_token(event):
            raise WebhookRejected(400, "malformed_body")

        delivery = header_value(headers, "X-Atlassian-Webhook-Identifier")
        if delivery is None:
            delivery = body_fingerprint(raw)
        elif not is_token(delivery):
            raise WebhookRejected(400, "malformed_header")
        return WebhookEvent(event, delivery, delivery, payload)


def _count(value: object) -> int | None:
    # JSON numbers only: a bool is an int to Python but not a count here.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _limit_reason(headers: Mapping[str, str]) -> str | None:
    value = header_value(headers, "RateLimit-Reason")
    if value is None:
        return None
    value = value.lower()
    return value if _SCOPE.fullmatch(value) else "default"


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Contribute the Jira provider."""
    register(JiraProvider())
