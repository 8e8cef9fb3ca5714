"""The WSGI middleware over real HTTP on 127.0.0.1, and its edge cases."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import logging
import socket
import socketserver
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults

import pytest
from signed_provider import SignedProvider

from revo_sdk import (
    IntegrationConfig,
    Provider,
    StorageError,
    UnknownIntegrationError,
)
from revo_sdk import _queue as queue
from revo_sdk._db import Database
from revo_sdk._webhooks import WebhookManager
from revo_sdk.contrib.wsgi import WebhookMiddleware

SECRET = "wsgi-secret"


def resolve(name: str) -> tuple[IntegrationConfig, Provider]:
    if name != "test":
        raise UnknownIntegrationError(name)
    return IntegrationConfig(name="test", webhook_secrets=(SECRET,)), SignedProvider()


@dataclass
class StandIn:
    """The only thing the middleware may use of a client: ``webhooks``."""

    webhooks: Any


def signed(body: bytes, content_type: str = "application/json") -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Test-Signature": digest, "Content-Type": content_type}


def payload(kind: str = "push", delivery_id: str | None = None) -> bytes:
    return json.dumps({"id": delivery_id or uuid.uuid4().hex, "type": kind}).encode()


def downstream(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The wrapped app: echoes method, path and the body it could read."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    answer = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {body!r}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [answer]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # tests stay quiet
        pass


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "wsgi.db")
    yield database
    database.close()


@pytest.fixture
def manager(db: Database) -> WebhookManager:
    return WebhookManager(database=lambda: db, resolve=resolve)


@pytest.fixture
def app(manager: WebhookManager) -> WebhookMiddleware:
    return WebhookMiddleware(downstream, StandIn(manager), max_body=4096)


@pytest.fixture
def server(app: WebhookMiddleware) -> Iterator[tuple[str, int]]:
    httpd = make_server(
        "127.0.0.1", 0, app, server_class=ThreadingServer, handler_class=QuietHandler
    )
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield "127.0.0.1", httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def request(
    server: tuple[str, int],
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*server, timeout=10)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def raw_request(server: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        for _ in range(1000):  # bounded: the server closes after answering
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def call(
    app: WebhookMiddleware, path: str, body: bytes = b"", **environ: Any
) -> tuple[str, dict[str, str], bytes]:
    """Call the middleware directly with a hand-made environ."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    env.update(environ)
    setup_testing_defaults(env)
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"] = status
        captured["headers"] = dict(headers)

    answer = b"".join(app(env, start_response))
    return captured["status"], captured["headers"], answer


# -- over HTTP ----------------------------------------------------------------


def test_signed_delivery_stored_then_accepted(
    server: tuple[str, int], db: Database
) -> None:
    """A signed POST is answered 202 and is in the queue."""
    body = payload(delivery_id="abc")

    status, headers, answer = request(
        server, "POST", "/webhooks/test", body, signed(body)
    )

    assert status == 202
    assert headers["Content-Type"] == "application/json"
    assert json.loads(answer) == {"ok": True}
    [row] = queue.list_events(db)
    assert (row["integration"], row["delivery_id"]) == ("test", "abc")


def test_redelivery_answered_202_stored_once(
    server: tuple[str, int], db: Database
) -> None:
    """A duplicate delivery is still a 2xx for the sender, stored once."""
    body = payload(delivery_id="same")
    for _ in range(3):
        status, _, _ = request(server, "POST", "/webhooks/test", body, signed(body))
        assert status == 202
    assert len(queue.list_events(db)) == 1


def test_form_encoded_delivery_accepted(server: tuple[str, int], db: Database) -> None:
    """application/x-www-form-urlencoded bodies are received."""
    body = urlencode({"payload": payload(delivery_id="form1").decode()}).encode()
    headers = signed(body, "application/x-www-form-urlencoded")

    status, _, _ = request(server, "POST", "/webhooks/test", body, headers)

    assert status == 202
    assert queue.list_events(db)[0]["delivery_id"] == "form1"


def test_other_paths_reach_the_app_untouched(server: tuple[str, int]) -> None:
    """Requests outside ``{prefix}/<integration>`` go to the wrapped app."""
    for method, path in [
        ("POST", "/other"),
        ("GET", "/"),
        ("POST", "/webhooks"),
        ("POST", "/webhooks/test/extra"),
        ("POST", "/webhooksx/test"),
    ]:
        status, _, answer = request(server, method, path, b"data")
        assert status == 200
        assert answer == f"{method} {path} b'data'".encode()


