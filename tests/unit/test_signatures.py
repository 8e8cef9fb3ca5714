"""Tests of the shared header, signature and body helpers."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from revo_sdk import VerifyResult, WebhookRejected
from revo_sdk._signatures import (
    body_fingerprint,
    check_hmac,
    header_date,
    header_int,
    header_value,
    hmac_hex,
    is_token,
    load_form,
    load_json_object,
    media_type,
    parse_iso8601,
    split_signature,
    usable_secrets,
    verify_github,
    verify_hmac_hex,
    verify_jira,
    verify_slack,
    verify_standard_webhooks,
)

# GitHub's documented example for validating webhook deliveries.
DOC_SECRET = "It's a Secret to Everybody"
DOC_PAYLOAD = b"Hello, World!"
DOC_SIGNATURE = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_hmac_hex_matches_published_example() -> None:
    """hmac_hex reproduces GitHub's published HMAC-SHA256 example."""
    assert hmac_hex(DOC_SECRET, DOC_PAYLOAD) == DOC_SIGNATURE


def test_hmac_hex_same_for_text_and_bytes_secret() -> None:
    """A text secret is the same key as its UTF-8 bytes."""
    assert hmac_hex("sécret", b"x") == hmac_hex("sécret".encode(), b"x")


def test_hmac_hex_unknown_digest_raises_value_error() -> None:
    """Asking for a digest outside the allowed list is a programming error."""
    with pytest.raises(ValueError, match="unsupported digest"):
        hmac_hex("k", b"x", "md5")


def test_verify_hmac_hex_accepts_published_example() -> None:
    """The published signature verifies with the published secret."""
    assert verify_hmac_hex((DOC_SECRET,), DOC_PAYLOAD, DOC_SIGNATURE)


def test_verify_hmac_hex_accepts_upper_case_hex() -> None:
    """Hex digits compare by value, not by letter case."""
    assert verify_hmac_hex((DOC_SECRET,), DOC_PAYLOAD, DOC_SIGNATURE.upper())


def test_verify_hmac_hex_accepts_any_rotated_secret() -> None:
    """A signature made with the second of two secrets verifies."""
    assert verify_hmac_hex(("old-secret", DOC_SECRET), DOC_PAYLOAD, DOC_SIGNATURE)


def test_verify_hmac_hex_single_secret_string_is_accepted() -> None:
    """A lone secret string counts as one secret, not as its characters."""
    assert verify_hmac_hex(DOC_SECRET, DOC_PAYLOAD, DOC_SIGNATURE)


def test_verify_hmac_hex_tries_every_secret_after_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every secret is compared even when the first one matches."""
    calls: list[bool] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(real(a, b))
        return calls[-1]

    monkeypatch.setattr(hmac, "compare_digest", counting)
    assert verify_hmac_hex((DOC_SECRET, "b", "c"), DOC_PAYLOAD, DOC_SIGNATURE)
    assert calls == [True, False, False]


def test_verify_hmac_hex_ignores_empty_secret() -> None:
    """An empty secret never verifies, even a signature made with it."""
    forged = hmac_hex(b"", DOC_PAYLOAD)
    assert not verify_hmac_hex(("",), DOC_PAYLOAD, forged)
    assert check_hmac(("",), DOC_PAYLOAD, forged).reason == "no_secret"


@pytest.mark.parametrize(
    "given_hex",
    [
        DOC_SIGNATURE[:-1],  # odd length
        DOC_SIGNATURE[:-2],  # too short
        DOC_SIGNATURE + "00",  # too long
        "zz" * 32,  # not hex
        "é" * 64,  # non-ASCII
        "\u0661" * 64,  # non-ASCII digits
        " " * 64,
        "",
        None,
        b"757107ea",
        12345,
    ],
)
def test_check_hmac_odd_signature_is_bad_format(given_hex: object) -> None:
    """A signature that is not hex of the digest's size is ``bad_format``."""
    result = check_hmac((DOC_SECRET,), DOC_PAYLOAD, given_hex)
    assert (result.ok, result.reason) == (False, "bad_format")


