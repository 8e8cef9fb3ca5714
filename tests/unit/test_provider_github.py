"""Tests of the GitHub provider: classification, signatures, parsing."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from revo_sdk import IntegrationConfig, WebhookRejected
from revo_sdk._plugins import collect_providers, make_plugin_manager
from revo_sdk._signatures import hmac_hex
from revo_sdk_plugins import github
from revo_sdk_plugins.github import GitHubProvider

FIXTURES = SHARED / "github"

SECRET = "It's a Secret to Everybody"
NOW = 1_700_000_000.0


def _fixture_params() -> list[Any]:
    if not FIXTURES.is_dir():
        reason = f"shared webhook fixtures not found at {FIXTURES}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
    files = sorted(FIXTURES.glob("*/*.json"))
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in files]


def _headers(body: bytes, secret: str = SECRET, **extra: str) -> dict[str, str]:
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body),
        "Content-Type": "application/json",
    }
    headers.update(extra)
    return headers


def _gh_headers(**values: str) -> CaseInsensitiveDict[str]:
    return CaseInsensitiveDict({k.replace("_", "-"): v for k, v in values.items()})


@pytest.fixture
def provider() -> GitHubProvider:
    """A provider whose wall clock is fixed at NOW."""
    return GitHubProvider(clock=lambda: NOW)


# -- configuration ---------------------------------------------------------


def test_github_defaults_match_public_api() -> None:
    """Base URL, health path, timeouts, limiter and cache follow the spec."""
    p = GitHubProvider()
    assert p.name == "github"
    assert p.default_base_url == "https://api.github.com"
    assert p.health_path == "/rate_limit"
    assert (p.default_timeouts.connect, p.default_timeouts.read) == (10.0, 30.0)
    assert p.default_limiter.rate == pytest.approx(5000 / 3600)
    assert p.default_limiter.burst == 100
    assert p.default_cache.route_ttls == (("/repos/*/*", 3600.0),)


def test_github_headers_carry_version_and_bearer_token() -> None:
    """Default headers pin the API version; auth is a Bearer token."""
    p = GitHubProvider()
    config = IntegrationConfig(name="github", token="ghp_x")
    assert p.default_headers(config) == {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    assert p.auth_headers(config) == {"Authorization": "Bearer ghp_x"}
    assert p.auth_headers(IntegrationConfig(name="github")) == {}


def test_github_register_providers_contributes_provider() -> None:
    """The module's hook registers a GitHubProvider under ``github``."""
    pm = make_plugin_manager([github], load_entry_points=False)
    assert isinstance(collect_providers(pm)["github"], GitHubProvider)


# -- classify --------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304])
def test_github_classify_success_and_not_modified_ok(
    provider: GitHubProvider, status: int
) -> None:
    """2xx and 3xx (304 included) are usable answers."""
    assert provider.classify(status, _gh_headers(), b"").kind == "ok"


def test_github_classify_secondary_limit_with_quota_left(
    provider: GitHubProvider,
) -> None:
    """A 403 naming a secondary limit while quota remains waits 60 s."""
    body = b'{"message": "You have exceeded a secondary rate limit. Please wait."}'
    headers = _gh_headers(X_RateLimit_Remaining="4999", X_RateLimit_Reset="1700000500")
    outcome = provider.classify(403, headers, body)
    assert (outcome.kind, outcome.scope, outcome.reason) == (
        "rate_limited",
        "secondary",
        "secondary_rate_limit",
    )
    assert outcome.retry_after == 60.0


def test_github_classify_secondary_limit_honours_retry_after(
    provider: GitHubProvider,
) -> None:
    """A secondary limit with ``retry-after`` waits exactly that long."""
    body = b'{"message": "You have exceeded a secondary rate limit."}'
    headers = _gh_headers(Retry_After="17", X_RateLimit_Remaining="12")
    outcome = provider.classify(403, headers, body)
    assert (outcome.kind, outcome.retry_after, outcome.scope) == (
        "rate_limited",
        17.0,
        "secondary",
    )


