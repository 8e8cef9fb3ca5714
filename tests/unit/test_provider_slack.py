"""Tests of the Slack provider: classification, v0 signatures, parsing."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from conftest import SHARED
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from revo_sdk import IntegrationConfig, WebhookRejected
from revo_sdk._plugins import collect_providers, make_plugin_manager
from revo_sdk._signatures import body_fingerprint, hmac_hex
from revo_sdk_plugins import slack
from revo_sdk_plugins.slack import SlackProvider, method_name, slack_error

FIXTURES = SHARED / "slack"

# Slack's documented example of verifying a request.
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA"
    b"&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J"
    b"%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
NOW = float(DOC_TIMESTAMP)
FORM = "application/x-www-form-urlencoded"


def _fixture(*parts: str) -> bytes:
    path = FIXTURES.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared webhook fixture not found at {path}")
    return path.read_bytes()


def _signed(
    body: bytes, timestamp: str = DOC_TIMESTAMP, **extra: str
) -> dict[str, str]:
    base = f"v0:{timestamp}:".encode() + body
    headers = {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + hmac_hex(DOC_SECRET, base),
    }
    headers.update(extra)
    return headers


def _json_body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


@pytest.fixture
def provider() -> SlackProvider:
    """A fresh Slack provider."""
    return SlackProvider()


# -- configuration ---------------------------------------------------------


def test_slack_defaults_match_public_api(provider: SlackProvider) -> None:
    """Base URL, health check, timeouts, limiter and cache defaults."""
    assert provider.default_base_url == "https://slack.com/api"
    assert (provider.health_method, provider.health_path) == ("POST", "/auth.test")
    assert (provider.default_timeouts.connect, provider.default_timeouts.read) == (
        10.0,
        15.0,
    )
    assert (provider.default_limiter.rate, provider.default_limiter.burst) == (1.0, 20)
    ttls = dict(provider.default_cache.route_ttls)
    assert ttls["/users.*"] == 1800.0
    assert ttls["/conversations.info"] == 1800.0
    assert "/conversations.*" not in ttls  # message history changes by the second


def test_slack_auth_is_bearer(provider: SlackProvider) -> None:
    """The token is sent as a Bearer token."""
    config = IntegrationConfig(name="slack", token="xoxb-1")
    assert provider.auth_headers(config) == {"Authorization": "Bearer xoxb-1"}


def test_slack_register_providers_contributes_provider() -> None:
    """The module's hook registers a SlackProvider under ``slack``."""
    pm = make_plugin_manager([slack], load_entry_points=False)
    assert isinstance(collect_providers(pm)["slack"], SlackProvider)


# -- classify --------------------------------------------------------------


def _classify(
    provider: SlackProvider, status: int, body: bytes, path: str = "", **headers: str
) -> Any:
    h = CaseInsensitiveDict({k.replace("_", "-"): v for k, v in headers.items()})
    return provider.classify(status, h, body, path=path)


def test_slack_classify_ok_true(provider: SlackProvider) -> None:
    """``ok: true`` is a usable answer."""
    assert _classify(provider, 200, b'{"ok": true, "channel": "C1"}').kind == "ok"


@pytest.mark.parametrize("body", [b"ok", b"", b"\x89PNG", b"[1]", b"{broken"])
def test_slack_classify_non_json_success_ok(
    provider: SlackProvider, body: bytes
) -> None:
    """Bodies that are not a JSON object (files, webhook text) are ok on 2xx."""
    assert _classify(provider, 200, body).kind == "ok"


@pytest.mark.parametrize("code", ["ratelimited", "rate_limited"])
def test_slack_classify_ok_false_ratelimited_with_retry_after(
    provider: SlackProvider, code: str
) -> None:
    """A 200 ``ratelimited`` error waits ``Retry-After`` in the method's scope."""
    body = _json_body(ok=False, error=code)
    outcome = _classify(provider, 200, body, "/chat.postMessage", Retry_After="7")
    assert (outcome.kind, outcome.retry_after, outcome.scope) == (
        "rate_limited",
        7.0,
        "chat.postMessage",
    )


