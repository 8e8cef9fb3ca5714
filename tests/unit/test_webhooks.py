"""The webhook manager: intake, handlers, retries, dead letters and workers."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from signed_provider import SignedProvider as BaseSignedProvider

from revo_sdk import (
    ConfigurationError,
    IntegrationConfig,
    PermanentHandlerError,
    Provider,
    RetryPolicy,
    StorageError,
    UnknownIntegrationError,
    WebhookRecord,
    WebhookRejected,
)
from revo_sdk import _queue as queue
from revo_sdk._db import Database
from revo_sdk._exceptions import RetryLater
from revo_sdk._webhooks import (
    Delivery,
    Headers,
    WebhookManager,
    decode_body,
)

SECRET = "s3cret-value"
T0 = 1_700_000_000.0


class SignedProvider(BaseSignedProvider):
    """The shared test provider, with dedup keys distinct from delivery ids."""

    key_prefix = "key-"


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Test-Signature": digest, "Content-Type": "application/json"}


def delivery(event_id: str, kind: str = "push", **extra: Any) -> bytes:
    return json.dumps({"id": event_id, "type": kind, **extra}).encode()


CONFIGS = {
    "github": IntegrationConfig(name="github", webhook_secrets=(SECRET,)),
    "nosecret": IntegrationConfig(name="nosecret"),
    "open": IntegrationConfig(name="open", allow_unsigned_webhooks=True),
}


def resolve(name: str) -> tuple[IntegrationConfig, Provider]:
    if name not in CONFIGS:
        raise UnknownIntegrationError(name, tuple(CONFIGS))
    return CONFIGS[name], SignedProvider()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "hooks.db")
    yield database
    database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def records() -> list[WebhookRecord]:
    return []


@pytest.fixture
def manager(
    db: Database, clock: FakeClock, records: list[WebhookRecord]
) -> Iterator[WebhookManager]:
    hooks = WebhookManager(
        database=lambda: db,
        resolve=resolve,
        notify=records.append,
        clock=clock,
        max_attempts=3,
        retry=RetryPolicy(base_delay=2, max_delay=60, jitter=False),
        lease=30,
    )
    yield hooks
    hooks.close()


def post(manager: WebhookManager, body: bytes, integration: str = "github") -> Any:
    return manager.receive(integration, sign(body), body)


def rejected(manager: WebhookManager, *args: Any, **kw: Any) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as info:
        manager.receive(*args, **kw)
    return info.value


# -- intake -------------------------------------------------------------------


def test_receive_valid_delivery_stored_and_accepted(
    manager: WebhookManager, db: Database, records: list[WebhookRecord]
) -> None:
    """A signed delivery is committed and answered 202."""
    answer = post(manager, delivery("d1"))

    assert (answer.status, answer.duplicate) == (202, False)
    [row] = queue.list_events(db)
    assert (row["id"], row["event"], row["delivery_id"]) == (
        answer.event_id,
        "push",
        "d1",
    )
    assert row["dedup_key"] == "key-d1"
    assert [(r.stage, r.event_id) for r in records] == [("received", answer.event_id)]


def test_receive_redelivery_is_duplicate(
    manager: WebhookManager, db: Database, records: list[WebhookRecord]
) -> None:
    """The same delivery twice is stored once and both answered 202."""
    first = post(manager, delivery("d1"))
    second = post(manager, delivery("d1"))

    assert (second.status, second.duplicate, second.event_id) == (
        202,
        True,
        first.event_id,
    )
    assert len(queue.list_events(db)) == 1
    assert records[-1].stage == "duplicate"


def test_receive_bad_signature_rejected_and_logged_once(
    manager: WebhookManager, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong signature is a 401 with one WARNING naming integration and reason."""
    body = delivery("d1", secret_field="top-secret-body")
    headers = sign(body, secret="wrong")
    caplog.set_level(logging.DEBUG, logger="revo_sdk")

    error = rejected(manager, "github", headers, body)

    assert (error.status, error.reason) == (401, "mismatch")
    assert queue.list_events(db) == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "github" in line
    assert "mismatch" in line
    assert "top-secret-body" not in caplog.text
    assert headers["X-Test-Signature"] not in caplog.text


