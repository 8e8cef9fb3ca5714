"""The Flask extension: mounting, configuration and coexistence with routes."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask")

from revo_sdk import (  # noqa: E402  # after the optional-dependency skip above
    ConfigurationError,
    IntegrationConfig,
    Provider,
    UnknownIntegrationError,
    VerifyResult,
    WebhookEvent,
)
from revo_sdk import _queue as queue  # noqa: E402  # after the skip above
from revo_sdk._db import Database  # noqa: E402  # after the skip above
from revo_sdk._webhooks import Delivery, WebhookManager  # noqa: E402  # after the skip
from revo_sdk.contrib.flask import RevoWebhooks  # noqa: E402  # after the skip above

SECRET = "flask-secret"


class SignedProvider(Provider):
    """HMAC-SHA256 hex in ``X-Test-Signature``; JSON body with id and type."""

    name = "test"

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: tuple[str, ...],
        *,
        now: float,
    ) -> VerifyResult:
        given = headers.get("X-Test-Signature", "")
        expected = hmac.new(secrets[0].encode(), body, hashlib.sha256).hexdigest()
        return VerifyResult(hmac.compare_digest(expected, given), "mismatch")

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> WebhookEvent:
        data = json.loads(body)
        return WebhookEvent(data["type"], data["id"], data["id"], data)


def resolve(name: str) -> tuple[IntegrationConfig, Provider]:
    if name != "test":
        raise UnknownIntegrationError(name)
    return IntegrationConfig(name="test", webhook_secrets=(SECRET,)), SignedProvider()


@dataclass
class StandIn:
    """A client as far as the extension cares: it has ``webhooks``."""

    webhooks: WebhookManager


def signed_post(client: Any, path: str, delivery_id: str, kind: str = "push") -> Any:
    body = json.dumps({"id": delivery_id, "type": kind}).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        path,
        data=body,
        headers={"X-Test-Signature": digest, "Content-Type": "application/json"},
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "flask.db")
    yield database
    database.close()


@pytest.fixture
def stand_in(db: Database) -> StandIn:
    return StandIn(WebhookManager(database=lambda: db, resolve=resolve))


def make_app(**config: Any) -> Any:
    app = flask.Flask("revo_test_app")
    app.config.update(config)

    @app.post("/echo")
    def echo() -> str:
        return flask.request.get_data(as_text=True)

    @app.get("/")
    def index() -> str:
        return "home"

    return app


def test_extension_receives_webhooks(stand_in: StandIn, db: Database) -> None:
    """A signed delivery through the Flask app is stored and answered 202."""
    app = make_app()
    RevoWebhooks(app, client=stand_in)

    response = signed_post(app.test_client(), "/webhooks/test", "d1")

    assert response.status_code == 202
    assert [row["delivery_id"] for row in queue.list_events(db)] == ["d1"]


def test_extension_leaves_app_routes_alone(stand_in: StandIn) -> None:
    """Flask routes keep working, bodies included."""
    app = make_app()
    RevoWebhooks(app, client=stand_in)
    client = app.test_client()

    assert client.get("/").get_data() == b"home"
    assert client.post("/echo", data=b"hello").get_data() == b"hello"
    assert client.get("/missing").status_code == 404


def test_extension_registered_in_app_extensions(stand_in: StandIn) -> None:
    """The extension stores itself under app.extensions['revo_sdk']."""
    app = make_app()
    ext = RevoWebhooks(app, client=stand_in)
    assert app.extensions["revo_sdk"] is ext
    assert ext.webhooks is stand_in.webhooks


def test_init_app_factory_pattern(stand_in: StandIn, db: Database) -> None:
    """One extension object can be created first and bound to apps later."""
    ext = RevoWebhooks(client=stand_in)
    first, second = make_app(), make_app()
    ext.init_app(first)
    ext.init_app(second)
    ext.init_app(first)  # a second call on the same app changes nothing

    assert signed_post(first.test_client(), "/webhooks/test", "a").status_code == 202
    assert signed_post(second.test_client(), "/webhooks/test", "b").status_code == 202
    assert len(queue.list_events(db)) == 2


def test_prefix_from_config(stand_in: StandIn, db: Database) -> None:
    """REVO_WEBHOOK_PREFIX moves the webhook path."""
    app = make_app(REVO_WEBHOOK_PREFIX="/hooks/in")
    RevoWebhooks(app, client=stand_in)
    client = app.test_client()

    assert signed_post(client, "/hooks/in/test", "d1").status_code == 202
    assert signed_post(client, "/webhooks/test", "d2").status_code == 404


def test_max_body_from_config(stand_in: StandIn) -> None:
    """REVO_WEBHOOK_MAX_BODY caps the accepted body size."""
    app = make_app(REVO_WEBHOOK_MAX_BODY=10)
    RevoWebhooks(app, client=stand_in)
    assert signed_post(app.test_client(), "/webhooks/test", "d1").status_code == 413


def test_rejections_answered_not_raised(stand_in: StandIn) -> None:
    """Bad signatures and methods get their 4xx through Flask too."""
    app = make_app()
    RevoWebhooks(app, client=stand_in)
    client = app.test_client()

    bad = client.post(
        "/webhooks/test",
        data=b'{"id": "x", "type": "push"}',
        headers={"X-Test-Signature": "0" * 64, "Content-Type": "application/json"},
    )
    assert bad.status_code == 401
    assert client.get("/webhooks/test").status_code == 405


def test_handlers_run_from_extension(stand_in: StandIn) -> None:
    """Handlers registered through the extension see deliveries on drain()."""
    app = make_app()
    ext = RevoWebhooks(app, client=stand_in)
    seen: list[str] = []

    @ext.webhooks.on("test", "push")
    def handler(d: Delivery) -> None:
        seen.append(d.delivery_id)

    signed_post(app.test_client(), "/webhooks/test", "d1")
    assert ext.webhooks.drain() == 1
    assert seen == ["d1"]


def test_init_app_without_client_refused() -> None:
    """init_app needs a client from the constructor or the call."""
    with pytest.raises(ConfigurationError, match="client"):
        RevoWebhooks(make_app())


def test_second_extension_on_same_app_refused(stand_in: StandIn) -> None:
    """Two extension objects cannot both wrap one app."""
    app = make_app()
    RevoWebhooks(app, client=stand_in)
    with pytest.raises(ConfigurationError, match="already"):
        RevoWebhooks(app, client=stand_in)