def test_slack_classify_ok_false_ratelimited_without_retry_after(
    provider: SlackProvider,
) -> None:
    """Without ``Retry-After`` a rate limit waits a full minute window."""
    outcome = _classify(provider, 200, _json_body(ok=False, error="ratelimited"))
    assert (outcome.kind, outcome.retry_after, outcome.scope) == (
        "rate_limited",
        60.0,
        "default",
    )


def test_slack_classify_429_uses_retry_after(provider: SlackProvider) -> None:
    """HTTP 429 is rate limited for ``Retry-After`` seconds."""
    outcome = _classify(
        provider, 429, b"", "/api/conversations.history", Retry_After="30"
    )
    assert (outcome.kind, outcome.retry_after, outcome.scope) == (
        "rate_limited",
        30.0,
        "conversations.history",
    )


@pytest.mark.parametrize(
    "code",
    [
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
    ],
)
def test_slack_classify_auth_errors(provider: SlackProvider, code: str) -> None:
    """Credential errors are auth failures named by Slack's code."""
    outcome = _classify(provider, 200, _json_body(ok=False, error=code))
    assert (outcome.kind, outcome.reason) == ("auth", code)


def test_slack_classify_other_error_is_client_error(provider: SlackProvider) -> None:
    """Any other ``ok: false`` is a client error named by Slack's code."""
    outcome = _classify(provider, 200, _json_body(ok=False, error="channel_not_found"))
    assert (outcome.kind, outcome.reason) == ("client_error", "channel_not_found")


def test_slack_classify_odd_error_code_is_generic(provider: SlackProvider) -> None:
    """An error code that is not a short plain token is not echoed."""
    outcome = _classify(provider, 200, _json_body(ok=False, error="bad code ü"))
    assert outcome.reason == "slack_error"
    outcome = _classify(provider, 200, _json_body(ok=False))
    assert outcome.reason == "slack_error"


def test_slack_classify_internal_error_retries(provider: SlackProvider) -> None:
    """Slack's own transient errors are retried."""
    outcome = _classify(provider, 200, _json_body(ok=False, error="internal_error"))
    assert outcome.kind == "retry"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_slack_classify_server_errors_retry(
    provider: SlackProvider, status: int
) -> None:
    """5xx answers are retried whatever the body says."""
    outcome = _classify(provider, status, b"<html>", Retry_After="2")
    assert (outcome.kind, outcome.retry_after) == ("retry", 2.0)


def test_slack_classify_404_with_error_code(provider: SlackProvider) -> None:
    """An unknown method (404 with ``ok: false``) is a client error by code."""
    outcome = _classify(provider, 404, _json_body(ok=False, error="unknown_method"))
    assert (outcome.kind, outcome.reason) == ("client_error", "unknown_method")


def test_slack_classify_large_ok_body_not_decoded(provider: SlackProvider) -> None:
    """A large successful page is ok without looking past its start."""
    body = b'{"ok": true, "messages": [' + b'{"text": "x"},' * 10000 + b"{}]}"
    assert _classify(provider, 200, body).kind == "ok"


def test_slack_error_large_ok_false_body_detected() -> None:
    """A large body that starts with ``"ok": false`` is still read."""
    body = b'{"ok": false, "error": "invalid_cursor", "pad": "' + b"x" * 70000 + b'"}'
    assert slack_error(body) == "invalid_cursor"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/chat.postMessage", "chat.postMessage"),
        ("/api/users.info?user=U1", "users.info"),
        ("https://slack.com/api/auth.test/", "auth.test"),
        ("", None),
        ("/bad method", None),
    ],
)
def test_slack_method_name_from_path(path: str, expected: str | None) -> None:
    """The scope is the Web API method named by the path's last segment."""
    assert method_name(path) == expected


# -- verify_webhook ----------------------------------------------------------


def test_slack_verify_published_example(provider: SlackProvider) -> None:
    """Slack's documented secret, timestamp, body and signature verify."""
    headers = {
        "X-Slack-Request-Timestamp": DOC_TIMESTAMP,
        "X-Slack-Signature": DOC_SIGNATURE,
    }
    result = provider.verify_webhook(headers, DOC_BODY, (DOC_SECRET,), now=NOW)
    assert (result.ok, result.reason) == (True, "ok")


