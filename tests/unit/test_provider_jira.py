"""Tests of the Jira provider: auth, classification, signatures, parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from revo_sdk import ConfigurationError, IntegrationConfig, WebhookRejected
from revo_sdk._plugins import collect_providers, make_plugin_manager
from revo_sdk._signatures import body_fingerprint, hmac_hex
from revo_sdk_plugins import jira
from revo_sdk_plugins.jira import JiraProvider

FIXTURES = SHARED / "jira"

SECRET = "jira-webhook-secret"
NOW = 1_716_199_200.0  # 2024-05-20T10:00:00Z


def _fixture_params() -> list[Any]:
    if not FIXTURES.is_dir():
        reason = f"shared webhook fixtures not found at {FIXTURES}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
    files = sorted(FIXTURES.rglob("*.json"))
    return [pytest.param(p, id=str(p.relative_to(FIXTURES))) for p in files]


def _signed(body: bytes, method: str = "sha256", **extra: str) -> dict[str, str]:
    headers = {"X-Hub-Signature": f"{method}={hmac_hex(SECRET, body, method)}"}
    headers.update(extra)
    return headers


def _headers(**values: str) -> CaseInsensitiveDict[str]:
    return CaseInsensitiveDict({k.replace("_", "-"): v for k, v in values.items()})


@pytest.fixture
def provider() -> JiraProvider:
    """A provider whose wall clock is fixed at NOW."""
    return JiraProvider(clock=lambda: NOW)


# -- configuration ---------------------------------------------------------


def test_jira_has_no_default_base_url(provider: JiraProvider) -> None:
    """Each site has its own address, so base_url stays required."""
    assert provider.default_base_url is None
    assert provider.health_path == "/rest/api/2/myself"
    assert (provider.default_timeouts.connect, provider.default_timeouts.read) == (
        10.0,
        45.0,
    )


def test_jira_cache_covers_project_routes(provider: JiraProvider) -> None:
    """Project lists and project details are cached for four hours."""
    assert dict(provider.default_cache.route_ttls) == {
        "/rest/api/*/project": 14400.0,
        "/rest/api/*/project/**": 14400.0,
    }


def test_jira_auth_basic_with_username(provider: JiraProvider) -> None:
    """With a username the token is sent as HTTP Basic."""
    config = IntegrationConfig(
        name="jira", token="api-token", options={"username": "me@example.com"}
    )
    header = provider.auth_headers(config)["Authorization"]
    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded) == b"me@example.com:api-token"


def test_jira_auth_bearer_without_username(provider: JiraProvider) -> None:
    """Without a username the token is a Bearer personal access token."""
    config = IntegrationConfig(name="jira", token="pat")
    assert provider.auth_headers(config) == {"Authorization": "Bearer pat"}


def test_jira_auth_empty_without_token(provider: JiraProvider) -> None:
    """No token means no credential header, even with a username."""
    config = IntegrationConfig(name="jira", options={"username": "me"})
    assert provider.auth_headers(config) == {}


def test_jira_auth_username_with_colon_rejected(provider: JiraProvider) -> None:
    """A username Basic authentication cannot carry is a configuration error."""
    config = IntegrationConfig(name="jira", token="t", options={"username": "a:b"})
    with pytest.raises(ConfigurationError, match="must not contain"):
        provider.auth_headers(config)


def test_jira_register_providers_contributes_provider() -> None:
    """The module's hook registers a JiraProvider under ``jira``."""
    pm = make_plugin_manager([jira], load_entry_points=False)
    assert isinstance(collect_providers(pm)["jira"], JiraProvider)


# -- classify --------------------------------------------------------------


def test_jira_classify_success_ok(provider: JiraProvider) -> None:
    """2xx and 3xx are usable answers."""
    assert provider.classify(200, _headers(), b"{}").kind == "ok"
    assert provider.classify(304, _headers(), b"").kind == "ok"


def test_jira_classify_429_retry_after(provider: JiraProvider) -> None:
    """A 429 waits ``Retry-After`` seconds."""
    outcome = provider.classify(429, _headers(Retry_After="12"), b"")
    assert (outcome.kind, outcome.retry_after, outcome.scope) == (
        "rate_limited",
        12.0,
        "default",
    )