def test_receive_missing_signature_rejected(manager: WebhookManager) -> None:
    """A delivery without the signature header is a 401 missing_header."""
    error = rejected(manager, "github", {}, delivery("d1"))
    assert (error.status, error.reason) == (401, "missing_header")


def test_receive_without_secret_refused(manager: WebhookManager) -> None:
    """An integration with no secret refuses deliveries unless allowed."""
    error = rejected(manager, "nosecret", {}, delivery("d1"))
    assert (error.status, error.reason) == (401, "no_secret")


def test_receive_unsigned_allowed_when_configured(manager: WebhookManager) -> None:
    """allow_unsigned_webhooks accepts deliveries without a signature."""
    assert manager.receive("open", {}, delivery("d1")).status == 202


def test_receive_unknown_integration_is_404(manager: WebhookManager) -> None:
    """An integration nobody registered is a 404."""
    assert rejected(manager, "gitlab", {}, b"{}").status == 404
    assert rejected(manager, "../etc", {}, b"{}").status == 404


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"id": "x"}',
        b"\xff\xfe",
        b'{"id": "x", "type": ""}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_receive_malformed_body_is_400(manager: WebhookManager, body: bytes) -> None:
    """A signed body the provider cannot read is a 400, never an exception."""
    error = rejected(manager, "github", sign(body), body)
    assert (error.status, error.reason) == (400, "malformed")


def test_receive_too_large_is_413(db: Database) -> None:
    """A body above max_body is refused before verification."""
    hooks = WebhookManager(database=lambda: db, resolve=resolve, max_body=10)
    body = delivery("d1")
    with pytest.raises(WebhookRejected) as info:
        hooks.receive("github", sign(body), body)
    assert info.value.status == 413


def test_receive_unsupported_content_type_is_415(manager: WebhookManager) -> None:
    """Only JSON and form bodies are accepted."""
    body = delivery("d1")
    error = rejected(manager, "github", sign(body), body, "text/xml")
    assert error.status == 415
    ok = manager.receive("github", sign(body), body, "application/json; charset=utf-8")
    assert ok.status == 202


def test_receive_handshake_reply_passed_through(
    manager: WebhookManager, db: Database
) -> None:
    """A provider's handshake reply is answered inline and not stored."""
    body = json.dumps({"type": "url_verification", "challenge": "abc123"}).encode()

    answer = post(manager, body)

    assert (answer.status, answer.content_type, answer.body) == (
        200,
        "text/plain",
        b"abc123",
    )
    assert answer.event_id is None
    assert queue.list_events(db) == []


def test_receive_storage_failure_is_503(records: list[WebhookRecord]) -> None:
    """When the store cannot commit, the sender is told to retry (503)."""

    def broken() -> Database:
        raise StorageError("disk on fire")

    hooks = WebhookManager(database=broken, resolve=resolve, notify=records.append)
    body = delivery("d1")
    with pytest.raises(WebhookRejected) as info:
        hooks.receive("github", sign(body), body)
    assert (info.value.status, info.value.reason) == (503, "storage_unavailable")
    assert [r.stage for r in records] == ["rejected"]


def test_receive_header_names_case_insensitive(manager: WebhookManager) -> None:
    """Headers from a server (any case) reach the provider case-insensitively."""
    body = delivery("d1")
    headers = {k.upper(): v for k, v in sign(body).items()}
    assert manager.receive("github", headers, body).status == 202


def test_receive_observer_failure_does_not_reject(db: Database) -> None:
    """An exception in the notify callback is logged, not raised."""

    def explode(record: WebhookRecord) -> None:
        raise RuntimeError("observer bug")

    hooks = WebhookManager(database=lambda: db, resolve=resolve, notify=explode)
    body = delivery("d1")
    assert hooks.receive("github", sign(body), body).status == 202


