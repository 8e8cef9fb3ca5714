"""A generic provider for senders that follow Standard Webhooks.

`Standard Webhooks <https://www.standardwebhooks.com>`_ is a common signing
scheme (used by Svix and the services built on it, among others): headers
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (or their
older ``svix-*`` names), an HMAC-SHA256 over ``<id>.<timestamp>.<body>``
keyed with a ``whsec_``-prefixed base64 secret, and a JSON body whose
``type`` names the event.

Use it directly for any such sender::

    IntegrationConfig(
        name="billing",
        provider="standard_webhooks",
        base_url="https://api.billing.example",
        webhook_secrets=("whsec_...",),
    )

or subclass :class:`StandardWebhooksProvider` in a plugin of your own to
give the service a name, defaults and an outgoing API::

    class Acme(StandardWebhooksProvider):
        name = "acme"
        default_base_url = "https://api.acme.example"
        event_field = "event"

Known shortcoming: the provider knows nothing of the sender's API, so an
integration using it must give ``base_url`` even when it only receives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from revo_sdk import Provider, VerifyResult, WebhookEvent, WebhookRejected, hookimpl
from revo_sdk._signatures import (
    STANDARD_HEADERS,
    TIMESTAMP_TOLERANCE,
    as_bytes,
    header_value,
    is_token,
    load_json_object,
    verify_standard_webhooks,
)

log = logging.getLogger(__name__)


class StandardWebhooksProvider(Provider):
    """Verifies and names Standard Webhooks deliveries.

    Subclasses may change :attr:`event_field`, :attr:`default_event` and
    :attr:`tolerance`, or override :meth:`event_name` for payloads that
    name their event elsewhere.

    Instances hold no per-call state and are safe to share between threads.
    """

    name = "standard_webhooks"
    default_base_url = None
    #: The payload field holding the event name.
    event_field: ClassVar[str] = "type"
    #: The event name used when the payload has none; ``None`` rejects such
    #: deliveries with 400 ``missing_event``.
    default_event: ClassVar[str | None] = None
    #: Seconds ``webhook-timestamp`` may differ from now, either way.
    tolerance: ClassVar[float] = TIMESTAMP_TOLERANCE
    sensitive_headers = frozenset({"webhook-signature", "svix-signature"})

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: tuple[str, ...],
        *,
        now: float,
    ) -> VerifyResult:
        """Check ``webhook-signature`` over ``<id>.<timestamp>.<body>``.

        See :func:`revo_sdk._signatures.verify_standard_webhooks`.
        """
        return verify_standard_webhooks(
            headers, body, secrets, now=now, tolerance=self.tolerance
        )

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> WebhookEvent:
        """Name a delivery by its payload's event and key it by ``webhook-id``.

        The id is the same for every retry of one message, so retries are
        stored once.
        """
        raw = as_bytes(body)
        if raw is None:
            raise WebhookRejected(400, "malformed_body")
        delivery = _message_id(headers)
        if delivery is None:
            raise WebhookRejected(400, "missing_delivery_id")
        if not is_token(delivery, 256):
            raise WebhookRejected(400, "malformed_header")
        payload = load_json_object(raw)
        event = self.event_name(payload, headers)
        if event is None:
            raise WebhookRejected(400, "missing_event")
        if not is_token(event):
            raise WebhookRejected(400, "malformed_body")
        return WebhookEvent(event, delivery, delivery, payload)

    def event_name(
        self, payload: dict[str, Any], headers: Mapping[str, str]
    ) -> str | None:
        """The event name of a decoded payload, or ``None`` if it has none."""
        value = payload.get(self.event_field)
        if isinstance(value, str) and value:
            return value
        return self.default_event


def _message_id(headers: Mapping[str, str]) -> str | None:
    for names in STANDARD_HEADERS:
        value = header_value(headers, names[0])
        if value is not None:
            return value
    return None


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Contribute the generic Standard Webhooks provider."""
    register(StandardWebhooksProvider())