def test_github_classify_retry_after_with_quota_left_is_secondary(
    provider: GitHubProvider,
) -> None:
    """``retry-after`` while quota remains is a secondary limit, message or not."""
    headers = _gh_headers(Retry_After="5", X_RateLimit_Remaining="4000")
    outcome = provider.classify(429, headers, b"")
    assert (outcome.scope, outcome.reason) == ("secondary", "secondary_rate_limit")


def test_github_classify_retry_after_with_quota_spent_is_primary(
    provider: GitHubProvider,
) -> None:
    """``retry-after`` with no quota left speaks for the exhausted resource."""
    headers = _gh_headers(
        Retry_After="5", X_RateLimit_Remaining="0", X_RateLimit_Resource="search"
    )
    outcome = provider.classify(403, headers, b"")
    assert (outcome.kind, outcome.retry_after, outcome.scope, outcome.reason) == (
        "rate_limited",
        5.0,
        "search",
        "primary_rate_limit",
    )


def test_github_classify_primary_limit_waits_until_reset_by_server_date(
    provider: GitHubProvider,
) -> None:
    """Remaining 0 waits until ``x-ratelimit-reset`` by the server's clock."""
    headers = _gh_headers(
        X_RateLimit_Remaining="0",
        X_RateLimit_Reset="1716199500",
        X_RateLimit_Resource="core",
        Date="Mon, 20 May 2024 10:00:00 GMT",  # 1716199200
    )
    outcome = provider.classify(403, headers, b'{"message": "API rate limit exceeded"}')
    assert (outcome.kind, outcome.reason, outcome.scope) == (
        "rate_limited",
        "primary_rate_limit",
        "core",
    )
    assert outcome.retry_after == 300.0


def test_github_classify_primary_limit_uses_clock_without_date(
    provider: GitHubProvider,
) -> None:
    """Without a Date header the injected clock measures the wait."""
    headers = _gh_headers(
        X_RateLimit_Remaining="0", X_RateLimit_Reset=str(int(NOW) + 42)
    )
    assert provider.classify(429, headers, b"").retry_after == 42.0


def test_github_classify_primary_limit_past_reset_waits_a_second(
    provider: GitHubProvider,
) -> None:
    """A reset already passed still waits one second, never zero or less."""
    headers = _gh_headers(
        X_RateLimit_Remaining="0", X_RateLimit_Reset=str(int(NOW) - 5)
    )
    assert provider.classify(403, headers, b"").retry_after == 1.0


def test_github_classify_primary_limit_scope_from_resource(
    provider: GitHubProvider,
) -> None:
    """The exhausted resource (``search``) is the scope."""
    headers = _gh_headers(
        X_RateLimit_Remaining="0",
        X_RateLimit_Reset=str(int(NOW) + 10),
        X_RateLimit_Resource="Search",
    )
    assert provider.classify(403, headers, b"").scope == "search"


def test_github_classify_primary_limit_without_reset_waits_a_minute(
    provider: GitHubProvider,
) -> None:
    """Remaining 0 with no reset header falls back to one minute."""
    outcome = provider.classify(403, _gh_headers(X_RateLimit_Remaining="0"), b"")
    assert (outcome.kind, outcome.retry_after, outcome.scope) == (
        "rate_limited",
        60.0,
        "core",
    )


def test_github_classify_429_with_retry_after(provider: GitHubProvider) -> None:
    """A 429 with ``retry-after`` is rate limited for that long."""
    outcome = provider.classify(429, _gh_headers(Retry_After="30"), b"")
    assert (outcome.kind, outcome.retry_after) == ("rate_limited", 30.0)


def test_github_classify_bare_429_waits_a_minute(provider: GitHubProvider) -> None:
    """A 429 with no hint at all waits the documented minute."""
    outcome = provider.classify(429, _gh_headers(), b"")
    assert (outcome.kind, outcome.retry_after) == ("rate_limited", 60.0)


def test_github_classify_plain_403_is_forbidden(provider: GitHubProvider) -> None:
    """A permission 403 with quota left is a client error, not a rate limit."""
    body = b'{"message": "Resource not accessible by integration"}'
    headers = _gh_headers(X_RateLimit_Remaining="4000", X_RateLimit_Reset="1700000500")
    outcome = provider.classify(403, headers, body)
    assert (outcome.kind, outcome.reason) == ("client_error", "forbidden")