# -- processing ---------------------------------------------------------------


def test_drain_runs_handler_and_marks_done(
    manager: WebhookManager, db: Database
) -> None:
    """drain() hands each due event to its handler and marks it done."""
    seen: list[Delivery] = []
    manager.on("github", "push")(seen.append)
    answer = post(manager, delivery("d1", ref="main"))

    assert manager.drain() == 1

    [got] = seen
    assert (got.id, got.event, got.delivery_id, got.attempts) == (
        answer.event_id,
        "push",
        "d1",
        1,
    )
    assert got.payload["ref"] == "main"
    assert got.headers["x-test-signature"] == got.headers["X-Test-Signature"]
    assert queue.counts(db) == {"github": {"done": 1}}
    assert manager.drain() == 0


def test_drain_event_filter_and_wildcard(manager: WebhookManager) -> None:
    """Handlers get their own event; ``"*"`` handlers get every event."""
    pushes: list[str] = []
    everything: list[str] = []
    manager.on("github", "push")(lambda d: pushes.append(d.delivery_id))
    manager.on("github")(lambda d: everything.append(d.delivery_id))
    post(manager, delivery("d1", "push"))
    post(manager, delivery("d2", "issues"))

    assert manager.drain() == 2

    assert pushes == ["d1"]
    assert sorted(everything) == ["d1", "d2"]


def test_drain_without_handler_marks_done(
    manager: WebhookManager, db: Database, records: list[WebhookRecord]
) -> None:
    """An event no handler wants is done (reason no_handler)."""
    manager.on("github", "push")(lambda d: None)
    post(manager, delivery("d1", "issues"))

    assert manager.drain() == 1

    assert queue.counts(db) == {"github": {"done": 1}}
    assert (records[-1].stage, records[-1].reason) == ("processed", "no_handler")


def test_failing_handler_retried_with_backoff_then_dead(
    manager: WebhookManager,
    db: Database,
    clock: FakeClock,
    records: list[WebhookRecord],
) -> None:
    """Failures back off (2 s, 4 s) and the third failure is dead with a traceback."""
    calls: list[int] = []

    @manager.on("github", "push")
    def flaky(d: Delivery) -> None:
        calls.append(d.attempts)
        raise ValueError(f"attempt {d.attempts} broke")

    post(manager, delivery("d1"))
    assert manager.drain() == 1
    [row] = queue.list_events(db)
    assert (row["status"], row["available_at"]) == ("pending", T0 + 2)

    clock.now = T0 + 1.9
    assert manager.drain() == 0
    clock.now = T0 + 2
    assert manager.drain() == 1
    clock.now = T0 + 6
    assert manager.drain() == 1

    assert calls == [1, 2, 3]
    [row] = queue.list_events(db)
    assert row["status"] == "dead"
    assert "Traceback" in row["last_error"]
    assert row["last_error"].rstrip().endswith("ValueError: attempt 3 broke")
    assert [r.stage for r in records[1:]] == ["retried", "retried", "dead"]


def test_permanent_handler_error_dead_at_once(
    manager: WebhookManager, db: Database, records: list[WebhookRecord]
) -> None:
    """PermanentHandlerError skips the retries."""

    @manager.on("github")
    def refuse(d: Delivery) -> None:
        raise PermanentHandlerError("cannot ever work")

    post(manager, delivery("d1"))
    assert manager.drain() == 1

    [row] = queue.list_events(db)
    assert (row["status"], row["attempts"]) == ("dead", 1)
    assert records[-1].reason.startswith("permanent")


