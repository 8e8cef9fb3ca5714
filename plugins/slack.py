"""The Slack provider: Web API conventions and ``v0`` signed requests.

The Web API answers most errors with HTTP 200 and ``{"ok": false, "error":
"<code>"}``, so the body is read on every status. Incoming requests (Events
API, slash commands, interactivity) are signed with ``X-Slack-Signature:
v0=<hex>`` over ``v0:<timestamp>:<body>`` and must be recent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from revo_sdk import (
    CachePolicy,
    LimiterPolicy,
    Outcome,
    Provider,
    Timeouts,
    VerifyResult,
    WebhookEvent,
    WebhookRejected,
    hookimpl,
)
from revo_sdk._provider import OK, parse_retry_after_seconds
from revo_sdk._signatures import (
    as_bytes,
    body_fingerprint,
    header_value,
    is_token,
    load_form,
    load_json_object,
    looks_like_json,
    media_type,
    verify_slack,
)

log = logging.getLogger(__name__)

#: How far a request timestamp may be from now, either way, in seconds
#: (Slack's own recommendation).
TIMESTAMP_TOLERANCE = 300.0

#: Wait after a rate-limit answer that names no time. Slack's tiers count
#: requests per minute, and we cannot know where in that minute we are: only
#: a full minute is sure to start a fresh window.
DEFAULT_RATE_LIMIT_WAIT = 60.0

RATE_LIMIT_ERRORS = frozenset({"ratelimited", "rate_limited"})
AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
#: Error codes Slack documents as its own transient failures.
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable"})

_ERROR_CODE = re.compile(r"[a-z0-9_.\-]{1,64}")
_METHOD = re.compile(r"[A-Za-z0-9_.]{1,100}")
_OK_FALSE = re.compile(rb'"ok"\s*:\s*false')
# Bodies up to this size are decoded to look for "ok": false; larger ones
# (history pages, file listings) are only scanned at the start, where Slack
# writes "ok".
_PARSE_LIMIT = 64 * 1024


class SlackProvider(Provider):
    """Talks to the Slack Web API at ``https://slack.com/api``.

    Defaults: 10 s connect / 15 s read; ``users.*`` and the slowly changing
    ``conversations.info`` / ``conversations.list`` cached for 30 minutes
    (message history is never cached); a client-side limit of one request a
    second with a burst of 20. That rate matches ``chat.postMessage``'s
    one message a second, stays within Tier 3 and 4 methods (50+ and 100+ a
    minute), and a burst of 20 fits even a Tier 2 method's minute. Health is
    ``auth.test``, which checks the token (``api.test`` does not look at it).

    Instances hold no per-call state and are safe to share between threads.
    """

    name = "slack"
    default_base_url = "https://slack.com/api"
    health_path = "/auth.test"
    health_method = "POST"  # Slack's preferred method for auth.test
    default_timeouts = Timeouts(connect=10.0, read=15.0)
    default_limiter = LimiterPolicy(rate=1.0, burst=20)
    default_cache = CachePolicy(
        route_ttls=(
            ("/users.*", 1800.0),
            ("/conversations.info", 1800.0),
            ("/conversations.list", 1800.0),
        )
    )

    def scope_for(self, method: str, path: str) -> str:
        """Slack limits each Web API method separately: the method is the scope."""
        return method_name(path) or "default"

    def classify(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        path: str = "",
    ) -> Outcome:
        """Read one Web API response.

        :param path: the request path (``/chat.postMessage``); when given,
            its method name is the rate-limit scope, since Slack limits each
            method separately. Without it the scope is ``default``.
        """
        scope = method_name(path) or "default"
        retry_after = parse_retry_after_seconds(header_value(headers, "Retry-After"))
        # The body is read whatever the status: Slack names its errors there.
        error = slack_error(body)
        if status == 429 or error in RATE_LIMIT_ERRORS:
            # Without Retry-After the wait is our guess, doubled on repeats.
            guessed = retry_after is None
            wait = DEFAULT_RATE_LIMIT_WAIT if guessed else retry_after
            log.debug("slack rate limit on %s: wait %.1f s", scope, wait)
            return Outcome("rate_limited", "ratelimited", wait, scope, grows=guessed)
        if error in AUTH_ERRORS:
            return Outcome("auth", error)
        if status >= 500:
            return Outcome("retry", error or f"http_{status}", retry_after)
        if error is None:
            if status < 400:
                return OK
            if status == 401:
                return Outcome("auth", "http_401")
            return Outcome("client_error", f"http_{status}")
        if error in TRANSIENT_ERRORS:
            return Outcome("retry", error, retry_after)
        return Outcome("client_error", error)

    def next_page(
        self,
        status: int,
        headers: Mapping[str, str],
        body: Any,
        params: Mapping[str, Any],
    ) -> Mapping[str, Any] | None:
        """``response_metadata.next_cursor`` as the next ``cursor`` parameter;
        an absent or empty cursor ends the walk."""
        if not isinstance(body, dict):
            return None
        meta = body.get("response_metadata")
        cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
        if not isinstance(cursor, str) or not cursor:
            return None
        return {**params, "cursor": cursor}

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: tuple[str, ...],
        *,
        now: float,
    ) -> VerifyResult:
        """Check a ``v0`` signature and that the request is recent.

        The timestamp must be whole seconds within
        :data:`TIMESTAMP_TOLERANCE` of ``now``; older requests are
        ``stale_timestamp`` (a replay) and newer ones ``future_timestamp``.
        See :func:`revo_sdk._signatures.verify_slack`.
        """
        return verify_slack(
            headers, body, secrets, now=now, tolerance=TIMESTAMP_TOLERANCE
        )

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> WebhookEvent:
        """Name an Events API, slash command or interactivity request.

        - ``url_verification`` is answered at once with its challenge.
        - ``event_callback`` is named by its inner ``event.type`` and keyed
          by ``event_id`` (kept across Slack's retries).
        - A form with ``command`` is ``slash_command``; a form with
          ``payload`` is named by the payload's ``type`` (``block_actions``,
          ``view_submission``, ...); an ``ssl_check`` is answered at once.
        """
        raw = as_bytes(body)
        if raw is None:
            raise WebhookRejected(400, "malformed_body")
        timestamp = header_value(headers, "X-Slack-Request-Timestamp") or ""
        kind = media_type(content_type, headers)
        if kind == "application/json" or (
            kind != "application/x-www-form-urlencoded" and looks_like_json(raw)
        ):
            return _parse_json(raw)
        return _parse_form(raw, timestamp)


def _parse_json(raw: bytes) -> WebhookEvent:
    payload = load_json_object(raw)
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind:
        raise WebhookRejected(400, "missing_event")
    if not is_token(kind):
        raise WebhookRejected(400, "malformed_body")

    if kind == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            raise WebhookRejected(400, "malformed_body")
        try:
            answer = challenge.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escaped in the JSON
            raise WebhookRejected(400, "malformed_body") from None
        key = body_fingerprint(raw)
        return WebhookEvent(kind, key, key, payload, reply=(200, "text/plain", answer))

    if kind != "event_callback":
        # Other envelopes (such as app_rate_limited) are named by their type.
        key = body_fingerprint(raw)
        return WebhookEvent(kind, key, key, payload)

    inner = payload.get("event")
    event = inner.get("type") if isinstance(inner, dict) else None
    if not isinstance(event, str) or not event:
        raise WebhookRejected(400, "missing_event")
    if not is_token(event):
        raise WebhookRejected(400, "malformed_body")
    # Without an event_id, the body alone names the event (its event_ts makes
    # it unique): Slack resends the same body under a new timestamp on retry.
    event_id = payload.get("event_id")
    delivery = str(event_id) if is_token(event_id) else body_fingerprint(raw)
    return WebhookEvent(event, delivery, delivery, payload)


def _parse_form(raw: bytes, timestamp: str) -> WebhookEvent:
    form = load_form(raw)
    # Slash commands and interactions are not retried by Slack; the
    # timestamp keeps two identical requests apart.
    key = body_fingerprint(raw, timestamp)

    if "payload" in form:
        payload = load_json_object(form["payload"])
        kind = payload.get("type")
        if not isinstance(kind, str) or not kind:
            raise WebhookRejected(400, "missing_event")
        if not is_token(kind):
            raise WebhookRejected(400, "malformed_body")
        return WebhookEvent(kind, key, key, payload)
    if "command" in form:
        return WebhookEvent("slash_command", key, key, form)
    if "ssl_check" in form:
        return WebhookEvent("ssl_check", key, key, form, reply=(200, "text/plain", b""))
    raise WebhookRejected(400, "missing_event")


def method_name(path: object) -> str | None:
    """The Web API method a request path names: ``/api/chat.postMessage``
    gives ``chat.postMessage``; ``None`` when there is none.
    """
    if not isinstance(path, str) or not path:
        return None
    last = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return last if _METHOD.fullmatch(last) else None


def slack_error(body: object) -> str | None:
    """The ``error`` code of an ``ok: false`` body, or ``None``.

    ``None`` also for bodies that are not a JSON object (files, incoming
    webhook answers). An error code that is not a plain short token reads as
    ``slack_error``.
    """
    raw = as_bytes(body)
    if not raw or not looks_like_json(raw):
        return None
    # A body that never says "ok": false needs no decoding (most answers).
    if not _OK_FALSE.search(raw, 0, 512 if len(raw) > _PARSE_LIMIT else len(raw)):
        return None
    try:
        decoded: Any = load_json_object(raw)
    except WebhookRejected:
        return None
    if decoded.get("ok") is not False:
        return None
    error = decoded.get("error")
    if isinstance(error, str) and _ERROR_CODE.fullmatch(error):
        return error
    return "slack_error"


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Contribute the Slack provider."""
    register(SlackProvider())