def test_check_hmac_other_body_is_mismatch() -> None:
    """A valid signature of another body is a ``mismatch``."""
    result = check_hmac((DOC_SECRET,), b"Hello, World?", DOC_SIGNATURE)
    assert (result.ok, result.reason) == (False, "mismatch")


@pytest.mark.parametrize("msg", ["Hello, World!", None, 3])
def test_check_hmac_message_not_bytes_is_bad_format(msg: Any) -> None:
    """A message that is not bytes-like never verifies and never raises."""
    assert check_hmac((DOC_SECRET,), msg, DOC_SIGNATURE).reason == "bad_format"


def test_check_hmac_unknown_digest_is_bad_format() -> None:
    """An unsupported digest name reads as a format problem, not an error."""
    assert check_hmac((DOC_SECRET,), DOC_PAYLOAD, "ab" * 16, "md5").reason == (
        "bad_format"
    )


@pytest.mark.parametrize("secrets", [(), [], None, 5, ("", None, 7)])
def test_check_hmac_without_usable_secret_is_no_secret(secrets: Any) -> None:
    """No usable secret gives ``no_secret`` whatever the container."""
    assert check_hmac(secrets, DOC_PAYLOAD, DOC_SIGNATURE).reason == "no_secret"


def test_usable_secrets_skips_unencodable_and_odd_entries() -> None:
    """Entries that cannot be keys are dropped, the rest kept in order."""
    assert usable_secrets(["a", b"b", "", None, 3, "\ud800"]) == [b"a", b"b"]


def test_split_signature_splits_at_first_equals() -> None:
    """The scheme is lower-cased and the value may itself contain ``=``."""
    assert split_signature("SHA256=ab=cd") == ("sha256", "ab=cd")
    assert split_signature("nothing") is None
    assert split_signature(None) is None


def test_header_value_plain_dict_any_case() -> None:
    """A plain dict is searched case-insensitively and values are stripped."""
    headers = {"x-hub-signature-256": "  sha256=ab \t"}
    assert header_value(headers, "X-Hub-Signature-256") == "sha256=ab"


def test_header_value_case_insensitive_dict() -> None:
    """requests' case-insensitive headers work through their own lookup."""
    headers = CaseInsensitiveDict({"X-GitHub-Event": "push"})
    assert header_value(headers, "x-github-event") == "push"


def test_header_value_bytes_read_as_latin1() -> None:
    """Byte values are decoded as Latin-1, as WSGI servers do."""
    assert header_value({"X-A": b"caf\xe9"}, "x-a") == "café"


@pytest.mark.parametrize("value", [None, "", "   ", 5, ["a"], object()])
def test_header_value_unusable_value_is_none(value: object) -> None:
    """Missing, empty and non-text values all read as absent."""
    assert header_value({"X-A": value}, "X-A") is None


def test_header_value_survives_broken_mapping() -> None:
    """A mapping whose methods raise reads as having no headers."""

    class Broken(dict[str, str]):
        def get(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

        def items(self) -> Iterator[Any]:  # type: ignore[override]  # a broken mapping
            raise RuntimeError("boom")

    assert header_value(Broken(), "X-A") is None
    assert header_value(None, "X-A") is None
    assert header_value(["not", "a", "mapping"], "X-A") is None  # type: ignore[arg-type]  # odd input on purpose


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("42", 42),
        (" 7 ", 7),
        ("0", 0),
        ("1_000", None),
        ("-1", None),
        ("\u0661\u0662", None),
    ],
)
def test_header_int_plain_ascii_digits_only(value: str, expected: int | None) -> None:
    """Only plain ASCII digits are numbers; underscores and signs are not."""
    assert header_int({"X-N": value}, "x-n") == expected