def test_slack_verify_rotated_secret(provider: SlackProvider) -> None:
    """Any configured secret may have signed the request."""
    headers = _signed(DOC_BODY)
    assert provider.verify_webhook(headers, DOC_BODY, ("old", DOC_SECRET), now=NOW).ok


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(301, "stale_timestamp"), (-301, "future_timestamp")],
)
def test_slack_verify_outside_window(
    provider: SlackProvider, offset: int, reason: str
) -> None:
    """Timestamps more than five minutes away are refused either way."""
    headers = _signed(DOC_BODY)
    result = provider.verify_webhook(headers, DOC_BODY, (DOC_SECRET,), now=NOW + offset)
    assert (result.ok, result.reason) == (False, reason)


@pytest.mark.parametrize("offset", [300, -300])
def test_slack_verify_window_edges_accepted(
    provider: SlackProvider, offset: int
) -> None:
    """Exactly five minutes either way is still accepted."""
    headers = _signed(DOC_BODY)
    assert provider.verify_webhook(
        headers, DOC_BODY, (DOC_SECRET,), now=NOW + offset
    ).ok


@pytest.mark.parametrize(
    "timestamp", ["soon", "1531420618.5", "-1", "\u0661\u0665\u0663\u0661", "1_5"]
)
def test_slack_verify_non_numeric_timestamp_bad_format(
    provider: SlackProvider, timestamp: str
) -> None:
    """A timestamp that is not whole ASCII seconds is ``bad_format``."""
    headers = _signed(DOC_BODY, timestamp=timestamp)
    result = provider.verify_webhook(headers, DOC_BODY, (DOC_SECRET,), now=NOW)
    assert result.reason == "bad_format"


@pytest.mark.parametrize("drop", ["X-Slack-Signature", "X-Slack-Request-Timestamp"])
def test_slack_verify_missing_header(provider: SlackProvider, drop: str) -> None:
    """Either header missing is ``missing_header``."""
    headers = _signed(DOC_BODY)
    del headers[drop]
    result = provider.verify_webhook(headers, DOC_BODY, (DOC_SECRET,), now=NOW)
    assert result.reason == "missing_header"


@pytest.mark.parametrize("signature", ["a2114d57", "v1=" + "ab" * 32, "v0=zz"])
def test_slack_verify_malformed_signature(
    provider: SlackProvider, signature: str
) -> None:
    """Signatures that are not ``v0=<64 hex>`` are ``bad_format``."""
    headers = _signed(DOC_BODY, **{"X-Slack-Signature": signature})
    result = provider.verify_webhook(headers, DOC_BODY, (DOC_SECRET,), now=NOW)
    assert result.reason == "bad_format"


def test_slack_verify_tampered_body_mismatch(provider: SlackProvider) -> None:
    """A body changed after signing is a mismatch."""
    headers = _signed(DOC_BODY)
    body = DOC_BODY.replace(b"foobar", b"foobaz")
    result = provider.verify_webhook(headers, body, (DOC_SECRET,), now=NOW)
    assert result.reason == "mismatch"


def test_slack_verify_replayed_signature_new_timestamp_mismatch(
    provider: SlackProvider,
) -> None:
    """Moving an old signature to a fresh timestamp does not verify."""
    headers = _signed(DOC_BODY)
    headers["X-Slack-Request-Timestamp"] = str(int(NOW) + 100)
    result = provider.verify_webhook(headers, DOC_BODY, (DOC_SECRET,), now=NOW + 100)
    assert result.reason == "mismatch"


def test_slack_verify_without_secret(provider: SlackProvider) -> None:
    """No configured secret is ``no_secret``."""
    result = provider.verify_webhook(_signed(DOC_BODY), DOC_BODY, (), now=NOW)
    assert result.reason == "no_secret"


# -- parse_webhook -----------------------------------------------------------


def test_slack_parse_url_challenge_answers_challenge(provider: SlackProvider) -> None:
    """URL verification replies with the challenge at once."""
    body = _fixture("python-slack-events-api", "url_challenge.json")
    event = provider.parse_webhook(_signed(body), body, "application/json")
    assert event.event == "url_verification"
    assert event.reply == (200, "text/plain", b"valid_challenge_token")


