"""Fixtures shared by the whole suite.

``upstream`` is a real HTTP server on 127.0.0.1 with scripted answers, for
integration tests of the outgoing pipeline. ``shared_fixtures`` points at the
providers' published webhook payloads beside the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

#: The providers' published payloads: ``../shared/fixtures`` beside the
#: repository, or wherever ``REVO_SHARED_FIXTURES`` points.
SHARED = Path(
    os.environ.get("REVO_SHARED_FIXTURES")
    or Path(__file__).resolve().parents[2] / "shared" / "fixtures"
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep every test away from the user's database and proxy settings."""
    monkeypatch.setenv("REVO_DB", str(tmp_path / "revo-test.db"))
    for var in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "REVO_SDK_PLUGINS",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def shared_fixtures() -> Path:
    """The folder of real provider payloads (skips when it is absent)."""
    if not SHARED.is_dir():
        pytest.skip(f"shared fixtures not found at {SHARED}; set REVO_SHARED_FIXTURES")
    return SHARED


@dataclass
class Seen:
    """One request the upstream server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


Answer = Any  # (status, headers, body) | "drop" | callable(Seen) -> Answer


@dataclass
class Upstream:
    """A scripted HTTP server. Queue answers per ``(method, path)``; the last
    answer of a queue repeats. Unscripted paths answer 404."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    scripts: dict[tuple[str, str], deque[Answer]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, method: str, path: str, *answers: Answer) -> None:
        with self.lock:
            self.scripts[(method.upper(), path)] = deque(answers)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self.lock:
            return [
                s
                for s in self.seen
                if (method is None or s.method == method)
                and (path is None or s.path == path)
            ]

    def next_answer(self, request: Seen) -> Answer:
        with self.lock:
            self.seen.append(request)
            queue = self.scripts.get((request.method, request.path.split("?")[0]))
            if not queue:
                return (404, {}, b'{"message": "Not Found"}')
            answer = queue.popleft() if len(queue) > 1 else queue[0]
        while callable(answer):
            answer = answer(request)
        return answer


def json_answer(
    status: int, body: Any, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """A scripted JSON answer; header names use ``_`` for ``-``."""
    fixed = {k.replace("_", "-"): v for k, v in headers.items()}
    return (
        status,
        {"Content-Type": "application/json", **fixed},
        json.dumps(body).encode(),
    )


def sleep_then(seconds: float, answer: Answer) -> Callable[[Seen], Answer]:
    """An answer given after ``seconds``."""

    def delayed(_: Seen) -> Answer:
        time.sleep(seconds)
        return answer

    return delayed


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A scripted HTTP server on an ephemeral 127.0.0.1 port."""
    with serve_upstream() as state:
        yield state


@contextlib.contextmanager
def serve_upstream() -> Iterator[Upstream]:
    """Run a scripted HTTP server on an ephemeral 127.0.0.1 port."""
    state = Upstream()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Seen(
                self.command,
                self.path,
                dict(self.headers.items()),
                body,
                time.monotonic(),
            )
            answer = state.next_answer(request)
            if answer == "drop":
                self.close_connection = True
                self.connection.close()
                return
            status, headers, payload = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