def test_header_date_parses_http_date_and_rejects_garbage() -> None:
    """An HTTP date gives epoch seconds; garbage gives None."""
    assert header_date({"Date": "Mon, 20 May 2024 10:00:00 GMT"}) == 1716199200.0
    assert header_date({"Date": "yesterday"}) is None
    assert header_date({}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-20T10:00Z", 1716199200.0),
        ("2024-05-20T10:00:30Z", 1716199230.0),
        ("2024-05-20T12:00+02:00", 1716199200.0),
        ("2024-05-20T10:00", 1716199200.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_iso8601_forms(value: str | None, expected: float | None) -> None:
    """Jira's minute-precision UTC form and its relatives parse; garbage does not."""
    assert parse_iso8601(value) == expected


def test_is_token_accepts_names_and_rejects_odd_text() -> None:
    """Event names pass; spaces, control and non-ASCII characters do not."""
    assert is_token("jira:issue_created")
    assert not is_token("two words")
    assert not is_token("tab\there")
    assert not is_token("é")
    assert not is_token("x" * 201)
    assert not is_token(None)


def test_body_fingerprint_parts_are_unambiguous() -> None:
    """Moving bytes between parts changes the fingerprint."""
    assert body_fingerprint(b"ab", "c") != body_fingerprint(b"a", "bc")
    assert body_fingerprint(b"ab", "c") == body_fingerprint(b"ab", b"c")


def test_media_type_from_argument_or_header() -> None:
    """Parameters are dropped and the header is the fallback."""
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type("", {"content-type": "text/plain"}) == "text/plain"
    assert media_type(None, None) == ""


@pytest.mark.parametrize(
    "body",
    [b"", b"[1, 2]", b"42", b"{", b"\xff\xfe\x00", b"[" * 5000 + b"]" * 5000],
)
def test_load_json_object_rejects_non_objects(body: bytes) -> None:
    """Anything but a JSON object is a 400 ``malformed_body``."""
    with pytest.raises(WebhookRejected) as info:
        load_json_object(body)
    assert (info.value.status, info.value.reason) == (400, "malformed_body")


def test_load_form_keeps_blank_values_and_first_duplicate() -> None:
    """``text=`` survives and the first of repeated fields wins."""
    assert load_form(b"a=1&text=&a=2") == {"a": "1", "text": ""}


@pytest.mark.parametrize("body", [b"a=%ff", b"\xff=1", b"novalue", b"a=1&"])
def test_load_form_rejects_malformed(body: bytes) -> None:
    """Bad UTF-8 and fields without ``=`` are a 400 ``malformed_body``."""
    with pytest.raises(WebhookRejected) as info:
        load_form(body)
    assert info.value.reason == "malformed_body"


_ANY = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.binary(max_size=80),
    st.integers(),
    st.lists(st.text(max_size=5), max_size=3),
)


@given(secrets=_ANY, msg=_ANY, given_hex=_ANY, digest=st.text(max_size=10))
def test_verify_hmac_hex_never_raises(
    secrets: Any, msg: Any, given_hex: Any, digest: str
) -> None:
    """Arbitrary values of every argument give a boolean, never an exception."""
    assert verify_hmac_hex(secrets, msg, given_hex, digest) in (True, False)


@given(
    secret=st.text(min_size=1, max_size=40),
    body=st.binary(max_size=200),
    other=st.binary(max_size=200),
    digest=st.sampled_from(["sha1", "sha256", "sha384", "sha512"]),
)
def test_verify_hmac_hex_signature_binds_body(
    secret: str, body: bytes, other: bytes, digest: str
) -> None:
    """A signature verifies its own body and never a different one."""
    try:
        signature = hmac_hex(secret, body, digest)
    except UnicodeEncodeError:  # lone surrogates cannot be a configured secret
        return
    assert verify_hmac_hex((secret,), body, signature, digest)
    if other != body:
        assert not verify_hmac_hex((secret,), other, signature, digest)


# -- one function per scheme ---------------------------------------------------

NOW = 1_700_000_000


def _slack_headers(
    body: bytes,
    ts: str,
    secret: str = "slack-s",  # noqa: S107  # a test secret
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, "sha256")
    return {
        "x-slack-request-timestamp": ts,
        "X-SLACK-SIGNATURE": "v0=" + digest.hexdigest(),
    }


def test_verify_github_published_example_any_header_case() -> None:
    """GitHub's documented example verifies, header names in any case."""
    headers = {"x-hub-signature-256": "sha256=" + DOC_SIGNATURE}
    assert verify_github(headers, DOC_PAYLOAD, (DOC_SECRET,)).ok


def test_verify_github_sha1_only_when_allowed() -> None:
    """A delivery signed only with SHA-1 passes only with allow_sha1."""
    sha1 = hmac_hex(DOC_SECRET, DOC_PAYLOAD, "sha1")
    headers = {"X-Hub-Signature": "sha1=" + sha1}
    assert verify_github(headers, DOC_PAYLOAD, DOC_SECRET).reason == "missing_header"
    assert verify_github(headers, DOC_PAYLOAD, DOC_SECRET, allow_sha1=True).ok
    # With both headers present, SHA-256 decides even when SHA-1 is allowed.
    both = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    result = verify_github(both, DOC_PAYLOAD, DOC_SECRET, allow_sha1=True)
    assert result.reason == "mismatch"


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("sha1=" + "0" * 40, "bad_format"),
        ("sha256=zz", "bad_format"),
        ("x", "bad_format"),
    ],
)
def test_verify_github_reasons(signature: str, reason: str) -> None:
    """Odd signature values give a reason, not an exception."""
    headers = {"X-Hub-Signature-256": signature}
    assert verify_github(headers, DOC_PAYLOAD, DOC_SECRET).reason == reason
    assert verify_github(headers, DOC_PAYLOAD, ()).reason == "no_secret"