def test_slack_parse_event_callback_without_event_id(provider: SlackProvider) -> None:
    """An envelope without ``event_id`` is keyed by its body alone."""
    body = _fixture("python-slack-events-api", "reaction_added.json")
    event = provider.parse_webhook(_signed(body), body, "application/json")
    assert event.event == "reaction_added"
    assert event.dedup_key == event.delivery_id == body_fingerprint(body)
    assert event.payload["team_id"] == "T0JFD6M53"
    assert event.reply is None


def test_slack_parse_event_callback_retry_same_key(provider: SlackProvider) -> None:
    """A retry (same body, new timestamp) gets the same key."""
    body = _fixture("python-slack-events-api", "reaction_added.json")
    first = provider.parse_webhook(_signed(body), body, "application/json")
    retry = provider.parse_webhook(
        _signed(body, timestamp="1531420700", **{"X-Slack-Retry-Num": "1"}),
        body,
        "application/json",
    )
    assert first.dedup_key == retry.dedup_key


def test_slack_parse_event_callback_keyed_by_event_id(provider: SlackProvider) -> None:
    """``event_id`` is the delivery id and dedup key when present."""
    body = _json_body(
        type="event_callback",
        event_id="Ev0PV52K21",
        event={"type": "app_mention", "text": "hi"},
    )
    event = provider.parse_webhook(_signed(body), body, "application/json")
    assert (event.event, event.delivery_id, event.dedup_key) == (
        "app_mention",
        "Ev0PV52K21",
        "Ev0PV52K21",
    )


def test_slack_parse_java_sample_event_callback(provider: SlackProvider) -> None:
    """The shape sample with an empty ``event_id`` falls back to the body."""
    body = _fixture("java-slack-sdk", "events", "ReactionAddedPayload.json")
    event = provider.parse_webhook(_signed(body), body, "")
    assert (event.event, event.dedup_key) == ("reaction_added", body_fingerprint(body))


def test_slack_parse_slash_command(provider: SlackProvider) -> None:
    """The documented slash command body is a ``slash_command`` event."""
    event = provider.parse_webhook(_signed(DOC_BODY), DOC_BODY, FORM)
    assert event.event == "slash_command"
    assert event.payload["command"] == "/webhook-collect"
    assert event.payload["text"] == ""
    assert event.dedup_key == body_fingerprint(DOC_BODY, DOC_TIMESTAMP)


def test_slack_parse_slash_command_same_body_new_timestamp_distinct(
    provider: SlackProvider,
) -> None:
    """Two identical commands at different times are two events."""
    first = provider.parse_webhook(_signed(DOC_BODY), DOC_BODY, FORM)
    later = provider.parse_webhook(_signed(DOC_BODY, "1531420700"), DOC_BODY, FORM)
    assert first.dedup_key != later.dedup_key


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("interactive-components", "BlockActionPayload.json"), "block_actions"),
        (("views", "ViewSubmissionPayload.json"), "view_submission"),
    ],
)
def test_slack_parse_interactivity_payload_form(
    provider: SlackProvider, parts: tuple[str, str], expected: str
) -> None:
    """A form ``payload=<json>`` is named by the payload's type."""
    sample = _fixture("java-slack-sdk", "app-backend", *parts)
    body = urllib.parse.urlencode({"payload": sample.decode()}).encode()
    headers = _signed(body, **{"Content-Type": FORM})
    assert provider.verify_webhook(headers, body, (DOC_SECRET,), now=NOW).ok
    event = provider.parse_webhook(headers, body, "")
    assert event.event == expected
    assert event.payload == json.loads(sample)


def test_slack_parse_ssl_check_answered(provider: SlackProvider) -> None:
    """Slack's SSL check is answered at once with an empty 200."""
    body = b"ssl_check=1&token=abc"
    event = provider.parse_webhook(_signed(body), body, FORM)
    assert (event.event, event.reply) == ("ssl_check", (200, "text/plain", b""))


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b'{"type": "url_verification"}', "application/json", "malformed_body"),
        (b'{"token": "x"}', "application/json", "missing_event"),
        (
            b'{"type": "event_callback", "event": {}}',
            "application/json",
            "missing_event",
        ),
        (
            b'{"type": "event_callback", "event": 3}',
            "application/json",
            "missing_event",
        ),
        (b"[]", "application/json", "malformed_body"),
        (b"team_id=T1", FORM, "missing_event"),
        (b"payload=%7B%7D", FORM, "missing_event"),
        (b"payload=nope", FORM, "malformed_body"),
        (b"\xff\xfe", FORM, "malformed_body"),
        (b'{"type": "url_verification", "challenge": "\\ud800"}', "", "malformed_body"),
    ],
)
def test_slack_parse_malformed_rejected(
    provider: SlackProvider, body: bytes, content_type: str, reason: str
) -> None:
    """Malformed bodies are refused with 400 and a stable reason."""
    with pytest.raises(WebhookRejected) as info:
        provider.parse_webhook(_signed(body), body, content_type)
    assert (info.value.status, info.value.reason) == (400, reason)