def test_dead_event_redelivered_runs_again(
    manager: WebhookManager, db: Database
) -> None:
    """A sender's redelivery of a dead event is accepted and handled anew."""
    outcomes = iter([PermanentHandlerError("no"), None])
    seen: list[int] = []

    @manager.on("github")
    def handler(d: Delivery) -> None:
        seen.append(d.attempts)
        error = next(outcomes)
        if error is not None:
            raise error

    post(manager, delivery("d1"))
    manager.drain()
    again = post(manager, delivery("d1"))
    manager.drain()

    assert again.duplicate is False
    assert seen == [1, 1]
    assert queue.counts(db) == {"github": {"done": 1}}


def test_retry_strategy_none_makes_first_failure_final(db: Database) -> None:
    """With retry strategy ``none`` a failing handler is dead after one try."""
    hooks = WebhookManager(
        database=lambda: db, resolve=resolve, retry=RetryPolicy(strategy="none")
    )
    hooks.on("github")(lambda d: 1 / 0)
    body = delivery("d1")
    hooks.receive("github", sign(body), body)

    hooks.drain()

    assert queue.counts(db) == {"github": {"dead": 1}}


def test_expired_lease_is_processed_again(
    manager: WebhookManager, db: Database, clock: FakeClock
) -> None:
    """An event leased by a worker that vanished is handled once the lease ends."""
    seen: list[int] = []
    manager.on("github")(lambda d: seen.append(d.attempts))
    post(manager, delivery("d1"))
    queue.claim(db, limit=1, lease=30, now=clock.now)  # a worker that dies

    assert manager.drain() == 0
    clock.now += 30
    assert manager.drain() == 1
    assert seen == [2]


def test_workers_process_received_events(manager: WebhookManager, db: Database) -> None:
    """Started workers handle events and stop() joins them."""
    done = threading.Event()
    seen: list[str] = []
    lock = threading.Lock()

    @manager.on("github")
    def handler(d: Delivery) -> None:
        with lock:
            seen.append(d.delivery_id)
            if len(seen) == 20:
                done.set()

    manager.start(threads=3)
    for n in range(20):
        post(manager, delivery(f"d{n}"))
    assert done.wait(10)
    manager.stop()

    assert sorted(seen) == sorted(f"d{n}" for n in range(20))
    assert not [t for t in threading.enumerate() if t.name.startswith("revo-webhooks")]
    assert queue.counts(db) == {"github": {"done": 20}}


def test_workers_woken_by_receive_not_by_polling(db: Database) -> None:
    """A receive in this process wakes an idle worker (the poll is an hour)."""
    handled = threading.Event()
    hooks = WebhookManager(database=lambda: db, resolve=resolve, poll_interval=3600)
    hooks.on("github")(lambda d: handled.set())
    hooks.start(threads=1)
    try:
        time.sleep(0.05)  # let the worker go idle first
        body = delivery("d1")
        hooks.receive("github", sign(body), body)
        assert handled.wait(10)
    finally:
        hooks.stop()


def test_workers_run_handlers_concurrently(db: Database) -> None:
    """Several worker threads overlap in handlers."""
    barrier = threading.Barrier(2, timeout=10)
    hooks = WebhookManager(database=lambda: db, resolve=resolve, poll_interval=0.01)
    hooks.on("github")(lambda d: barrier.wait())
    for n in range(2):
        body = delivery(f"d{n}")
        hooks.receive("github", sign(body), body)
    hooks.start(threads=2)
    try:
        for _ in range(500):  # bounded wait for both handlers to pass the barrier
            if queue.counts(db).get("github") == {"done": 2}:
                break
            time.sleep(0.02)
    finally:
        hooks.stop()
    assert queue.counts(db) == {"github": {"done": 2}}


def test_start_twice_is_noop_and_restart_works(manager: WebhookManager) -> None:
    """start() while running does nothing; stop() then start() runs again."""
    manager.start(threads=2)
    manager.start(threads=5)
    running = [t for t in threading.enumerate() if t.name.startswith("revo-webhooks")]
    assert len(running) == 2
    manager.stop()
    manager.start(threads=1)
    running = [t for t in threading.enumerate() if t.name.startswith("revo-webhooks")]
    assert len(running) == 1
    manager.stop()