def test_jira_classify_429_reset_iso8601_by_server_date(provider: JiraProvider) -> None:
    """Without Retry-After, ``X-RateLimit-Reset`` (ISO-8601) gives the wait."""
    headers = _headers(
        X_RateLimit_Reset="2024-05-20T10:05Z",
        Date="Mon, 20 May 2024 10:00:30 GMT",
    )
    assert provider.classify(429, headers, b"").retry_after == 270.0


def test_jira_classify_429_reset_uses_clock_without_date(
    provider: JiraProvider,
) -> None:
    """The injected clock stands in for a missing Date header."""
    headers = _headers(X_RateLimit_Reset="2024-05-20T10:01Z")
    assert provider.classify(429, headers, b"").retry_after == 60.0


def test_jira_classify_retry_after_wins_over_reset(provider: JiraProvider) -> None:
    """``Retry-After`` is preferred to the minute-precision reset time."""
    headers = _headers(Retry_After="5", X_RateLimit_Reset="2024-05-20T10:05Z")
    assert provider.classify(429, headers, b"").retry_after == 5.0


def test_jira_classify_429_without_hints_leaves_wait_to_backoff(
    provider: JiraProvider,
) -> None:
    """A bare 429 is rate limited with no server wait; the backoff decides."""
    outcome = provider.classify(429, _headers(X_RateLimit_Reset="garbage"), b"")
    assert (outcome.kind, outcome.retry_after) == ("rate_limited", None)


def test_jira_classify_ratelimit_reason_picks_scope(provider: JiraProvider) -> None:
    """``RateLimit-Reason`` names the exhausted scope."""
    headers = _headers(Retry_After="1", RateLimit_Reason="jira-burst-based")
    assert provider.classify(429, headers, b"").scope == "jira-burst-based"


def test_jira_classify_odd_ratelimit_reason_scope_default(
    provider: JiraProvider,
) -> None:
    """A reason that is not a plain token does not become a scope name."""
    headers = _headers(Retry_After="1", RateLimit_Reason="two words")
    assert provider.classify(429, headers, b"").scope == "default"


def test_jira_classify_503_with_retry_after_is_rate_limited(
    provider: JiraProvider,
) -> None:
    """A 503 with Retry-After is handled like a 429: the integration waits."""
    outcome = provider.classify(503, _headers(Retry_After="4"), b"")
    assert (outcome.kind, outcome.retry_after, outcome.scope) == (
        "rate_limited",
        4.0,
        "default",
    )


def test_jira_classify_bare_503_retries(provider: JiraProvider) -> None:
    """A 503 without any rate-limit header is an ordinary retryable overload."""
    outcome = provider.classify(503, _headers(), b"")
    assert (outcome.kind, outcome.retry_after) == ("retry", None)


def test_jira_classify_503_with_reason_is_rate_limited(provider: JiraProvider) -> None:
    """A 503 that names a rate-limit reason is a rate limit of that scope."""
    headers = _headers(Retry_After="9", RateLimit_Reason="jira-quota-tenant-based")
    outcome = provider.classify(503, headers, b"")
    assert (outcome.kind, outcome.retry_after, outcome.scope) == (
        "rate_limited",
        9.0,
        "jira-quota-tenant-based",
    )


def test_jira_classify_401_auth_and_403_forbidden(provider: JiraProvider) -> None:
    """401 is an auth failure, 403 a permission (client) error."""
    assert provider.classify(401, _headers(), b"").kind == "auth"
    outcome = provider.classify(403, _headers(), b"")
    assert (outcome.kind, outcome.reason) == ("client_error", "forbidden")


@pytest.mark.parametrize("status", [400, 404, 409])
def test_jira_classify_other_4xx_client_error(
    provider: JiraProvider, status: int
) -> None:
    """Other 4xx are the caller's problem."""
    assert provider.classify(status, _headers(), b"{}").kind == "client_error"