# -- properties --------------------------------------------------------------

_HEADER_NAMES = st.sampled_from(
    ["X-Slack-Signature", "x-slack-request-timestamp", "X-Slack-Request-Timestamp"]
)
_VALUES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80),
    st.none(),
    st.integers(),
    st.just(DOC_TIMESTAMP),
    st.just("v0=" + "0" * 64),
)


@given(
    headers=st.dictionaries(st.one_of(_HEADER_NAMES, st.text(max_size=10)), _VALUES),
    body=st.one_of(st.binary(max_size=300), st.text(max_size=50), st.none()),
    now=st.floats(allow_nan=True, allow_infinity=True),
)
def test_slack_verify_never_raises(
    headers: dict[Any, Any], body: Any, now: float
) -> None:
    """Arbitrary headers, bodies and clocks give a VerifyResult, never an error."""
    result = SlackProvider().verify_webhook(headers, body, (DOC_SECRET,), now=now)
    assert result.reason != "ok"


@given(body=st.binary(max_size=300), content_type=st.sampled_from(["", FORM, "x/y"]))
def test_slack_parse_raises_only_webhook_rejected(
    body: bytes, content_type: str
) -> None:
    """Parsing arbitrary bytes either names an event or refuses it with 400."""
    statuses: list[int] = []
    try:
        SlackProvider().parse_webhook({}, body, content_type)
    except WebhookRejected as exc:
        statuses.append(exc.status)
    assert statuses in ([], [400])


@given(body=st.binary(max_size=300), other=st.binary(max_size=300))
def test_slack_signature_never_verifies_other_body(body: bytes, other: bytes) -> None:
    """A signature over one body never verifies a different body."""
    headers = _signed(body)
    provider = SlackProvider()
    assert provider.verify_webhook(headers, body, (DOC_SECRET,), now=NOW).ok
    if other != body:
        assert not provider.verify_webhook(headers, other, (DOC_SECRET,), now=NOW).ok


# -- body on every status, pagination ----------------------------------------


def test_slack_classify_auth_error_on_server_error_not_retried(
    provider: SlackProvider,
) -> None:
    """The body is read on every status: a 500 naming invalid_auth is auth."""
    body = b'{"ok": false, "error": "invalid_auth"}'
    assert provider.classify(500, {}, body).kind == "auth"


def test_slack_classify_429_without_header_guesses_growing_wait(
    provider: SlackProvider,
) -> None:
    """A 429 with no Retry-After waits a minute, marked as a guess that grows."""
    outcome = provider.classify(429, {}, b"", path="/users.list")
    assert (outcome.kind, outcome.retry_after, outcome.scope, outcome.grows) == (
        "rate_limited",
        60.0,
        "users.list",
        True,
    )


def test_slack_next_page_reads_next_cursor(provider: SlackProvider) -> None:
    """next_cursor becomes the next cursor parameter; other params are kept."""
    body = {"ok": True, "members": [], "response_metadata": {"next_cursor": "dXNl"}}
    following = provider.next_page(200, {}, body, {"limit": 2})
    assert following == {"limit": 2, "cursor": "dXNl"}


@pytest.mark.parametrize(
    "meta", [{"next_cursor": ""}, {}, None, {"next_cursor": None}, "x"]
)
def test_slack_next_page_empty_cursor_ends(provider: SlackProvider, meta: Any) -> None:
    """An empty or absent next_cursor is the last page."""
    body = {"ok": True, "members": [], "response_metadata": meta}
    assert provider.next_page(200, {}, body, {"cursor": "a"}) is None