def test_replay_requeues_dead_events(manager: WebhookManager, db: Database) -> None:
    """replay() sends dead events back to be handled."""
    fail = [True]

    @manager.on("github")
    def handler(d: Delivery) -> None:
        if fail[0]:
            raise PermanentHandlerError("not yet")

    post(manager, delivery("d1"))
    manager.drain()
    fail[0] = False

    assert manager.replay() == 1
    assert manager.drain() == 1
    assert manager.counts() == {"github": {"done": 1}}


def test_handler_payload_falls_back_when_integration_unknown(
    db: Database,
) -> None:
    """A worker process without the integration still gets a decoded payload."""
    writer = WebhookManager(database=lambda: db, resolve=resolve)
    body = delivery("d1", n=7)
    writer.receive("github", sign(body), body)

    def nothing(name: str) -> tuple[IntegrationConfig, Provider]:
        raise UnknownIntegrationError(name)

    reader = WebhookManager(database=lambda: db, resolve=nothing)
    seen: list[Any] = []
    reader.on("github")(lambda d: seen.append(d.payload))
    reader.drain()
    assert seen == [{"id": "d1", "type": "push", "n": 7}]


# -- helpers ------------------------------------------------------------------


def test_headers_case_insensitive_and_keep_names() -> None:
    """Headers look up any case and iterate the original names."""
    headers = Headers({"X-GitHub-Event": "push"})
    assert headers["x-github-event"] == "push"
    assert "X-GITHUB-EVENT" in headers
    assert list(headers) == ["X-GitHub-Event"]
    assert "push" not in repr(headers)


def test_decode_body_json_and_forms() -> None:
    """JSON, form fields and form-wrapped JSON payloads decode; junk is None."""
    form = "application/x-www-form-urlencoded"
    assert decode_body(b'{"a": 1}', "application/json") == {"a": 1}
    assert decode_body(b"a=1&b=2", form) == {"a": "1", "b": "2"}
    assert decode_body(b"payload=%7B%22a%22%3A1%7D", form) == {"a": 1}
    assert decode_body(b"\xff", "application/json") is None


def test_manager_rejects_bad_settings(db: Database) -> None:
    """Nonsense settings fail at construction."""
    with pytest.raises(ConfigurationError):
        WebhookManager(database=lambda: db, resolve=resolve, max_attempts=0)
    with pytest.raises(ConfigurationError):
        WebhookManager(database=lambda: db, resolve=resolve, lease=0)


# -- handler controls, ordering, retention ------------------------------------


def test_retry_later_uses_requested_delay(
    manager: WebhookManager, db: Database, clock: FakeClock
) -> None:
    """RetryLater(n) makes the event due n seconds later, the attempt counted."""
    seen: list[int] = []

    @manager.on("github")
    def later(d: Delivery) -> None:
        seen.append(d.attempts)
        if d.attempts == 1:
            raise RetryLater(42)

    post(manager, delivery("d1"))
    manager.drain()
    [row] = queue.list_events(db)
    assert (row["status"], row["available_at"], row["attempts"]) == (
        "pending",
        T0 + 42,
        1,
    )
    clock.now = T0 + 42
    manager.drain()
    assert seen == [1, 2]
    assert queue.counts(db) == {"github": {"done": 1}}


def test_handler_extends_its_lease(
    manager: WebhookManager, db: Database, clock: FakeClock
) -> None:
    """A handler's extend_lease() moves the lease past the manager's 30 s."""
    extended: list[bool] = []

    @manager.on("github")
    def long_running(d: Delivery) -> None:
        clock.now += 25
        extended.append(d.extend_lease(300))
        [row] = queue.list_events(db)
        assert row["lease_until"] == clock.now + 300

    post(manager, delivery("d1"))
    manager.drain()

    assert extended == [True]
    assert queue.counts(db) == {"github": {"done": 1}}


