"""``revo-sdk serve``: the standalone receiver, in-process and as a process."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from revo_sdk import Client, ConfigurationError, Delivery, IntegrationConfig
from revo_sdk import _queue as queue
from revo_sdk._serve import WebhookServer, load_config

SECRET = "serve-secret"


def github_post(
    address: tuple[str, int], delivery: str, body: bytes = b'{"ref":"main"}'
) -> tuple[int, bytes]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "7",
        "X-Hub-Signature-256": f"sha256={digest}",
    }
    return request(address, "POST", "/webhooks/github", body, headers)


def request(
    address: tuple[str, int],
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    c = Client(
        [IntegrationConfig(name="github", webhook_secrets=(SECRET,))],
        db_path=tmp_path / "serve.db",
        metrics=False,
    )
    yield c
    c.close()


def echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answers with the SCRIPT_NAME and PATH_INFO it was given."""
    text = f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [text]


def test_server_receives_runs_handlers_and_mounts_apps(client: Client) -> None:
    """A signed delivery is stored and handled; health and mounts answer."""
    handled = threading.Event()

    @client.webhooks.on("github", "push")
    def on_push(delivery: Delivery) -> None:
        handled.set()

    server = WebhookServer(
        client, port=0, threads=1, extra_apps={"/metrics": echo_app}, close_client=False
    )
    server.start()
    try:
        assert server.address[0] == "127.0.0.1"
        assert github_post(server.address, "d-1")[0] == 202
        assert handled.wait(10)
        assert request(server.address, "GET", "/healthz") == (200, b'{"ok": true}')
        assert request(server.address, "GET", "/metrics/x") == (200, b"/metrics|/x")
        assert request(server.address, "GET", "/other")[0] == 404
    finally:
        server.stop()
    [row] = queue.list_events(client.database)
    assert row["status"] == "done"


def test_monitor_app_mounted_when_module_exists(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """revo_sdk._monitor_app.make_app(client) is served under /_revo/."""
    module = types.ModuleType("revo_sdk._monitor_app")
    seen: list[Any] = []

    def make_app(given: Any) -> Any:
        seen.append(given)
        return echo_app

    module.make_app = make_app  # type: ignore[attr-defined]  # a stand-in module
    monkeypatch.setitem(sys.modules, "revo_sdk._monitor_app", module)

    server = WebhookServer(client, port=0, threads=0, close_client=False)
    server.start()
    try:
        answer = request(server.address, "GET", "/_revo/status")
    finally:
        server.stop()
    assert answer == (200, b"/_revo|/status")
    assert seen == [client]


def test_malformed_http_is_never_5xx(client: Client) -> None:
    """An odd HTTP version or method from a sender is a 4xx, not 501/505."""
    server = WebhookServer(client, port=0, threads=0, close_client=False)
    server.start()
    try:
        for line in [
            b"POST /webhooks/github HTTP/2.0",
            b"BREW /webhooks/github HTTP/1.1",
        ]:
            with socket.create_connection(server.address, timeout=10) as sock:
                sock.sendall(line + b"\r\nHost: x\r\n\r\n")
                answer = sock.recv(4096)
            # An unparsable request line is answered without a status line
            # (HTTP/0.9 style), with the code in the body.
            code = re.search(rb"^HTTP/1\.\d (\d{3})|Error code: (\d{3})", answer)
            assert code is not None, answer
            assert (code.group(1) or code.group(2)).startswith(b"4"), line
    finally:
        server.stop()


def test_load_config_json_and_unknown_field(tmp_path: Path) -> None:
    """A JSON config file gives integrations; unknown fields are refused."""
    good = tmp_path / "revo.json"
    good.write_text(
        json.dumps(
            {
                "db": "x.db",
                "integrations": {
                    "github": {"webhook_secrets": ["a", "b"]},
                    "hooks": {"provider": "jira", "allow_unsigned_webhooks": True},
                },
            }
        )
    )
    configs, settings = load_config(good)
    assert [(c.name, c.webhook_secrets) for c in configs] == [
        ("github", ("a", "b")),
        ("hooks", ()),
    ]
    assert settings == {"db": "x.db"}

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"integrations": {"github": {"secret": "typo"}}}))
    with pytest.raises(ConfigurationError, match="unknown fields"):
        load_config(bad)

    single = tmp_path / "single.json"
    single.write_text(json.dumps({"integrations": {"gh": {"webhook_secrets": "s"}}}))
    assert load_config(single)[0][0].webhook_secrets == ("s",)

    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"integrations": {"gh": {"webhook_secrets": [1]}}}))
    with pytest.raises(ConfigurationError, match="list of strings"):
        load_config(odd)


@pytest.mark.slow
def test_serve_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The CLI process receives, runs handlers, and exits 0 on SIGTERM."""
    (tmp_path / "myhooks.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path

            def register(client):
                @client.webhooks.on("github", "push")
                def on_push(delivery):
                    out = Path(__file__).with_name("handled.txt")
                    out.write_text(delivery.delivery_id)
            """
        )
    )
    config = tmp_path / "revo.json"
    config.write_text(
        json.dumps({"integrations": {"github": {"webhook_secrets": [SECRET]}}})
    )
    db = tmp_path / "cli.db"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from revo_sdk.cli import main; main()",
            "serve",
            "--port",
            "0",
            "--config",
            str(config),
            "--db",
            str(db),
            "--threads",
            "1",
            "--handlers",
            "myhooks:register",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "revo-sdk serve: http://127.0.0.1:PORT..."
        address = line.split("http://", 1)[1].split("/", 1)[0]
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert github_post((host, int(port)), "cli-1")[0] == 202
        for _ in range(100):  # bounded: the worker writes the file quickly
            if (tmp_path / "handled.txt").exists():
                break
            threading.Event().wait(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert (tmp_path / "handled.txt").read_text() == "cli-1"


def test_stop_returns_while_stalled_senders_hold_every_slot(client: Client) -> None:
    """Senders that never finish their request cannot keep the server from stopping."""
    server = WebhookServer(client, port=0, threads=0, max_connections=2)
    server.start()
    host, port = server.address
    stalled = []
    try:
        for _ in range(3):  # one more than the slots: the third waits in accept
            conn = socket.create_connection((host, port), timeout=5)
            conn.sendall(b"POST /webhooks/github HTTP/1.1\r\nContent-Length: 100\r\n")
            stalled.append(conn)
        stopper = threading.Thread(target=server.stop, kwargs={"timeout": 5})
        stopper.start()
        stopper.join(30)  # a liveness bound, not a measurement
        assert not stopper.is_alive()
    finally:
        for conn in stalled:
            conn.close()