def test_github_classify_401_is_auth(provider: GitHubProvider) -> None:
    """Bad credentials are an authentication failure."""
    assert provider.classify(401, _gh_headers(), b"").kind == "auth"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_github_classify_server_errors_retry(
    provider: GitHubProvider, status: int
) -> None:
    """5xx answers are retried, with the server's hint when it gave one."""
    outcome = provider.classify(status, _gh_headers(Retry_After="3"), b"")
    assert (outcome.kind, outcome.reason, outcome.retry_after) == (
        "retry",
        f"http_{status}",
        3.0,
    )


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_github_classify_other_4xx_client_error(
    provider: GitHubProvider, status: int
) -> None:
    """Not found and validation failures are the caller's problem."""
    outcome = provider.classify(status, _gh_headers(), b"{}")
    assert (outcome.kind, outcome.reason) == ("client_error", f"http_{status}")


def test_github_rate_limit_info_reads_headers(provider: GitHubProvider) -> None:
    """Limit, remaining, reset and resource come from the headers."""
    headers = _gh_headers(
        X_RateLimit_Limit="5000",
        X_RateLimit_Remaining="4987",
        X_RateLimit_Reset="1700000500",
        X_RateLimit_Resource="graphql",
    )
    info = provider.rate_limit_info(headers)
    assert info is not None
    assert (info.scope, info.limit, info.remaining, info.reset_at) == (
        "graphql",
        5000,
        4987,
        1700000500.0,
    )
    assert provider.rate_limit_info(_gh_headers()) is None


# -- verify_webhook ----------------------------------------------------------


def test_github_verify_published_example(provider: GitHubProvider) -> None:
    """GitHub's documented secret, payload and signature verify."""
    headers = {
        "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a"
        "37570b6d7586c22c46f4379c8b043e17"
    }
    result = provider.verify_webhook(headers, b"Hello, World!", (SECRET,), now=NOW)
    assert (result.ok, result.reason) == (True, "ok")


def test_github_verify_rotated_secret(provider: GitHubProvider) -> None:
    """A delivery signed with any configured secret verifies."""
    body = b'{"zen": "Keep it logically awesome."}'
    headers = _headers(body, secret="new-secret")
    assert provider.verify_webhook(headers, body, ("old", "new-secret"), now=NOW).ok


def test_github_verify_lower_case_header_names(provider: GitHubProvider) -> None:
    """Header names in a plain dict match in any case."""
    body = b"{}"
    headers = {k.lower(): v for k, v in _headers(body).items()}
    assert provider.verify_webhook(headers, body, (SECRET,), now=NOW).ok


def test_github_verify_tampered_body_mismatch(provider: GitHubProvider) -> None:
    """One changed byte after signing is a mismatch."""
    headers = _headers(b'{"a": 1}')
    result = provider.verify_webhook(headers, b'{"a": 2}', (SECRET,), now=NOW)
    assert (result.ok, result.reason) == (False, "mismatch")


def test_github_verify_only_sha1_header_is_missing(provider: GitHubProvider) -> None:
    """The legacy SHA-1 header alone is not accepted."""
    body = b"{}"
    headers = {"X-Hub-Signature": "sha1=" + hmac_hex(SECRET, body, "sha1")}
    assert provider.verify_webhook(headers, body, (SECRET,), now=NOW).reason == (
        "missing_header"
    )


def test_github_verify_sha1_accepted_when_provider_allows_it() -> None:
    """A provider made with allow_sha1=True accepts a SHA-1-only delivery."""
    body = b"{}"
    headers = {"X-Hub-Signature": "sha1=" + hmac_hex(SECRET, body, "sha1")}
    legacy = GitHubProvider(allow_sha1=True)
    assert legacy.verify_webhook(headers, body, (SECRET,), now=NOW).ok
    headers["X-Hub-Signature"] = "sha1=" + "0" * 40
    assert legacy.verify_webhook(headers, body, (SECRET,), now=NOW).reason == (
        "mismatch"
    )