def test_ordering_function_serialises_events_of_one_key(db: Database) -> None:
    """Events the ordering function puts under one key never run side by side."""
    hooks = WebhookManager(
        database=lambda: db,
        resolve=resolve,
        ordering=lambda integration, parsed: parsed.payload.get("repo"),
    )
    running: set[str] = set()
    overlaps: list[str] = []
    order: list[str] = []
    lock = threading.Lock()
    finished = threading.Event()

    @hooks.on("github")
    def handler(d: Delivery) -> None:
        repo = d.payload["repo"]
        with lock:
            if repo in running:
                overlaps.append(repo)
            running.add(repo)
            order.append(d.delivery_id)
        time.sleep(0.01)
        with lock:
            running.discard(repo)
            if len(order) == 12:
                finished.set()

    for n in range(12):
        post(hooks, delivery(f"d{n:02}", repo=f"r{n % 2}"))
    hooks.start(threads=4)
    try:
        assert finished.wait(20)
    finally:
        hooks.stop()

    assert overlaps == []
    assert [x for x in order if int(x[1:]) % 2 == 0] == [
        f"d{n:02}" for n in range(0, 12, 2)
    ]


def test_retention_purges_old_done_rows(db: Database, clock: FakeClock) -> None:
    """Retention (run by workers on a timer) purges done rows past their age."""
    hooks = WebhookManager(
        database=lambda: db, resolve=resolve, clock=clock, retention=60
    )
    hooks.on("github")(lambda d: None)
    post(hooks, delivery("d1"))
    hooks.drain()
    clock.now += 59
    assert hooks.apply_retention() == {"done": 0, "dead": 0}
    clock.now += 2

    assert hooks.apply_retention() == {"done": 1, "dead": 0}

    assert queue.counts(db) == {}
    again = post(hooks, delivery("d1"))
    assert again.duplicate  # the key outlives the purged row


def test_failure_not_recorded_is_not_a_handler_error(
    manager: WebhookManager,
    db: Database,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store error while recording a failure leaves the lease to run out."""
    manager.on("github")(lambda d: 1 / 0)
    post(manager, delivery("d1"))

    def locked(*args: Any, **kwargs: Any) -> str:
        raise StorageError("database is locked")

    monkeypatch.setattr(queue, "fail", locked)
    assert manager.drain() == 1

    [row] = queue.list_events(db)
    assert (row["status"], row["attempts"]) == ("processing", 1)


def test_heartbeat_extends_lease_of_running_handler(
    db: Database, clock: FakeClock
) -> None:
    """With a heartbeat, a running handler's lease follows the clock forward."""
    hooks = WebhookManager(
        database=lambda: db, resolve=resolve, clock=clock, lease=30, heartbeat=0.01
    )
    started, release = threading.Event(), threading.Event()

    @hooks.on("github")
    def long_running(d: Delivery) -> None:
        started.set()
        release.wait(10)

    post(hooks, delivery("d1"))
    hooks.start(threads=1)
    try:
        assert started.wait(10)
        clock.now += 1000  # far past the first lease
        for _ in range(1000):  # bounded: the heartbeat runs every 10 ms
            [row] = queue.list_events(db)
            if row["lease_until"] == clock.now + 30:
                break
            time.sleep(0.005)
        assert row["lease_until"] == clock.now + 30
        assert queue.claim(db, limit=1, lease=30, now=clock.now) == []
    finally:
        release.set()
        hooks.stop()

    assert queue.counts(db) == {"github": {"done": 1}}


def test_heartbeat_must_be_shorter_than_lease(db: Database) -> None:
    """A heartbeat at or above the lease would let the lease lapse: refused."""
    with pytest.raises(ConfigurationError):
        WebhookManager(database=lambda: db, resolve=resolve, lease=5, heartbeat=5)
