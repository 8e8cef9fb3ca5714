"""The Standard Webhooks scheme and its generic provider plugin."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revo_sdk import Client, IntegrationConfig, WebhookRejected
from revo_sdk._signatures import standard_webhooks_key, verify_standard_webhooks
from revo_sdk_plugins.standard_webhooks import StandardWebhooksProvider

# The example published with the Standard Webhooks specification and Svix.
EXAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EXAMPLE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
EXAMPLE_TS = 1614265330
EXAMPLE_BODY = b'{"test": 2432232314}'
EXAMPLE_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def sign(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    """An independent implementation of the scheme, for the tests."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{ts}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    signature: str = EXAMPLE_SIGNATURE,
    msg_id: str = EXAMPLE_ID,
    ts: int = EXAMPLE_TS,
    prefix: str = "webhook",
) -> dict[str, str]:
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(ts),
        f"{prefix}-signature": signature,
    }


def test_published_example_verifies() -> None:
    """The specification's example vector verifies at its own timestamp."""
    result = verify_standard_webhooks(
        headers(), EXAMPLE_BODY, (EXAMPLE_SECRET,), now=EXAMPLE_TS
    )
    assert (result.ok, result.reason) == (True, "ok")


def test_published_example_matches_independent_signer() -> None:
    """The test's own signer reproduces the published signature."""
    assert sign(EXAMPLE_SECRET, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY) == (
        EXAMPLE_SIGNATURE
    )


@pytest.mark.parametrize(
    "secret",
    [
        EXAMPLE_SECRET,
        EXAMPLE_SECRET.removeprefix("whsec_"),
        EXAMPLE_SECRET + "=",  # needs no padding; an extra "=" is tolerated
    ],
)
def test_secret_with_or_without_prefix_and_padding(secret: str) -> None:
    """``whsec_`` is optional and missing or extra ``=`` padding is tolerated."""
    result = verify_standard_webhooks(headers(), EXAMPLE_BODY, secret, now=EXAMPLE_TS)
    assert result.ok


def test_unpadded_secret_decodes_like_padded() -> None:
    """A secret whose base64 needs padding works with the padding left off."""
    key = bytes(range(20))  # 20 bytes: base64 ends in "="
    padded = "whsec_" + base64.b64encode(key).decode()
    assert padded.endswith("=")
    assert standard_webhooks_key(padded) == key
    assert standard_webhooks_key(padded.rstrip("=")) == key


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!!", "not base64 at all"])
def test_unusable_secret_is_no_secret(secret: str) -> None:
    """Secrets that are not base64 cannot sign anything: no_secret."""
    result = verify_standard_webhooks(headers(), EXAMPLE_BODY, secret, now=EXAMPLE_TS)
    assert result.reason == "no_secret"


def test_several_signatures_and_rotated_secrets() -> None:
    """Any listed v1 signature matching any secret verifies; others are ignored."""
    old = "whsec_" + base64.b64encode(b"old-key-0123456789").decode()
    body = b'{"type":"invoice.paid"}'
    good = sign(old, "msg_1", EXAMPLE_TS, body)
    listed = f"v1a,AAAA v1,{'A' * 43}= {good}"
    result = verify_standard_webhooks(
        headers(listed, "msg_1"), body, (EXAMPLE_SECRET, old), now=EXAMPLE_TS
    )
    assert result.ok
    only_new = verify_standard_webhooks(
        headers(listed, "msg_1"), body, (EXAMPLE_SECRET,), now=EXAMPLE_TS
    )
    assert only_new.reason == "mismatch"


def test_svix_header_aliases_accepted() -> None:
    """``svix-id``/``svix-timestamp``/``svix-signature`` work like the new names."""
    result = verify_standard_webhooks(
        headers(prefix="svix"), EXAMPLE_BODY, EXAMPLE_SECRET, now=EXAMPLE_TS
    )
    assert result.ok


def test_header_names_any_case() -> None:
    """Header names are matched case-insensitively."""
    mixed = {k.upper(): v for k, v in headers().items()}
    result = verify_standard_webhooks(
        mixed, EXAMPLE_BODY, EXAMPLE_SECRET, now=EXAMPLE_TS
    )
    assert result.ok


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (EXAMPLE_TS + 300, "ok"),
        (EXAMPLE_TS - 300, "ok"),
        (EXAMPLE_TS + 301, "stale_timestamp"),
        (EXAMPLE_TS - 301, "future_timestamp"),
    ],
)
def test_timestamp_window(now: int, reason: str) -> None:
    """The timestamp must be within five minutes of the injected clock."""
    result = verify_standard_webhooks(headers(), EXAMPLE_BODY, EXAMPLE_SECRET, now=now)
    assert result.reason == reason


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"webhook-timestamp": "soon"}, "bad_format"),
        ({"webhook-timestamp": "1614265330.5"}, "bad_format"),
        ({"webhook-signature": "v1,not-base64!"}, "bad_format"),
        ({"webhook-signature": "v2," + EXAMPLE_SIGNATURE[3:]}, "bad_format"),
        ({"webhook-signature": "v1,AAAA"}, "bad_format"),
        ({"webhook-id": "msg with spaces"}, "bad_format"),
        ({"webhook-id": "msg_other"}, "mismatch"),
    ],
)
def test_malformed_or_tampered_headers(changed: dict[str, str], reason: str) -> None:
    """Each kind of bad header gets its own reason."""
    result = verify_standard_webhooks(
        {**headers(), **changed}, EXAMPLE_BODY, EXAMPLE_SECRET, now=EXAMPLE_TS
    )
    assert result.reason == reason


