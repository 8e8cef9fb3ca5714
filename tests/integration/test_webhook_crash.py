"""Kill -9 the receiving process mid-stream: no acknowledged delivery is lost.

A child process serves the WSGI middleware with wsgiref on 127.0.0.1. The
test streams signed deliveries at it from several threads and sends SIGKILL
the moment a randomly chosen 202 arrives, while other requests are still in
flight. The same SQLite file, opened afterwards by this process, must hold
every delivery that was answered 2xx. The file is reused across trials, so
each new child also starts on a queue a killed predecessor left behind.
The next child is started (and imports everything) while the current trial
runs, and opens the file only when told to, so start-up time does not
multiply by the number of trials.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from revo_sdk import IntegrationConfig, Provider, VerifyResult, WebhookEvent
from revo_sdk import _queue as queue
from revo_sdk._db import Database
from revo_sdk._webhooks import WebhookManager

SECRET = "crash-secret"
TRIALS = 50
SENDERS = 4
MAX_PER_SENDER = 60  # bounds each trial even if the kill never triggers
TIME_BUDGET = 150.0  # seconds for all trials together (a bound, not a target)

CHILD = textwrap.dedent(
    """
    import hashlib, hmac, json, os, socketserver, sys, threading
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from revo_sdk import IntegrationConfig, Provider, VerifyResult, WebhookEvent
    from revo_sdk._db import Database
    from revo_sdk._webhooks import WebhookManager
    from revo_sdk.contrib.wsgi import WebhookMiddleware

    db_path, secret = sys.argv[1], sys.argv[2]
    # A watchdog: never outlive a test that forgot us.
    watchdog = threading.Timer(90, os._exit, (3,))
    watchdog.daemon = True
    watchdog.start()
    if not sys.stdin.readline():  # wait for our turn; EOF: not needed
        os._exit(0)

    class SignedProvider(Provider):
        name = "test"

        def verify_webhook(self, headers, body, secrets, *, now):
            given = headers.get("X-Test-Signature", "")
            expected = hmac.new(secrets[0].encode(), body, hashlib.sha256)
            return VerifyResult(
                hmac.compare_digest(expected.hexdigest(), given), "mismatch"
            )

        def parse_webhook(self, headers, body, content_type):
            data = json.loads(body)
            return WebhookEvent(data["type"], data["id"], data["id"], data)

    config = IntegrationConfig(name="test", webhook_secrets=(secret,))
    db = Database(db_path)
    manager = WebhookManager(
        database=lambda: db, resolve=lambda name: (config, SignedProvider())
    )
    manager.on("test")(lambda delivery: None)
    manager.start(threads=1)  # claims and acks compete with intake

    class StandIn:
        webhooks = manager

    def not_found(environ, start_response):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no"]

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    app = WebhookMiddleware(not_found, StandIn())
    httpd = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=Quiet)
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever(poll_interval=0.05)
    """
)


def spawn_child(script: Path, db_path: Path) -> subprocess.Popen[bytes]:
    """A child that imports everything, then waits for :func:`start_child`."""
    return subprocess.Popen(
        [sys.executable, str(script), str(db_path), SECRET],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def start_child(proc: subprocess.Popen[bytes]) -> tuple[subprocess.Popen[bytes], int]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=30):
            proc.kill()
            proc.wait(10)
            pytest.fail("child server did not report its port within 30 s")
    line = proc.stdout.readline()
    if not line.strip():
        proc.wait(10)
        pytest.fail(f"child server exited with {proc.returncode}")
    return proc, int(line)


def post(port: int, delivery_id: str) -> int:
    body = json.dumps({"id": delivery_id, "type": "push", "pad": "x" * 200}).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            "/webhooks/test",
            body=body,
            headers={"X-Test-Signature": digest, "Content-Type": "application/json"},
        )
        return conn.getresponse().status
    finally:
        conn.close()


def run_trial(
    child: subprocess.Popen[bytes], trial: int, kill_after: int
) -> tuple[list[str], bool]:
    """Stream deliveries until the ``kill_after``-th 202, then SIGKILL the child."""
    proc, port = start_child(child)
    acked: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def sender(number: int) -> None:
        for n in range(MAX_PER_SENDER):
            if killed.is_set():
                return
            delivery_id = f"t{trial}-s{number}-{n}"
            try:
                status = post(port, delivery_id)
            except (OSError, http.client.HTTPException):
                return  # the child is gone; this delivery was never acknowledged
            if not 200 <= status < 300:
                continue
            with lock:
                acked.append(delivery_id)
                due = len(acked) >= kill_after and not killed.is_set()
                if due:
                    killed.set()
            if due:
                proc.send_signal(signal.SIGKILL)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    killed_by_us = killed.is_set()
    proc.kill()  # no-op if already dead; bounds the trial either way
    proc.wait(10)
    return acked, killed_by_us


def stored_ids(db_path: Path) -> set[str]:
    db = Database(db_path)
    try:
        [(check,)] = db.query("PRAGMA integrity_check")
        assert check == "ok"
        rows = db.query("SELECT delivery_id FROM webhook_events")
        return {row[0] for row in rows}
    finally:
        db.close()


@pytest.mark.slow
def test_sigkill_after_202_never_loses_acknowledged_delivery(tmp_path: Path) -> None:
    """Across many kill -9 moments, every 2xx'd delivery is in the database."""
    script = tmp_path / "child_server.py"
    script.write_text(CHILD)
    db_path = tmp_path / "crash.db"
    rng = random.Random(20240611)
    deadline = time.monotonic() + TIME_BUDGET
    all_acked: set[str] = set()
    kills = 0
    trials = 0

    child = spawn_child(script, db_path)
    try:
        while trials < TRIALS and time.monotonic() < deadline:
            current, child = child, spawn_child(script, db_path)
            acked, killed = run_trial(current, trials, rng.randint(1, 25))
            trials += 1
            kills += killed
            missing = set(acked) - stored_ids(db_path)
            assert not missing, f"trial {trials}: 2xx'd but lost: {sorted(missing)}"
            all_acked.update(acked)
    finally:
        child.kill()
        child.wait(10)

    assert trials >= TRIALS
    assert kills >= TRIALS - 5
    assert all_acked <= stored_ids(db_path)

    # Whatever the killed workers held is reclaimable once the leases end.
    db = Database(db_path)
    later = time.time() + 3600
    config = IntegrationConfig(name="test", webhook_secrets=(SECRET,))
    manager = WebhookManager(
        database=lambda: db,
        resolve=lambda name: (config, _NoParse()),
        clock=lambda: later,
    )
    manager.on("test")(lambda delivery: None)
    manager.drain(timeout=60)
    assert set(queue.counts(db)["test"]) == {"done"}
    db.close()


class _NoParse(Provider):
    """Payloads are not needed for the final drain; generic decoding is used."""

    name = "test"

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: tuple[str, ...],
        *,
        now: float,
    ) -> VerifyResult:
        return VerifyResult(False, "mismatch")

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> WebhookEvent:
        raise ValueError("not used")
