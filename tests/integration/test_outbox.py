"""The outbox: stored outgoing calls sent by workers to a real HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Upstream, json_answer

from revo_sdk import (
    Client,
    ConfigurationError,
    IntegrationConfig,
    Provider,
    RetryPolicy,
    hookimpl,
)
from revo_sdk import _queue as queue

NO_WAIT = RetryPolicy(base_delay=0.001, max_delay=0.001, max_attempts=1)


class EchoProvider(Provider):
    """A minimal provider with the default classification."""

    name = "echo"


class EchoPlugin:
    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(EchoProvider())


class Clock:
    """Wall-clock time the test moves by hand (stored in the queue)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(upstream: Upstream, tmp_path: Path, clock: Clock) -> Iterator[Client]:
    """A client whose ``echo`` integration calls the upstream server once per try."""
    with Client(
        db_path=tmp_path / "outbox.db",
        plugins=[EchoPlugin()],
        load_entry_points=False,
        metrics=False,
        webhook_options={"max_attempts": 3, "retry": NO_WAIT, "clock": clock},
    ) as c:
        c.register(
            IntegrationConfig(
                name="echo", base_url=upstream.url, token="tok", retry=NO_WAIT
            )
        )
        yield c


def rows(client: Client) -> list[dict[str, Any]]:
    return queue.list_events(client.database, kind="outbox")


def test_outbox_call_sent_with_stored_idempotency_key(
    client: Client, upstream: Upstream
) -> None:
    """A stored call reaches the server once, with its body and key, then is done."""
    upstream.script("POST", "/chat", json_answer(200, {"ok": True}))

    entry = client.echo.enqueue("POST", "/chat", json={"text": "hi"})

    assert upstream.calls() == []  # stored, not sent yet
    assert client.webhooks.drain() == 1
    [seen] = upstream.calls("POST", "/chat")
    assert json.loads(seen.body) == {"text": "hi"}
    assert seen.headers["Idempotency-Key"] == entry.idempotency_key
    [row] = rows(client)
    assert (row["id"], row["status"], row["kind"]) == (entry.id, "done", "outbox")


def test_outbox_server_error_retried_with_same_key(
    client: Client, upstream: Upstream, clock: Clock
) -> None:
    """A 503 is retried by the queue; every attempt carries the same key."""
    upstream.script(
        "POST",
        "/chat",
        json_answer(503, {"ok": False}),
        json_answer(201, {"ok": True}),
    )
    entry = client.echo.enqueue("POST", "/chat", json={"text": "hi"})

    client.webhooks.drain()
    clock.now += 1
    client.webhooks.drain()

    keys = [seen.headers["Idempotency-Key"] for seen in upstream.calls("POST")]
    assert keys == [entry.idempotency_key] * 2
    [row] = rows(client)
    assert (row["status"], row["attempts"]) == ("done", 2)
    assert "503" in row["first_error"]


def test_outbox_client_error_dead_at_once(client: Client, upstream: Upstream) -> None:
    """A 4xx other than 408/425/429 cannot be fixed by resending: dead letter."""
    upstream.script("POST", "/chat", json_answer(422, {"message": "bad"}))

    client.echo.enqueue("POST", "/chat", json={"text": ""})
    client.webhooks.drain()

    [row] = rows(client)
    assert (row["status"], row["attempts"]) == ("dead", 1)
    assert "422" in row["last_error"]
    assert row["first_error"] == row["last_error"]


def test_outbox_same_idempotency_key_stored_once(
    client: Client, upstream: Upstream
) -> None:
    """Enqueueing twice with one key stores (and sends) the call once."""
    upstream.script("POST", "/chat", json_answer(200, {}))

    first = client.echo.enqueue("POST", "/chat", json={}, idempotency_key="k-1")
    second = client.echo.enqueue("POST", "/chat", json={}, idempotency_key="k-1")
    client.webhooks.drain()

    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.id == first.id
    assert len(upstream.calls("POST")) == 1


def test_outbox_crashed_worker_resends_after_lease_with_same_key(
    client: Client, upstream: Upstream, clock: Clock
) -> None:
    """A call claimed by a worker that died is sent again once its lease ends."""
    upstream.script("POST", "/chat", json_answer(200, {}))
    entry = client.echo.enqueue("POST", "/chat", json={"n": 1})
    [lost] = queue.claim(client.database, limit=1, lease=30, now=clock.now)

    assert client.webhooks.drain() == 0  # still leased to the dead worker
    clock.now += 30
    assert client.webhooks.drain() == 1

    [seen] = upstream.calls("POST")
    assert seen.headers["Idempotency-Key"] == entry.idempotency_key == lost.delivery_id
    assert rows(client)[0]["attempts"] == 2


def test_outbox_rejects_options_it_cannot_store(client: Client) -> None:
    """Only JSON-storable request options are accepted, before anything is stored."""
    with pytest.raises(ConfigurationError):
        client.echo.enqueue("POST", "/chat", files={"f": b"x"})
    with pytest.raises(ConfigurationError):
        client.echo.enqueue("POST", "/chat", json={"raw": b"bytes"})
    assert rows(client) == []


def test_outbox_messages_left_alone_without_sender(
    client: Client, upstream: Upstream
) -> None:
    """A manager with no outbox sender never claims outbox messages."""
    client.echo.enqueue("POST", "/chat", json={})
    client.webhooks.set_outbox_sender(None)

    assert client.webhooks.drain() == 0
    assert rows(client)[0]["status"] == "pending"