def test_missing_header_and_tampered_body() -> None:
    """A missing header is missing_header; another body is mismatch."""
    partial = headers()
    del partial["webhook-timestamp"]
    assert (
        verify_standard_webhooks(
            partial, EXAMPLE_BODY, EXAMPLE_SECRET, now=EXAMPLE_TS
        ).reason
        == "missing_header"
    )
    assert (
        verify_standard_webhooks(
            headers(), EXAMPLE_BODY + b" ", EXAMPLE_SECRET, now=EXAMPLE_TS
        ).reason
        == "mismatch"
    )


@given(
    key=st.binary(min_size=1, max_size=64),
    body=st.binary(max_size=300),
    other=st.binary(max_size=300),
    msg_id=st.from_regex(r"[A-Za-z0-9_]{1,40}", fullmatch=True),
)
def test_signature_binds_body_id_and_key(
    key: bytes, body: bytes, other: bytes, msg_id: str
) -> None:
    """A signature verifies exactly its own body under its own secret."""
    secret = "whsec_" + base64.b64encode(key).decode()
    signature = sign(secret, msg_id, EXAMPLE_TS, body)
    given_headers = headers(signature, msg_id)
    assert verify_standard_webhooks(given_headers, body, secret, now=EXAMPLE_TS).ok
    if other != body:
        assert not verify_standard_webhooks(
            given_headers, other, secret, now=EXAMPLE_TS
        ).ok


# -- the provider ----------------------------------------------------------------


def test_provider_parses_type_and_keys_by_message_id() -> None:
    """The event is the payload's type; delivery id and dedup key are webhook-id."""
    provider = StandardWebhooksProvider()
    body = json.dumps({"type": "invoice.paid", "data": {"id": 1}}).encode()
    event = provider.parse_webhook(headers(msg_id="msg_9"), body, "application/json")
    assert (event.event, event.delivery_id, event.dedup_key) == (
        "invoice.paid",
        "msg_9",
        "msg_9",
    )
    assert event.payload["data"] == {"id": 1}


@pytest.mark.parametrize(
    ("hdrs", "body", "reason"),
    [
        ({}, b'{"type":"a"}', "missing_delivery_id"),
        ({"webhook-id": "m 1"}, b'{"type":"a"}', "malformed_header"),
        ({"webhook-id": "m1"}, b"[1]", "malformed_body"),
        ({"webhook-id": "m1"}, b'{"data":1}', "missing_event"),
        ({"webhook-id": "m1"}, b'{"type":"has space"}', "malformed_body"),
    ],
)
def test_provider_rejects_malformed(
    hdrs: dict[str, str], body: bytes, reason: str
) -> None:
    """Malformed deliveries are a 400 with a reason."""
    with pytest.raises(WebhookRejected) as info:
        StandardWebhooksProvider().parse_webhook(hdrs, body, "application/json")
    assert (info.value.status, info.value.reason) == (400, reason)


def test_subclass_changes_event_field_and_default() -> None:
    """A plugin can reuse the provider with its own event field."""

    class Acme(StandardWebhooksProvider):
        name = "acme"
        event_field = "event"
        default_event = "acme_event"

    provider = Acme()
    named = provider.parse_webhook({"svix-id": "m1"}, b'{"event":"x.y"}', "")
    unnamed = provider.parse_webhook({"svix-id": "m2"}, b"{}", "")
    assert (named.event, unnamed.event) == ("x.y", "acme_event")


def test_provider_through_client_stores_once(tmp_path: Any) -> None:
    """Signed deliveries are stored; a retry with the same webhook-id is a duplicate."""
    with Client(db_path=tmp_path / "sw.db", metrics=False) as client:
        # Installed through its entry point, or not yet: either way the same.
        client.providers.setdefault("standard_webhooks", StandardWebhooksProvider())
        client.register(
            IntegrationConfig(
                name="billing",
                provider="standard_webhooks",
                base_url="https://api.billing.example",
                webhook_secrets=(EXAMPLE_SECRET,),
            )
        )
        now = int(time.time())
        body = b'{"type":"invoice.paid"}'
        signed = headers(sign(EXAMPLE_SECRET, "msg_a", now, body), "msg_a", now)
        first = client.webhooks.receive("billing", signed, body, "application/json")
        again = client.webhooks.receive("billing", signed, body, "application/json")
        assert (first.status, first.duplicate) == (202, False)
        assert (again.status, again.duplicate) == (202, True)
        with pytest.raises(WebhookRejected) as info:
            client.webhooks.receive(
                "billing", headers(msg_id="msg_a"), body, "application/json"
            )
        assert info.value.status == 401
