"""The Flask extension: mounting, configuration and coexistence with routes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from signed_provider import SignedProvider

flask = pytest.importorskip("flask")

from revo_sdk import (  # noqa: E402  # after the optional-dependency skip above
    ConfigurationError,
    IntegrationConfig,
    Provider,
    UnknownIntegrationError,
)
from revo_sdk import _queue as queue  # noqa: E402  # after the skip above
from revo_sdk._db import Database  # noqa: E402  # after the skip above
from revo_sdk._webhooks import Delivery, WebhookManager  # noqa: E402  # after the skip
from revo_sdk.contrib.flask import RevoWebhooks  # noqa: E402  # after the skip above

SECRET = "flask-secret"


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


# -- a view of the application's own at the webhook path ----------------------

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def slack_signed(body: bytes, timestamp: int) -> dict[str, str]:
    """Headers signed the way Slack documents: v0 HMAC over v0:<ts>:<body>."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(SLACK_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


@pytest.fixture
def slack_client(tmp_path: Path) -> Iterator[Any]:
    from revo_sdk import Client

    client = Client(
        [IntegrationConfig(name="slack", webhook_secrets=(SLACK_SECRET,))],
        db_path=tmp_path / "slack.db",
        metrics=False,
    )
    yield client
    client.close()


def test_slash_command_view_sees_form_after_verification(
    slack_client: Any, tmp_path: Path
) -> None:
    """A view reading request.form for a signed slash command runs once stored."""
    app = flask.Flask("revo_slash_app")
    RevoWebhooks(app, client=slack_client, pass_through=True)
    seen: dict[str, Any] = {}

    @app.post("/webhooks/slack")
    def slash() -> str:
        seen["raw"] = flask.request.get_data()  # cached, so form parses it too
        seen["command"] = flask.request.form["command"]
        seen["event_id"] = flask.request.environ["revo_sdk.webhook"].event_id
        return f"Running {flask.request.form['command']} {flask.request.form['text']}"

    body = urlencode(
        {"command": "/deploy", "text": "prod", "user_id": "U1", "team_id": "T1"}
    ).encode()
    headers = slack_signed(body, int(time.time()))

    response = app.test_client().post("/webhooks/slack", data=body, headers=headers)

    assert response.status_code == 200
    assert response.get_data() == b"Running /deploy prod"
    assert seen["command"] == "/deploy"
    assert seen["raw"] == body
    [row] = queue.list_events(slack_client.database)
    assert (row["event"], row["id"]) == ("slash_command", seen["event_id"])


def test_slash_command_with_bad_signature_never_reaches_view(
    slack_client: Any,
) -> None:
    """A forged slash command is 401 and the view does not run."""
    app = flask.Flask("revo_slash_forged")
    RevoWebhooks(app, client=slack_client, pass_through=True)
    calls: list[str] = []

    @app.post("/webhooks/slack")
    def slash() -> str:
        calls.append(flask.request.form["command"])
        return "ran"

    body = b"command=%2Fdeploy&text=prod"
    headers = slack_signed(body, int(time.time()))
    headers["X-Slack-Signature"] = "v0=" + "0" * 64

    response = app.test_client().post("/webhooks/slack", data=body, headers=headers)

    assert response.status_code == 401
    assert calls == []
    assert queue.list_events(slack_client.database) == []


def test_failing_view_still_answers_stored_delivery(slack_client: Any) -> None:
    """A view that errors after the delivery is stored gets the sender a 202."""
    app = flask.Flask("revo_slash_failing")
    RevoWebhooks(app, client=slack_client, pass_through=True)

    @app.post("/webhooks/slack")
    def slash() -> Any:
        return "nope", 500

    body = b"command=%2Fdeploy&text=prod"
    response = app.test_client().post(
        "/webhooks/slack", data=body, headers=slack_signed(body, int(time.time()))
    )

    assert response.status_code == 202
    assert len(queue.list_events(slack_client.database)) == 1


def test_ingest_rate_from_config(stand_in: StandIn) -> None:
    """REVO_WEBHOOK_INGEST_RATE turns the limit on: 429 once the burst is spent."""
    app = make_app(REVO_WEBHOOK_INGEST_RATE=0.001, REVO_WEBHOOK_INGEST_BURST=2)
    RevoWebhooks(app, client=stand_in)
    client = app.test_client()

    statuses = [signed_post(client, "/webhooks/test", f"r{n}") for n in range(3)]

    assert [r.status_code for r in statuses] == [202, 202, 429]
    assert int(statuses[2].headers["Retry-After"]) >= 1


def test_pass_through_config_string_false_is_off(stand_in: StandIn) -> None:
    """REVO_WEBHOOK_PASS_THROUGH="false" (as from an env file) keeps it off."""
    app = make_app(REVO_WEBHOOK_PASS_THROUGH="false")
    RevoWebhooks(app, client=stand_in)

    @app.post("/webhooks/test")
    def view() -> str:
        return "view"

    response = signed_post(app.test_client(), "/webhooks/test", "f1")
    assert (response.status_code, response.get_json()) == (202, {"ok": True})