def test_jira_rate_limit_info(provider: JiraProvider) -> None:
    """Limit, remaining and the ISO reset come from the headers."""
    headers = _headers(
        X_RateLimit_Limit="350",
        X_RateLimit_Remaining="349",
        X_RateLimit_Reset="2024-05-20T10:05Z",
        RateLimit_Reason="jira-burst-based",
    )
    info = provider.rate_limit_info(headers)
    assert info is not None
    assert (info.scope, info.limit, info.remaining, info.reset_at) == (
        "jira-burst-based",
        350,
        349,
        NOW + 300,
    )
    assert provider.rate_limit_info(_headers()) is None


# -- webhooks ----------------------------------------------------------------


@pytest.mark.parametrize("path", _fixture_params())
def test_jira_fixture_verifies_and_parses(provider: JiraProvider, path: Path) -> None:
    """Every published payload, signed as read, verifies and names its event."""
    body = path.read_bytes()
    headers = _signed(body)
    assert provider.verify_webhook(headers, body, (SECRET,), now=NOW).ok

    event = provider.parse_webhook(headers, body, "application/json")
    expected = json.loads(body)["webhookEvent"]
    assert event.event == expected
    assert event.delivery_id == event.dedup_key == body_fingerprint(body)


@pytest.mark.parametrize("method", ["sha1", "sha512", "SHA256"])
def test_jira_verify_method_chooses_digest(provider: JiraProvider, method: str) -> None:
    """The header's method names the digest, in any letter case."""
    body = b'{"webhookEvent": "jira:issue_created"}'
    headers = {"X-Hub-Signature": f"{method}={hmac_hex(SECRET, body, method.lower())}"}
    assert provider.verify_webhook(headers, body, (SECRET,), now=NOW).ok


@pytest.mark.parametrize(
    "value",
    ["md5=" + "ab" * 16, "sha256", "sha256=" + "ab" * 20, "sha512=" + "ab" * 32],
)
def test_jira_verify_bad_format(provider: JiraProvider, value: str) -> None:
    """Unknown methods and digests of the wrong size are ``bad_format``."""
    result = provider.verify_webhook(
        {"X-Hub-Signature": value}, b"{}", (SECRET,), now=NOW
    )
    assert result.reason == "bad_format"


def test_jira_verify_mismatch_missing_and_no_secret(provider: JiraProvider) -> None:
    """Wrong secret, missing header and no secret each have their reason."""
    body = b"{}"
    assert provider.verify_webhook(_signed(body), body, ("other",), now=NOW).reason == (
        "mismatch"
    )
    assert provider.verify_webhook({}, body, (SECRET,), now=NOW).reason == (
        "missing_header"
    )
    assert provider.verify_webhook(_signed(body), body, (), now=NOW).reason == (
        "no_secret"
    )


def test_jira_verify_rotated_secret(provider: JiraProvider) -> None:
    """Any configured secret may have signed the delivery."""
    body = b'{"webhookEvent": "comment_created"}'
    assert provider.verify_webhook(_signed(body), body, ("new", SECRET), now=NOW).ok


def test_jira_parse_uses_webhook_identifier_header(provider: JiraProvider) -> None:
    """``X-Atlassian-Webhook-Identifier`` is the delivery id when sent."""
    body = b'{"webhookEvent": "jira:issue_updated"}'
    headers = {"x-atlassian-webhook-identifier": "1722342412345"}
    event = provider.parse_webhook(headers, body, "application/json")
    assert (event.event, event.delivery_id, event.dedup_key) == (
        "jira:issue_updated",
        "1722342412345",
        "1722342412345",
    )


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b'{"issue": {}}', {}, "missing_event"),
        (b'{"webhookEvent": ""}', {}, "missing_event"),
        (b'{"webhookEvent": 7}', {}, "missing_event"),
        (b'{"webhookEvent": "a b"}', {}, "malformed_body"),
        (b"not json", {}, "malformed_body"),
        (b"[]", {}, "malformed_body"),
        (
            b'{"webhookEvent": "x"}',
            {"X-Atlassian-Webhook-Identifier": "id with spaces"},
            "malformed_header",
        ),
    ],
)
def test_jira_parse_malformed_rejected(
    provider: JiraProvider, body: bytes, headers: dict[str, str], reason: str
) -> None:
    """Malformed deliveries are refused with 400 and a stable reason."""
    with pytest.raises(WebhookRejected) as info:
        provider.parse_webhook(headers, body, "application/json")
    assert (info.value.status, info.value.reason) == (400, reason)