@pytest.mark.parametrize(
    "value",
    ["757107ea", "sha1=" + "ab" * 20, "sha256=xyz", "sha256=", "sha256=é" * 3],
)
def test_github_verify_malformed_signature_bad_format(
    provider: GitHubProvider, value: str
) -> None:
    """Signatures without ``sha256=`` and 64 hex digits are ``bad_format``."""
    result = provider.verify_webhook(
        {"X-Hub-Signature-256": value}, b"{}", (SECRET,), now=NOW
    )
    assert result.reason == "bad_format"


def test_github_verify_without_secret_is_no_secret(provider: GitHubProvider) -> None:
    """With no secret configured nothing verifies."""
    body = b"{}"
    assert provider.verify_webhook(_headers(body), body, (), now=NOW).reason == (
        "no_secret"
    )


@pytest.mark.parametrize("path", _fixture_params())
def test_github_fixture_verifies_and_parses(
    provider: GitHubProvider, path: Path
) -> None:
    """Every published payload, signed as read, verifies and names its event."""
    body = path.read_bytes()
    event_name = path.parent.name
    headers = _headers(body, **{"X-GitHub-Event": event_name})
    assert provider.verify_webhook(headers, body, (SECRET,), now=NOW).ok

    event = provider.parse_webhook(headers, body, "application/json")
    assert event.event == event_name
    assert event.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event.dedup_key == "292430182:72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event.payload == json.loads(body)
    assert event.reply is None


# -- parse_webhook -----------------------------------------------------------


def test_github_parse_form_encoded_payload(provider: GitHubProvider) -> None:
    """A form body's ``payload`` field holds the JSON."""
    body = urllib.parse.urlencode(
        {"payload": '{"zen": "Design for failure."}'}
    ).encode()
    headers = _headers(body, **{"X-GitHub-Event": "ping"})
    event = provider.parse_webhook(headers, body, "application/x-www-form-urlencoded")
    assert (event.event, event.payload) == ("ping", {"zen": "Design for failure."})


def test_github_parse_sniffs_body_without_content_type(
    provider: GitHubProvider,
) -> None:
    """With no content type, a JSON-looking body is JSON."""
    headers = _headers(b"{}")
    del headers["Content-Type"]
    assert provider.parse_webhook(headers, b' {"a": 1}', "").payload == {"a": 1}


def test_github_parse_without_hook_id_keys_on_delivery(
    provider: GitHubProvider,
) -> None:
    """A missing hook id leaves an empty prefix in the dedup key."""
    headers = _headers(b"{}")
    del headers["X-GitHub-Hook-ID"]
    event = provider.parse_webhook(headers, b"{}", "application/json")
    assert event.dedup_key == ":72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.mark.parametrize(
    ("drop", "reason"),
    [("X-GitHub-Event", "missing_event"), ("X-GitHub-Delivery", "missing_delivery_id")],
)
def test_github_parse_missing_header_rejected(
    provider: GitHubProvider, drop: str, reason: str
) -> None:
    """Deliveries without an event or a delivery id are refused with 400."""
    headers = _headers(b"{}")
    del headers[drop]
    with pytest.raises(WebhookRejected) as info:
        provider.parse_webhook(headers, b"{}", "application/json")
    assert (info.value.status, info.value.reason) == (400, reason)


def test_github_parse_odd_header_values_rejected(provider: GitHubProvider) -> None:
    """An event name with spaces or non-ASCII text is a malformed header."""
    headers = _headers(b"{}", **{"X-GitHub-Event": "push ü"})
    with pytest.raises(WebhookRejected) as info:
        provider.parse_webhook(headers, b"{}", "application/json")
    assert info.value.reason == "malformed_header"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe{", "application/json"),
        (b"other=1", "application/x-www-form-urlencoded"),
        (b"payload=%5B%5D", "application/x-www-form-urlencoded"),
        (b"payload=%ff", "application/x-www-form-urlencoded"),
    ],
)
def test_github_parse_malformed_body_rejected(
    provider: GitHubProvider, body: bytes, content_type: str
) -> None:
    """Bodies that are not a JSON object (directly or in ``payload``) get 400."""
    with pytest.raises(WebhookRejected) as info:
        provider.parse_webhook(_headers(body), body, content_type)
    assert (info.value.status, info.value.reason) == (400, "malformed_body")