def test_wrong_method_is_405(server: tuple[str, int]) -> None:
    """Only POST is accepted on a webhook path."""
    status, headers, answer = request(server, "GET", "/webhooks/test")
    assert status == 405
    assert headers["Allow"] == "POST"
    assert json.loads(answer) == {"error": "method_not_allowed"}


def test_bad_signature_is_401(server: tuple[str, int], db: Database) -> None:
    """A wrong signature is refused and nothing is stored."""
    body = payload()
    headers = {**signed(body), "X-Test-Signature": "00" * 32}
    status, _, answer = request(server, "POST", "/webhooks/test", body, headers)
    assert (status, json.loads(answer)) == (401, {"error": "mismatch"})
    assert queue.list_events(db) == []


def test_unknown_integration_is_404(server: tuple[str, int]) -> None:
    """Integrations nobody registered are 404, odd names included."""
    for path in ["/webhooks/nope", "/webhooks/..", "/webhooks/a-b", "/webhooks/%C3%A9"]:
        status, _, _ = request(
            server, "POST", path, b"{}", {"Content-Type": "application/json"}
        )
        assert status == 404, path


def test_malformed_body_is_400(server: tuple[str, int]) -> None:
    """A signed body that is not a delivery is a 400, not a 500."""
    for body in [b"{", b"[]", b'"text"', b"\x00\xff"]:
        status, _, _ = request(server, "POST", "/webhooks/test", body, signed(body))
        assert status == 400, body


def test_missing_length_is_411(server: tuple[str, int]) -> None:
    """A POST without Content-Length (and not chunked) is refused with 411."""
    answer = raw_request(
        server,
        b"POST /webhooks/test HTTP/1.0\r\nHost: x\r\n"
        b"Content-Type: application/json\r\n\r\n{}",
    )
    assert answer.startswith((b"HTTP/1.0 411", b"HTTP/1.1 411"))


def test_too_large_is_413(server: tuple[str, int], db: Database) -> None:
    """A body above max_body is refused without being stored."""
    body = json.dumps({"id": "big", "type": "push", "pad": "x" * 5000}).encode()
    status, _, _ = request(server, "POST", "/webhooks/test", body, signed(body))
    assert status == 413
    assert queue.list_events(db) == []


def test_unsupported_content_type_is_415(server: tuple[str, int]) -> None:
    """XML and other types are refused."""
    body = payload()
    status, _, _ = request(
        server, "POST", "/webhooks/test", body, signed(body, "text/xml")
    )
    assert status == 415


def test_handshake_reply_passed_through(server: tuple[str, int], db: Database) -> None:
    """A URL-verification challenge is echoed as the provider says."""
    body = json.dumps({"type": "url_verification", "challenge": "ch4ll"}).encode()
    status, headers, answer = request(
        server, "POST", "/webhooks/test", body, signed(body)
    )
    assert (status, headers["Content-Type"], answer) == (200, "text/plain", b"ch4ll")
    assert queue.list_events(db) == []


