"""A minimal signed-webhook provider shared by the intake tests.

Deliveries carry an HMAC-SHA256 hex digest of the raw body in
``X-Test-Signature`` and a JSON (or form ``payload=``) body with ``id`` and
``type``; a ``url_verification`` body is answered inline with its challenge.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from revo_sdk import Provider, VerifyResult, WebhookEvent
from revo_sdk._webhooks import decode_body


def sign(secret: str, body: bytes) -> str:
    """The ``X-Test-Signature`` value for ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class SignedProvider(Provider):
    """The test provider; ``key_prefix`` is prepended to dedup keys."""

    name = "test"
    key_prefix = ""

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: tuple[str, ...],
        *,
        now: float,
    ) -> VerifyResult:
        given = headers.get("X-Test-Signature")
        if not given:
            return VerifyResult(False, "missing_header")
        for secret in secrets:
            if hmac.compare_digest(sign(secret, body), given):
                return VerifyResult(True, "ok")
        return VerifyResult(False, "mismatch")

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> WebhookEvent:
        data = decode_body(body, content_type or "application/json")
        if data.get("type") == "url_verification":
            reply = (200, "text/plain", data["challenge"].encode())
            return WebhookEvent("url_verification", "", "", data, reply=reply)
        key = f"{self.key_prefix}{data['id']}"
        return WebhookEvent(data["type"], data["id"], key, data)