def test_verify_slack_window_and_timestamp_format() -> None:
    """±300 s is accepted; outside is stale or future; non-numeric is bad_format."""
    body = b"token=x&command=%2Fdeploy"
    for offset, reason in [
        (0, "ok"),
        (-300, "ok"),
        (300, "ok"),
        (-301, "stale_timestamp"),
        (301, "future_timestamp"),
    ]:
        headers = _slack_headers(body, str(NOW + offset))
        result = verify_slack(headers, body, "slack-s", now=NOW)
        assert result.reason == reason, offset
    for ts in ["1.7e9", "-5", "17000000OO", " ", "\u0661\u0667" + "\u0660" * 8]:
        headers = _slack_headers(body, ts)
        result = verify_slack(headers, body, "slack-s", now=NOW)
        assert result.reason in ("bad_format", "missing_header"), ts


def test_verify_slack_rotated_secrets_and_clock() -> None:
    """Any configured secret verifies; a NaN clock never accepts."""
    body = b'{"type":"event_callback"}'
    headers = _slack_headers(body, str(NOW), "new")
    assert verify_slack(headers, body, ("old", "new"), now=NOW).ok
    assert not verify_slack(headers, body, ("old",), now=NOW).ok
    assert not verify_slack(headers, body, ("new",), now=float("nan")).ok


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha512", "SHA256"])
def test_verify_jira_digest_chosen_by_method(method: str) -> None:
    """The method in X-Hub-Signature picks the digest."""
    body = b'{"webhookEvent":"jira:issue_created"}'
    signature = hmac_hex("jira-s", body, method.lower())
    headers = {"x-hub-signature": f"{method}={signature}"}
    assert verify_jira(headers, body, "jira-s").ok
    assert verify_jira(headers, body, "jira-s", methods=("md5",)).reason == (
        "bad_format"
    )


_HEADER_DICTS = st.dictionaries(
    st.sampled_from(
        [
            "X-Hub-Signature-256",
            "X-Hub-Signature",
            "X-Slack-Signature",
            "X-Slack-Request-Timestamp",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "svix-id",
            "svix-timestamp",
            "svix-signature",
        ]
    ),
    st.one_of(st.text(max_size=60), st.binary(max_size=20), st.none(), st.integers()),
    max_size=6,
)


@given(
    headers=_HEADER_DICTS,
    body=_ANY,
    secrets=_ANY,
    now=st.one_of(st.floats(), st.integers(), st.none()),
)
def test_scheme_functions_never_raise(
    headers: dict[str, Any], body: Any, secrets: Any, now: Any
) -> None:
    """Every scheme function answers any input with a VerifyResult."""
    results = [
        verify_github(headers, body, secrets),
        verify_github(headers, body, secrets, allow_sha1=True),
        verify_slack(headers, body, secrets, now=now),
        verify_jira(headers, body, secrets),
        verify_standard_webhooks(headers, body, secrets, now=now),
    ]
    for result in results:
        assert isinstance(result, VerifyResult)
        assert result.ok in (True, False)