def test_rejections_logged_once_without_secrets(
    server: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    """Each rejection is one WARNING with integration and reason, no secrets."""
    caplog.set_level(logging.INFO)
    body = json.dumps({"id": "x", "type": "push", "note": "body-marker"}).encode()
    headers = {**signed(body), "X-Test-Signature": "deadbeef" * 8}

    request(server, "POST", "/webhooks/test", body, headers)
    request(server, "GET", "/webhooks/test")

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2
    assert "integration=test" in warnings[0]
    assert "reason=mismatch" in warnings[0]
    assert "reason=method_not_allowed" in warnings[1]
    assert "body-marker" not in caplog.text
    assert "deadbeef" not in caplog.text


def test_storage_unavailable_is_503_with_retry_after(tmp_path: Path) -> None:
    """When the queue cannot commit, the answer is 503 with Retry-After."""

    def broken() -> Database:
        raise StorageError("database is locked")

    middleware = WebhookMiddleware(
        downstream, StandIn(WebhookManager(database=broken, resolve=resolve))
    )
    body = payload()
    status, headers, answer = call(
        middleware,
        "/webhooks/test",
        body,
        CONTENT_TYPE="application/json",
        HTTP_X_TEST_SIGNATURE=signed(body)["X-Test-Signature"],
    )
    assert status.startswith("503")
    assert headers["Retry-After"] == "5"
    assert json.loads(answer) == {"error": "storage_unavailable"}


# -- edge cases with a hand-made environ --------------------------------------


def test_invalid_content_length_is_400(app: WebhookMiddleware) -> None:
    """A Content-Length that is not a number is a 400."""
    for value in ["abc", "-5", "1e3", "12 34"]:
        status, _, answer = call(app, "/webhooks/test", b"{}", CONTENT_LENGTH=value)
        assert status.startswith("400"), value
        assert json.loads(answer) == {"error": "invalid_content_length"}


def test_length_over_max_body_refused_before_reading(app: WebhookMiddleware) -> None:
    """A declared length above max_body is 413 and the stream is not read."""

    class Untouchable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("the body must not be read")

    status, _, _ = call(
        app,
        "/webhooks/test",
        CONTENT_LENGTH="999999999",
        **{"wsgi.input": Untouchable()},
    )
    assert status.startswith("413")


def test_short_body_is_400(app: WebhookMiddleware) -> None:
    """A body shorter than its Content-Length is a 400 incomplete_body."""
    status, _, answer = call(app, "/webhooks/test", b"{}", CONTENT_LENGTH="100")
    assert status.startswith("400")
    assert json.loads(answer) == {"error": "incomplete_body"}


def test_reads_exactly_content_length(app: WebhookMiddleware, db: Database) -> None:
    """Only Content-Length bytes are read, even if the stream holds more."""
    body = payload(delivery_id="exact")
    stream = io.BytesIO(body + b"TRAILING-GARBAGE")
    status, _, _ = call(
        app,
        "/webhooks/test",
        CONTENT_LENGTH=str(len(body)),
        CONTENT_TYPE="application/json",
        HTTP_X_TEST_SIGNATURE=signed(body)["X-Test-Signature"],
        **{"wsgi.input": stream},
    )
    assert status.startswith("202")
    assert stream.read() == b"TRAILING-GARBAGE"


def test_chunked_body_read_when_server_terminates_input(
    app: WebhookMiddleware, db: Database
) -> None:
    """Chunked bodies are read to the end only if wsgi.input_terminated is set."""
    body = payload(delivery_id="chunky")
    sig = signed(body)["X-Test-Signature"]
    common = {
        "CONTENT_LENGTH": "",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "HTTP_X_TEST_SIGNATURE": sig,
    }

    status, _, _ = call(app, "/webhooks/test", body, **common)
    assert status.startswith("411")

    status, _, _ = call(
        app, "/webhooks/test", body, **common, **{"wsgi.input_terminated": True}
    )
    assert status.startswith("202")

    big = b"x" * 5000
    status, _, _ = call(
        app, "/webhooks/test", big, **common, **{"wsgi.input_terminated": True}
    )
    assert status.startswith("413")


def test_internal_bug_is_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Only a genuine bug below the middleware is a 500, logged with its traceback."""

    class Broken:
        def receive(self, *args: Any, **kw: Any) -> Any:
            raise RuntimeError("bug")

    middleware = WebhookMiddleware(downstream, StandIn(Broken()))
    status, _, answer = call(middleware, "/webhooks/test", b"{}")
    assert status.startswith("500")
    assert json.loads(answer) == {"error": "internal_error"}
    assert any(r.exc_info for r in caplog.records if r.levelno >= logging.ERROR)


def test_prefix_normalised_and_root_prefix(manager: WebhookManager) -> None:
    """Prefix slashes do not matter, and a trailing slash on the path is fine."""
    body = payload()
    sig = signed(body)["X-Test-Signature"]
    for prefix, path in [("hooks/", "/hooks/test"), ("/", "/test/"), ("", "/test")]:
        middleware = WebhookMiddleware(downstream, StandIn(manager), prefix=prefix)
        status, _, _ = call(
            middleware,
            path,
            body,
            CONTENT_TYPE="application/json",
            HTTP_X_TEST_SIGNATURE=sig,
        )
        assert status.startswith("202"), (prefix, path)


# -- real provider fixtures ---------------------------------------------------


def test_github_fixtures_accepted_through_middleware(
    shared_fixtures: Path, tmp_path: Path
) -> None:
    """GitHub's published example payloads, signed as GitHub does, are all stored."""
    github = pytest.importorskip("revo_sdk_plugins.github")
    provider = github.GitHubProvider()
    secret = "gh-secret"
    config = IntegrationConfig(name="github", webhook_secrets=(secret,))
    db = Database(tmp_path / "gh.db")
    manager = WebhookManager(
        database=lambda: db, resolve=lambda name: (config, provider)
    )
    middleware = WebhookMiddleware(downstream, StandIn(manager))
    files = sorted((shared_fixtures / "github").glob("*/*.json"))
    assert files

    for n, path in enumerate(files):
        body = path.read_bytes()
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        status, _, _ = call(
            middleware,
            "/webhooks/github",
            body,
            CONTENT_TYPE="application/json",
            HTTP_X_GITHUB_EVENT=path.parent.name,
            HTTP_X_GITHUB_DELIVERY=f"delivery-{n}",
            HTTP_X_GITHUB_HOOK_ID="42",
            HTTP_X_HUB_SIGNATURE_256=f"sha256={digest}",
        )
        assert status.startswith("202"), path

    events = {row["event"] for row in queue.list_events(db, limit=1000)}
    assert events == {path.parent.name for path in files}
    assert len(queue.list_events(db, limit=1000)) == len(files)
    db.close()


# -- GitHub: one delivery id, several hooks -----------------------------------


def github_headers(
    body: bytes, secret: str, delivery: str, hook_id: str
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": hook_id,
        "X-Hub-Signature-256": f"sha256={digest}",
    }


@pytest.fixture
def github_client(tmp_path: Path) -> Iterator[Any]:
    from revo_sdk import Client

    client = Client(
        [IntegrationConfig(name="github", webhook_secrets=("hook-101", "hook-202"))],
        db_path=tmp_path / "github.db",
        metrics=False,
        webhook_options={"max_attempts": 1},
    )
    yield client
    client.close()


def test_github_same_delivery_two_hooks_both_stored_then_dedup_and_dead_replay(
    github_client: Any,
) -> None:
    """Hooks 101 and 202 sharing X-GitHub-Delivery are two events; repeats
    are stored once while pending and accepted again once dead."""
    from revo_sdk import PermanentHandlerError

    middleware = WebhookMiddleware(downstream, github_client)
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    first = github_headers(body, "hook-101", "d-1", "101")
    second = github_headers(body, "hook-202", "d-1", "202")

    def send(headers: dict[str, str]) -> tuple[str, bytes]:
        env = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        env["CONTENT_TYPE"] = env.pop("HTTP_CONTENT_TYPE")
        status, _, answer = call(middleware, "/webhooks/github", body, **env)
        return status, answer

    assert send(first)[0].startswith("202")
    assert send(second)[0].startswith("202")
    assert len(queue.list_events(github_client.database)) == 2

    status, answer = send(first)  # a redelivery while pending
    assert status.startswith("202")
    assert json.loads(answer)["duplicate"] is True
    assert len(queue.list_events(github_client.database)) == 2

    @github_client.webhooks.on("github", "push")
    def refuse(delivery: Any) -> None:
        if delivery.headers["X-GitHub-Hook-ID"] == "101":
            raise PermanentHandlerError("not now")

    assert github_client.webhooks.drain(timeout=10) == 2
    rows = {
        r["delivery_id"] + "/" + str(r["id"]): r["status"]
        for r in queue.list_events(github_client.database)
    }
    assert sorted(rows.values()) == ["dead", "done"]

    status, answer = send(first)  # a redelivery after the dead letter
    assert status.startswith("202")
    assert json.loads(answer) == {"ok": True}
    statuses = sorted(r["status"] for r in queue.list_events(github_client.database))
    assert statuses == ["done", "pending"]

    status, answer = send(second)  # the done one stays done
    assert json.loads(answer)["duplicate"] is True


# -- secrets ------------------------------------------------------------------


def test_integration_without_secret_refuses_unless_unsigned_allowed(
    tmp_path: Path,
) -> None:
    """No secret means 401 no_secret, unless allow_unsigned_webhooks is set."""
    from revo_sdk import Client

    body = json.dumps({"ref": "x"}).encode()
    env = {
        "CONTENT_TYPE": "application/json",
        "HTTP_X_GITHUB_EVENT": "push",
        "HTTP_X_GITHUB_DELIVERY": "u-1",
    }
    for allow, expected in [(False, "401"), (True, "202")]:
        with Client(
            [IntegrationConfig(name="github", allow_unsigned_webhooks=allow)],
            db_path=tmp_path / f"unsigned-{allow}.db",
            metrics=False,
        ) as client:
            middleware = WebhookMiddleware(downstream, client)
            status, _, answer = call(middleware, "/webhooks/github", body, **env)
            assert status.startswith(expected), allow
            if not allow:
                assert json.loads(answer) == {"error": "no_secret"}


# -- pass-through -------------------------------------------------------------


def test_pass_through_app_sees_rewound_body_and_its_2xx_is_sent(
    manager: WebhookManager, db: Database
) -> None:
    """With pass_through, the app below reads the same body and answers."""
    seen: dict[str, Any] = {}

    def view(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ["CONTENT_LENGTH"])
        seen["body"] = environ["wsgi.input"].read(length)
        seen["event_id"] = environ["revo_sdk.webhook"].event_id
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"view says hi"]

    middleware = WebhookMiddleware(view, StandIn(manager), pass_through=True)
    body = payload(delivery_id="pt-1")
    sig = signed(body)["X-Test-Signature"]
    env = {"CONTENT_TYPE": "application/json", "HTTP_X_TEST_SIGNATURE": sig}

    status, _, answer = call(middleware, "/webhooks/test", body, **env)
    assert (status, answer) == ("200 OK", b"view says hi")
    assert seen["body"] == body
    [row] = queue.list_events(db)
    assert row["id"] == seen["event_id"]

    seen.clear()
    status, _, answer = call(middleware, "/webhooks/test", body, **env)
    assert status.startswith("202")  # a duplicate does not run the view again
    assert seen == {}