# -- properties --------------------------------------------------------------

_HEADER_NAMES = st.sampled_from(
    [
        "X-Hub-Signature-256",
        "x-hub-signature-256",
        "X-GitHub-Event",
        "X-GitHub-Delivery",
        "X-GitHub-Hook-ID",
        "Content-Type",
    ]
)
_VALUES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80),
    st.none(),
    st.integers(),
    st.just("sha256=" + "0" * 64),
)
_HEADERS = st.dictionaries(st.one_of(_HEADER_NAMES, st.text(max_size=10)), _VALUES)


@given(headers=_HEADERS, body=st.one_of(st.binary(max_size=300), st.text(max_size=50)))
def test_github_verify_never_raises(headers: dict[Any, Any], body: Any) -> None:
    """Arbitrary headers and bodies give a VerifyResult, never an exception."""
    result = GitHubProvider().verify_webhook(headers, body, (SECRET,), now=NOW)
    assert result.reason in ("missing_header", "bad_format", "mismatch")


@given(
    headers=_HEADERS, body=st.binary(max_size=300), content_type=st.text(max_size=40)
)
def test_github_parse_raises_only_webhook_rejected(
    headers: dict[Any, Any], body: bytes, content_type: str
) -> None:
    """Parsing arbitrary input either names an event or refuses it with 400."""
    statuses: list[int] = []
    try:
        GitHubProvider().parse_webhook(headers, body, content_type)
    except WebhookRejected as exc:
        statuses.append(exc.status)
    assert statuses in ([], [400])


@given(body=st.binary(max_size=300), other=st.binary(max_size=300))
def test_github_signature_never_verifies_other_body(body: bytes, other: bytes) -> None:
    """A signature over one body never verifies a different body."""
    headers = _headers(body)
    provider = GitHubProvider()
    assert provider.verify_webhook(headers, body, (SECRET,), now=NOW).ok
    if other != body:
        assert not provider.verify_webhook(headers, other, (SECRET,), now=NOW).ok


# -- rate-limit growth and pagination ----------------------------------------


def test_github_classify_guessed_secondary_wait_grows(provider: GitHubProvider) -> None:
    """A secondary limit without Retry-After is a guess the pipeline may grow."""
    body = b'{"message": "You have exceeded a secondary rate limit."}'
    guessed = provider.classify(403, _gh_headers(x_ratelimit_remaining="6"), body)
    told = provider.classify(403, _gh_headers(retry_after="30"), body)
    assert (guessed.retry_after, guessed.grows) == (60.0, True)
    assert (told.retry_after, told.grows) == (30.0, False)


def test_github_next_page_ignores_deprecation_link(provider: GitHubProvider) -> None:
    """Only next/prev/first/last drive paging: a deprecation Link is not a page."""
    headers = _gh_headers(Link='<https://example.invalid/changelog>; rel="deprecation"')
    body = {"total_count": 1, "incomplete_results": False, "items": [{"id": 1}]}
    assert provider.next_page(200, headers, body, {"q": "x"}) is None
    assert provider.page_items(body, "/search/code") == [{"id": 1}]


def test_github_next_page_follows_next_link(provider: GitHubProvider) -> None:
    """rel="next" is followed even when listed after other relations."""
    link = (
        '<https://api.github.com/repositories/1/issues?page=1>; rel="prev", '
        '<https://api.github.com/repositories/1/issues?page=3>; rel="next", '
        '<https://api.github.com/repositories/1/issues?page=9>; rel="last"'
    )
    following = provider.next_page(200, _gh_headers(Link=link), [], {})
    assert following == "https://api.github.com/repositories/1/issues?page=3"


def test_github_next_page_204_is_empty_last_page(provider: GitHubProvider) -> None:
    """A 204 ends the walk with no items, whatever its headers say."""
    link = '<https://api.github.com/x?page=2>; rel="next"'
    assert provider.next_page(204, _gh_headers(Link=link), None, {}) is None
    assert provider.page_items(None, "/x") == []
