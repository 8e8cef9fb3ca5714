"""The GitHub provider: REST API v3 conventions and ``X-Hub-Signature-256``
webhooks.

Rate limits follow GitHub's guidance for REST clients: honour
``retry-after`` first; when ``x-ratelimit-remaining`` is ``0`` wait until
``x-ratelimit-reset``; otherwise a 403/429 that is a secondary limit means
waiting at least a minute.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from revo_sdk import (
    CachePolicy,
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
from revo_sdk._pagination import link_next
from revo_sdk._provider import OK, parse_retry_after_seconds
from revo_sdk._signatures import (
    QUOTA_HEADERS,
    as_bytes,
    header_date,
    header_int,
    header_value,
    is_token,
    lacks_headers,
    load_form,
    load_json_object,
    looks_like_json,
    media_type,
    verify_github,
)

log = logging.getLogger(__name__)

#: Seconds to wait on a secondary rate limit that names no time: GitHub asks
#: for "at least one minute".
SECONDARY_LIMIT_WAIT = 60.0

#: Scope of the primary limit when the response does not name its resource.
DEFAULT_RESOURCE = "core"

_SECONDARY_MARKERS = (b"secondary rate limit", b"abuse detection")
_RESOURCE = re.compile(r"[a-z0-9_\-]{1,64}")
# Enough of an error body to find GitHub's message; error bodies are small.
_BODY_SCAN = 4096


class GitHubProvider(Provider):
    """Talks to ``api.github.com`` (or a GitHub Enterprise ``base_url``).

    Defaults: 10 s connect / 30 s read; repository metadata
    (``/repos/{owner}/{repo}``) cached for an hour; a client-side limit of
    5000 requests an hour (the authenticated primary limit) with a burst of
    100, which is GitHub's ceiling for concurrent requests, so a burst alone
    cannot trip a secondary limit; writes (POST, PATCH, PUT, DELETE) at
    least 1 s apart and searches at least 2 s apart, as GitHub's guidance
    on secondary limits asks.

    Instances hold no per-call state and are safe to share between threads.

    :param clock: wall-clock time in epoch seconds, used to turn
        ``x-ratelimit-reset`` into a wait when the response has no ``Date``
        header (the server's clock is preferred, so local skew does not
        matter).
    :param allow_sha1: also accept the SHA-1 ``X-Hub-Signature`` when a
        delivery has no ``X-Hub-Signature-256`` (old GitHub Enterprise
        servers). Off by default; to turn it on, put
        ``client.providers["github"] = GitHubProvider(allow_sha1=True)``
        before registering the integration.
    """

    name = "github"
    default_base_url = "https://api.github.com"
    # /rate_limit does not count against the primary rate limit.
    health_path = "/rate_limit"
    default_timeouts = Timeouts(connect=10.0, read=30.0)
    default_limiter = LimiterPolicy(
        rate=5000 / 3600,
        burst=100,
        write_interval=1.0,
        spacing=(("search", 2.0), ("code_search", 2.0)),
    )
    default_cache = CachePolicy(route_ttls=(("/repos/*/*", 3600.0),))

    def __init__(
        self, *, clock: Callable[[], float] = time.time, allow_sha1: bool = False
    ) -> None:
        self._clock = clock
        self.allow_sha1 = allow_sha1

    def default_headers(self, config: IntegrationConfig) -> dict[str, str]:
        """GitHub's JSON media type and the REST API version we speak."""
        return {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    # Authorization: the base class sends "Bearer <token>", which GitHub
    # accepts for personal, OAuth and installation tokens alike.

    def classify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, path: str = ""
    ) -> Outcome:
        """Read one GitHub response; see the module docstring for the rules.

        A 403 is a rate limit only when the headers or the message say so;
        any other 403 is a permission problem (``forbidden``).
        """
        if status < 400:
            return OK
        retry_after = parse_retry_after_seconds(header_value(headers, "Retry-After"))
        if status in (403, 429):
            limited = self._rate_limited(status, headers, body, retry_after)
            if limited is not None:
                return limited
        if status == 401:
            return Outcome("auth", "bad_credentials")
        if status == 403:
            return Outcome("client_error", "forbidden")
        if status >= 500:
            return Outcome("retry", f"http_{status}", retry_after)
        return Outcome("client_error", f"http_{status}")

    def _rate_limited(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        retry_after: float | None,
    ) -> Outcome | None:
        resource = _resource(headers)
        remaining = header_int(headers, "X-RateLimit-Remaining")
        mentions_secondary = _mentions_secondary_limit(body)
        # Quota left (or no quota headers) means the primary limit is not it.
        secondary = mentions_secondary or remaining != 0

        if retry_after is not None:
            if secondary:
                outcome = Outcome(
                    "rate_limited", "secondary_rate_limit", retry_after, "secondary"
                )
            else:
                outcome = Outcome(
                    "rate_limited", "primary_rate_limit", retry_after, resource
                )
        elif remaining == 0:
            reset = header_int(headers, "X-RateLimit-Reset")
            wait = (
                SECONDARY_LIMIT_WAIT if reset is None else self._until(reset, headers)
            )
            outcome = Outcome("rate_limited", "primary_rate_limit", wait, resource)
        elif mentions_secondary:
            # "Wait at least one minute", growing on repeats (grows=True).
            outcome = Outcome(
                "rate_limited",
                "secondary_rate_limit",
                SECONDARY_LIMIT_WAIT,
                "secondary",
                grows=True,
            )
        elif status == 429:
            outcome = Outcome(
                "rate_limited",
                "http_429",
                SECONDARY_LIMIT_WAIT,
                "secondary",
                grows=True,
            )
        else:
            return None
        log.debug(
            "github %s: scope %s, wait %.1f s",
            outcome.reason,
            outcome.scope,
            outcome.retry_after,
        )
        return outcome

    def _until(self, reset: float, headers: Mapping[str, str]) -> float:
        now = header_date(headers)
        if now is None:
            now = self._clock()
        # At least a second: the reset is whole seconds and so is Date.
        return max(reset - now, 1.0)

    def scope_for(self, method: str, path: str) -> str:
        """The ``x-ratelimit-resource`` a request counts against: code
        search, other searches and GraphQL have quotas of their own."""
        if path.startswith("/search/code"):
            return "code_search"
        if path.startswith("/search/"):
            return "search"
        if path.startswith("/graphql"):
            return "graphql"
        return DEFAULT_RESOURCE

    def next_page(
        self,
        status: int,
        headers: Mapping[str, str],
        body: Any,
        params: Mapping[str, Any],
    ) -> str | None:
        """The ``Link`` header's ``rel="next"`` URL; a 204 is an empty last page.

        Only the paging relations count: a search answer that carries
        ``rel="deprecation"`` (and a ``total_count``) is a single page.
        """
        if status == 204:
            return None
        return link_next(headers)

    def rate_limit_info(self, headers: Mapping[str, str]) -> RateLimitInfo | None:
        """The ``x-ratelimit-*`` headers, scoped by ``x-ratelimit-resource``."""
        if lacks_headers(headers, QUOTA_HEADERS):
            return None  # most answers: skip three case-insensitive scans
        limit = header_int(headers, "X-RateLimit-Limit")
        remaining = header_int(headers, "X-RateLimit-Remaining")
        reset = header_int(headers, "X-RateLimit-Reset")
        if limit is None and remaining is None and reset is None:
            return None
        return RateLimitInfo(
            scope=_resource(headers),
            limit=limit,
            remaining=remaining,
            reset_at=None if reset is None else float(reset),
        )

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: tuple[str, ...],
        *,
        now: float,
    ) -> VerifyResult:
        """Check ``X-Hub-Signature-256: sha256=<hex>`` over the raw body.

        The SHA-1 ``X-Hub-Signature`` header is read only by a provider made
        with ``allow_sha1=True``, and only when the SHA-256 header is absent:
        GitHub sends both, and accepting the weaker one by default would let
        a forger choose it. See :func:`revo_sdk._signatures.verify_github`.
        """
        return verify_github(headers, body, secrets, allow_sha1=self.allow_sha1)

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> WebhookEvent:
        """Name a delivery by ``X-GitHub-Event`` and ``X-GitHub-Delivery``.

        The body is JSON, or a form whose ``payload`` field holds the JSON
        (the "application/x-www-form-urlencoded" webhook setting). ``ping``
        is an event like any other.
        """
        event = header_value(headers, "X-GitHub-Event")
        if event is None:
            raise WebhookRejected(400, "missing_event")
        delivery = header_value(headers, "X-GitHub-Delivery")
        if delivery is None:
            raise WebhookRejected(400, "missing_delivery_id")
        hook_id = header_value(headers, "X-GitHub-Hook-ID") or ""
        if not (is_token(event) and is_token(delivery)) or (
            hook_id and not is_token(hook_id)
        ):
            raise WebhookRejected(400, "malformed_header")

        payload = _load_payload(body, media_type(content_type, headers))
        return WebhookEvent(
            event=event,
            delivery_id=delivery,
            dedup_key=f"{hook_id}:{delivery}",
            payload=payload,
        )


def _load_payload(body: object, kind: str) -> dict[str, Any]:
    raw = as_bytes(body)
    if raw is None:
        raise WebhookRejected(400, "malformed_body")
    form = kind == "application/x-www-form-urlencoded" or (
        kind != "application/json" and not looks_like_json(raw)
    )
    if not form:
        return load_json_object(raw)
    fields = load_form(raw)
    if "payload" not in fields:
        raise WebhookRejected(400, "malformed_body")
    return load_json_object(fields["payload"])


def _resource(headers: Mapping[str, str]) -> str:
    value = header_value(headers, "X-RateLimit-Resource")
    if value is None:
        return DEFAULT_RESOURCE
    value = value.lower()
    return value if _RESOURCE.fullmatch(value) else DEFAULT_RESOURCE


def _mentions_secondary_limit(body: object) -> bool:
    raw = as_bytes(body)
    if not raw:
        return False
    head = raw[:_BODY_SCAN].lower()
    return any(marker in head for marker in _SECONDARY_MARKERS)


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Contribute the GitHub provider."""
    register(GitHubProvider())