def test_pass_through_failing_app_answers_202(
    manager: WebhookManager, db: Database
) -> None:
    """An app that raises or answers 4xx/5xx after the store still gets 202 sent."""

    def raising(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("view bug")

    def refusing(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"no"]

    for n, app in enumerate([raising, refusing]):
        middleware = WebhookMiddleware(app, StandIn(manager), pass_through=True)
        body = payload(delivery_id=f"fail-{n}")
        status, _, _ = call(
            middleware,
            "/webhooks/test",
            body,
            CONTENT_TYPE="application/json",
            HTTP_X_TEST_SIGNATURE=signed(body)["X-Test-Signature"],
        )
        assert status.startswith("202")
    assert len(queue.list_events(db)) == 2


def test_pass_through_other_methods_reach_app(manager: WebhookManager) -> None:
    """In pass-through mode a GET on the webhook path is the app's business."""
    middleware = WebhookMiddleware(downstream, StandIn(manager), pass_through=True)
    status, _, answer = call(middleware, "/webhooks/test", REQUEST_METHOD="GET")
    assert status == "200 OK"
    assert answer.startswith(b"GET /webhooks/test")


# -- ingest rate limit and counting -------------------------------------------


def test_ingest_rate_limit_is_429_per_integration(manager: WebhookManager) -> None:
    """Past the burst an integration gets 429 with Retry-After until tokens refill."""
    now = [100.0]
    middleware = WebhookMiddleware(
        downstream,
        StandIn(manager),
        ingest_rate=0.5,
        ingest_burst=2,
        clock=lambda: now[0],
    )

    def send() -> tuple[str, dict[str, str]]:
        body = payload()
        status, headers, _ = call(
            middleware,
            "/webhooks/test",
            body,
            CONTENT_TYPE="application/json",
            HTTP_X_TEST_SIGNATURE=signed(body)["X-Test-Signature"],
        )
        return status, headers

    assert [send()[0][:3] for _ in range(3)] == ["202", "202", "429"]
    status, headers = send()
    assert headers["Retry-After"] == "2"
    now[0] += 2.0
    assert send()[0].startswith("202")
    # Another integration name has its own bucket (here: 404, not 429).
    status, _, _ = call(middleware, "/webhooks/other", b"{}")
    assert status.startswith("404")


def test_middleware_rejections_are_counted(db: Database) -> None:
    """Rejections decided in the middleware reach the manager's observers."""
    from revo_sdk import WebhookRecord

    records: list[WebhookRecord] = []
    manager = WebhookManager(
        database=lambda: db, resolve=resolve, notify=records.append
    )
    middleware = WebhookMiddleware(downstream, StandIn(manager), max_body=10)

    call(middleware, "/webhooks/test", REQUEST_METHOD="GET")
    call(middleware, "/webhooks/test", b"x" * 20)
    call(middleware, "/webhooks/test", b"{}", CONTENT_LENGTH="x")

    assert [(r.stage, r.reason) for r in records] == [
        ("rejected", "method_not_allowed"),
        ("rejected", "too_large"),
        ("rejected", "invalid_content_length"),
    ]


def test_slack_retry_headers_stored_and_counted(db: Database) -> None:
    """X-Slack-Retry-Num/-Reason are kept with the delivery and counted."""
    events: list[tuple[str, str, str]] = []

    @dataclass
    class Metrics:
        def record_event(
            self, integration: str, kind: str, detail: str = "", value: float = 0
        ) -> None:
            events.append((integration, kind, detail))

    @dataclass
    class ClientLike:
        webhooks: WebhookManager
        metrics: Metrics

    manager = WebhookManager(database=lambda: db, resolve=resolve)
    middleware = WebhookMiddleware(downstream, ClientLike(manager, Metrics()))
    body = payload(delivery_id="retried")
    for number, reason in [("1", "http_timeout"), ("2", "Weird Reason!")]:
        call(
            middleware,
            "/webhooks/test",
            body,
            CONTENT_TYPE="application/json",
            HTTP_X_TEST_SIGNATURE=signed(body)["X-Test-Signature"],
            HTTP_X_SLACK_RETRY_NUM=number,
            HTTP_X_SLACK_RETRY_REASON=reason,
        )

    assert events == [
        ("test", "webhook_sender_retry", "http_timeout"),
        ("test", "webhook_sender_retry", "other"),
    ]
    [row] = queue.list_events(db)
    stored = queue.get_event(db, row["id"])
    assert stored is not None
    assert stored["headers"]["X-Slack-Retry-Num"] == "1"


def test_stream_read_error_is_400(app: WebhookMiddleware) -> None:
    """A connection reset while the body is read is a 400, not a 500."""

    class Resetting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise ConnectionResetError("peer went away")

    status, _, answer = call(
        app, "/webhooks/test", CONTENT_LENGTH="10", **{"wsgi.input": Resetting()}
    )
    assert status.startswith("400")
    assert json.loads(answer) == {"error": "incomplete_body"}


def test_slack_slow_handler_answered_before_it_finishes_retries_run_once(
    tmp_path: Path,
) -> None:
    """A Slack event whose handler is still busy is answered 2xx at once; the
    retries Slack sends meanwhile are 2xx too, and the handler runs once."""
    import time

    from revo_sdk import Client

    secret = "slack-slow"
    client = Client(
        [IntegrationConfig(name="slack", webhook_secrets=(secret,))],
        db_path=tmp_path / "slow.db",
        metrics=False,
    )
    started = threading.Event()
    release = threading.Event()
    runs: list[str] = []

    @client.webhooks.on("slack", "app_mention")
    def slow(delivery: Any) -> None:
        runs.append(delivery.delivery_id)
        started.set()
        release.wait(30)  # stands in for 5 s of work, ended by the test

    body = json.dumps(
        {"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}
    ).encode()
    httpd = make_server(
        "127.0.0.1",
        0,
        WebhookMiddleware(downstream, client),
        server_class=ThreadingServer,
        handler_class=QuietHandler,
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    client.webhooks.start(threads=2)
    try:
        address = ("127.0.0.1", httpd.server_address[1])
        statuses = []
        for retry in (None, "1", "2"):
            ts = str(int(time.time()))
            base = b"v0:" + ts.encode() + b":" + body
            headers = {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": "v0="
                + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest(),
            }
            if retry:
                headers["X-Slack-Retry-Num"] = retry
                headers["X-Slack-Retry-Reason"] = "http_timeout"
            statuses.append(
                request(address, "POST", "/webhooks/slack", body, headers)[0]
            )
            if retry is None:
                assert started.wait(10)  # the handler is running, not finished
        assert statuses == [202, 202, 202]
        assert not release.is_set()  # every answer came while it was busy
    finally:
        release.set()
        client.webhooks.stop()
        httpd.shutdown()
        httpd.server_close()
        client.close()
    assert runs == ["Ev1"]


def test_bad_ingest_rate_settings_refused(manager: WebhookManager) -> None:
    """A zero rate or an empty burst is a configuration error at start-up."""
    from revo_sdk import ConfigurationError

    for rate, burst in [(0.0, 10), (1.0, 0), (float("inf"), 10)]:
        with pytest.raises(ConfigurationError, match="ingest rate limit"):
            WebhookMiddleware(
                downstream, StandIn(manager), ingest_rate=rate, ingest_burst=burst
            )
