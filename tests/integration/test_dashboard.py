"""The monitoring WSGI app over HTTP, and its page in a real headless Chromium."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from conftest import Upstream
from monitor_scenario import TOKEN, WEBHOOK_SECRET, live_through_everything, make_client

from revo_sdk import Client, IntegrationConfig
from revo_sdk._db import Database
from revo_sdk._monitor_app import DashboardApp, make_app, make_db_app

CHROMIUM = "/usr/bin/chromium"
SLACK_TOKEN = "xoxb-Another-Secret-Slack-Token"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


class _ThreadedServer(WSGIServer):
    daemon_threads = True


@pytest.fixture
def served_client(upstream: Upstream, tmp_path: Path) -> Iterator[tuple[Client, str]]:
    """A client that lived through the monitoring scenario, with its dashboard
    served on 127.0.0.1; yields the client and the dashboard URL."""
    client = make_client(upstream, tmp_path / "app.db")
    server = None
    thread = None
    try:
        client.register(
            IntegrationConfig(
                name="slack", provider="slack", base_url=upstream.url, token=SLACK_TOKEN
            )
        )
        live_through_everything(client, upstream)
        server = make_server(
            "127.0.0.1", 0, make_app(client), _ThreadedServer, handler_class=_Quiet
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield client, f"http://127.0.0.1:{server.server_port}"
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(10)
        client.close()


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one request."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} not found: apt-get install -y chromium to run the browser test",
)
def test_dashboard_page_in_headless_chromium(
    served_client: tuple[Client, str], tmp_path: Path
) -> None:
    """Chromium renders every integration, the charts and no configured secret."""
    _, url = served_client
    profile = tmp_path / "chromium-profile"
    completed = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            url + "/",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    dom = completed.stdout.decode()

    assert completed.returncode == 0, completed.stderr.decode()[-2000:]
    assert "<h1>revo-sdk status</h1>" in dom
    assert 'id="integration-github"' in dom
    assert 'id="integration-slack"' in dom
    assert "unhealthy" in dom  # github's breaker is open
    assert "<svg" in dom
    assert "<polyline" in dom
    assert "webhook processing" in dom
    assert "breaker_open" in dom
    for secret in (TOKEN, WEBHOOK_SECRET, SLACK_TOKEN):
        assert secret not in dom


def test_dashboard_json_and_metrics_endpoints(
    served_client: tuple[Client, str],
) -> None:
    """status.json lists each integration; /metrics is Prometheus text."""
    _, url = served_client

    status, _, body = fetch(url + "/status.json")
    data = json.loads(body)
    metrics_status, headers, metrics = fetch(url + "/metrics")
    history = json.loads(fetch(url + "/history.json?minutes=5")[2])

    assert status == 200
    assert [r["integration"] for r in data["integrations"]] == [
        "gh_strict",
        "github",
        "slack",
    ]
    assert {lv["name"] for lv in data["service_levels"]} >= {"integration success rate"}
    assert metrics_status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"revo_client_requests_total" in metrics
    assert sum(p["calls"] for p in history["series"]["github"]) >= 5
    for secret in (TOKEN, WEBHOOK_SECRET, SLACK_TOKEN):
        assert secret.encode() not in body + metrics


def test_dashboard_unknown_path_and_method(served_client: tuple[Client, str]) -> None:
    """Unknown paths are 404, writes are 405, HEAD has no body."""
    _, url = served_client

    assert fetch(url + "/nope")[0] == 404
    assert fetch(url + "/", method="POST")[0] == 405
    status, headers, body = fetch(url + "/status.json", method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) > 0


def test_dashboard_scrubs_configured_secrets_from_any_field(tmp_path: Path) -> None:
    """A secret that reached a shown field is replaced by [redacted]."""
    db = Database(tmp_path / "d.db")
    secret = "tok-that-leaked-1234"
    app = DashboardApp(
        lambda: db,
        live=lambda: {"github": {"breaker": {"state": secret}}},
        secrets=lambda: [secret],
    )
    out: list[str] = []

    body = b"".join(app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, _start(out)))

    assert out == ["200 OK"]
    assert secret.encode() not in body
    assert b"[redacted]" in body
    db.close()


def test_dashboard_from_a_database_file(tmp_path: Path) -> None:
    """make_db_app serves an empty database without a client."""
    Database(tmp_path / "e.db").close()
    app = make_db_app(tmp_path / "e.db")
    out: list[str] = []

    body = b"".join(app({"PATH_INFO": "", "REQUEST_METHOD": "GET"}, _start(out)))

    assert out == ["200 OK"]
    assert b"no integrations yet" in body


def _start(out: list[str]) -> Any:
    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        out.append(status)

    return start_response