# -- properties --------------------------------------------------------------

_VALUES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80),
    st.none(),
    st.integers(),
    st.just("sha256=" + "0" * 64),
)
_HEADERS = st.dictionaries(
    st.one_of(
        st.sampled_from(["X-Hub-Signature", "x-hub-signature"]), st.text(max_size=10)
    ),
    _VALUES,
)


@given(headers=_HEADERS, body=st.one_of(st.binary(max_size=300), st.text(max_size=50)))
def test_jira_verify_never_raises(headers: dict[Any, Any], body: Any) -> None:
    """Arbitrary headers and bodies give a VerifyResult, never an exception."""
    result = JiraProvider().verify_webhook(headers, body, (SECRET,), now=NOW)
    assert result.reason in ("missing_header", "bad_format", "mismatch")


@given(headers=_HEADERS, body=st.binary(max_size=300))
def test_jira_parse_raises_only_webhook_rejected(
    headers: dict[Any, Any], body: bytes
) -> None:
    """Parsing arbitrary input either names an event or refuses it with 400."""
    statuses: list[int] = []
    try:
        JiraProvider().parse_webhook(headers, body, "application/json")
    except WebhookRejected as exc:
        statuses.append(exc.status)
    assert statuses in ([], [400])


@given(
    body=st.binary(max_size=300),
    other=st.binary(max_size=300),
    method=st.sampled_from(["sha1", "sha256", "sha512"]),
)
def test_jira_signature_never_verifies_other_body(
    body: bytes, other: bytes, method: str
) -> None:
    """A signature over one body never verifies a different body."""
    headers = _signed(body, method)
    provider = JiraProvider()
    assert provider.verify_webhook(headers, body, (SECRET,), now=NOW).ok
    if other != body:
        assert not provider.verify_webhook(headers, other, (SECRET,), now=NOW).ok


# -- rate-limit scopes and pagination ----------------------------------------


@pytest.mark.parametrize(
    "reason", ["jira-burst-based", "jira-quota-tenant-based", "jira-per-issue-on-write"]
)
def test_jira_classify_429_scope_is_ratelimit_reason(
    provider: JiraProvider, reason: str
) -> None:
    """RateLimit-Reason names the limited scope; its absence means default."""
    limited = provider.classify(429, _headers(RateLimit_Reason=reason), b"")
    bare = provider.classify(429, _headers(), b"")
    assert (limited.kind, limited.scope) == ("rate_limited", reason)
    assert (bare.kind, bare.scope) == ("rate_limited", "default")
    assert bare.retry_after is None


def test_jira_next_page_uses_returned_max_results(provider: JiraProvider) -> None:
    """The next startAt advances by the maxResults the server returned."""
    body = {"startAt": 0, "maxResults": 50, "total": 120, "issues": [{}] * 50}
    following = provider.next_page(200, {}, body, {"jql": "x", "maxResults": 1000})
    assert following == {"jql": "x", "maxResults": 1000, "startAt": 50}


@pytest.mark.parametrize(
    "body",
    [
        {"startAt": 100, "maxResults": 50, "total": 120, "issues": [{}] * 20},
        {"startAt": 0, "maxResults": 50, "isLast": True, "values": [{}]},
        {"startAt": 0, "maxResults": 50, "values": []},
        {"startAt": 0, "maxResults": 0, "total": 5, "values": [{}]},
        [1, 2],
        None,
    ],
)
def test_jira_next_page_ends(provider: JiraProvider, body: Any) -> None:
    """Reaching total, isLast, an empty page or an odd body ends the walk."""
    assert provider.next_page(200, {}, body, {}) is None


def test_jira_next_page_token_replaces_offset(provider: JiraProvider) -> None:
    """nextPageToken (enhanced JQL search) wins over startAt until isLast."""
    body = {"issues": [{}], "nextPageToken": "tok2", "isLast": False}
    following = provider.next_page(200, {}, body, {"jql": "x", "startAt": 0})
    assert following == {"jql": "x", "nextPageToken": "tok2"}
    last = {"issues": [{}], "nextPageToken": "tok3", "isLast": True}
    assert provider.next_page(200, {}, last, {}) is None
