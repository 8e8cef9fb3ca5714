"""The queue shared by real processes and threads on one SQLite file.

Each test starts child Python processes on a file in ``tmp_path`` and checks
the file afterwards from this process: no mocked storage anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from revo_sdk import Client, IntegrationConfig
from revo_sdk import _queue as queue
from revo_sdk._db import Database
from revo_sdk._webhooks import Delivery
from revo_sdk.contrib.wsgi import WebhookMiddleware

# -- a worker killed before a failure is written -----------------------------

KILLED_WORKER = textwrap.dedent(
    """
    import os, sys, threading, time
    from revo_sdk import IntegrationConfig, Provider
    from revo_sdk import _queue
    from revo_sdk._db import Database
    from revo_sdk._webhooks import WebhookManager

    watchdog = threading.Timer(60, os._exit, (3,))  # never outlive the test
    watchdog.daemon = True
    watchdog.start()
    db = Database(sys.argv[1])
    config = IntegrationConfig(name="q", allow_unsigned_webhooks=True)
    manager = WebhookManager(
        database=lambda: db, resolve=lambda n: (config, Provider()), lease=30
    )

    def blocked_fail(*args, **kwargs):
        # The handler of "a" raised; its failure is about to be written.
        os.write(1, b"failing\\n")  # one write: lines never interleave
        time.sleep(120)

    _queue.fail = blocked_fail

    @manager.on("q", "job")
    def handle(delivery):
        if delivery.delivery_id == "a":
            raise RuntimeError("a fails")

    manager.start(threads=2)
    os.write(1, b"started\\n")
    time.sleep(120)
    """
)


def _enqueue(db: Database, key: str, now: float) -> int:
    event_id, created = queue.enqueue(
        db,
        integration="q",
        event="job",
        delivery_id=key,
        dedup_key=key,
        headers={},
        body=b"{}",
        max_attempts=5,
        now=now,
    )
    assert created
    return event_id


def _row(db: Database, event_id: int) -> tuple[str, int, float | None]:
    [row] = db.query(
        "SELECT status, attempts, lease_until FROM webhook_events WHERE id = ?",
        (event_id,),
    )
    return row[0], row[1], row[2]


@pytest.mark.slow
def test_worker_killed_before_failure_written_keeps_attempt(tmp_path: Path) -> None:
    """ "b" stays done; "a" returns only after its lease, one attempt counted."""
    path = tmp_path / "q.db"
    script = tmp_path / "worker.py"
    script.write_text(KILLED_WORKER)
    db = Database(path)
    now = time.time()
    a = _enqueue(db, "a", now)
    b = _enqueue(db, "b", now + 0.001)

    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert sorted(lines) == ["failing", "started"]
        for _ in range(500):  # "b"'s ack rides on that worker's next claim
            if _row(db, b)[0] == "done":
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)

    db.close()
    db = Database(path)  # reopened: nothing is reset on start-up
    try:
        assert _row(db, b)[0] == "done"
        status, attempts, lease_until = _row(db, a)
        assert (status, attempts) == ("processing", 1)
        assert lease_until is not None

        assert queue.claim(db, limit=5, lease=30, now=lease_until - 0.001) == []
        [again] = queue.claim(db, limit=5, lease=30, now=lease_until)
        assert (again.id, again.delivery_id, again.attempts) == (a, "a", 2)
    finally:
        db.close()


# -- eight threads and a second process --------------------------------------

CYCLES = 500
THREADS = 8

CYCLER = textwrap.dedent(
    """
    import json, os, sys, threading, time
    from revo_sdk import _queue
    from revo_sdk._db import Database

    watchdog = threading.Timer(120, os._exit, (3,))
    watchdog.daemon = True
    watchdog.start()
    path, tag = sys.argv[1], sys.argv[2]
    threads, cycles = int(sys.argv[3]), int(sys.argv[4])
    db = Database(path)
    claimed, errors = [], []
    lock = threading.Lock()

    def run(n):
        mine, errs = [], []
        for i in range(cycles):
            key = f"{tag}-{n}-{i}"
            try:
                _queue.enqueue(db, integration="q", event="job", delivery_id=key,
                               dedup_key=key, headers={}, body=b"x" * 512,
                               max_attempts=3, now=time.time())
                now = time.time()
                for item in _queue.claim(db, limit=1, lease=3600, now=now):
                    mine.append([item.delivery_id, now, item.lease_until])
                    _queue.ack(db, item.id, now=time.time(), attempt=item.attempts)
            except Exception as exc:
                errs.append(repr(exc))
        with lock:
            claimed.extend(mine)
            errors.extend(errs)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps({"claimed": claimed, "errors": errors, "stats": _queue.stats()}))
    """
)


@pytest.mark.slow
def test_threads_and_second_process_share_file_without_losses(tmp_path: Path) -> None:
    """8 threads and a process: no lock error reaches callers, no id lost or doubled."""
    path = tmp_path / "shared.db"
    script = tmp_path / "cycler.py"
    script.write_text(CYCLER)
    Database(path).close()  # migrate once, before the race

    results: dict[str, dict[str, object]] = {}

    def run(tag: str, threads: int) -> None:
        out = subprocess.run(
            [sys.executable, str(script), str(path), tag, str(threads), str(CYCLES)],
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        results[tag] = json.loads(out.stdout)

    others = threading.Thread(target=run, args=("p2", 1))
    others.start()
    run("p1", THREADS)
    others.join(160)

    errors = [e for r in results.values() for e in r["errors"]]  # type: ignore[attr-defined]  # parsed JSON lists
    assert errors == []
    claims = [c for r in results.values() for c in r["claimed"]]  # type: ignore[attr-defined]  # parsed JSON lists
    ids = [c[0] for c in claims]
    assert len(ids) == len(set(ids)), "a message was handed to two lease holders"

    db = Database(path)
    try:
        leftover = queue.claim(db, limit=10_000, lease=60, now=time.time())
        expected = {f"p1-{n}-{i}" for n in range(THREADS) for i in range(CYCLES)}
        expected |= {f"p2-0-{i}" for i in range(CYCLES)}
        assert set(ids) | {c.delivery_id for c in leftover} == expected
        assert not set(ids) & {c.delivery_id for c in leftover}
        assert queue.counts(db)["q"].get("done", 0) == len(ids)
    finally:
        db.close()


# -- a slow Slack handler and Slack's retries --------------------------------

SLACK_SECRET = "slack-signing-secret"


def _slack_post(port: int, body: bytes, retry: int | None) -> int:
    timestamp = str(int(time.time()))
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(SLACK_SECRET.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/webhooks/slack", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass


@pytest.mark.slow
def test_slack_slow_handler_acked_first_and_retries_deduplicated(
    tmp_path: Path,
) -> None:
    """A 5 s handler: the POST and both retries get 2xx first; it runs once."""
    runs: list[str] = []
    started, release, finished = (threading.Event() for _ in range(3))
    client = Client(db_path=tmp_path / "slack.db", metrics=False)
    client.register(IntegrationConfig(name="slack", webhook_secrets=(SLACK_SECRET,)))

    @client.webhooks.on("slack", "app_mention")
    def slow(delivery: Delivery) -> None:
        runs.append(delivery.delivery_id)
        started.set()
        release.wait(5)  # "takes 5 s", cut short once the retries are in
        finished.set()

    app = WebhookMiddleware(_not_found, client, prefix="/webhooks")
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_Quiet
    )
    serving = threading.Thread(target=server.serve_forever, args=(0.05,))
    serving.start()
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T1",
            "event_id": "Ev0SLOW",
            "event_time": 1700000000,
            "event": {"type": "app_mention", "text": "<@U1> hi", "user": "U2"},
        }
    ).encode()
    try:
        client.webhooks.start(threads=2)
        port = server.server_address[1]
        answers = [(_slack_post(port, body, None), finished.is_set())]
        assert started.wait(5)
        for retry in (1, 2):
            answers.append((_slack_post(port, body, retry), finished.is_set()))
        release.set()
        assert finished.wait(10)
    finally:
        release.set()
        client.webhooks.stop()
        server.shutdown()
        server.server_close()
        serving.join(5)

    try:
        assert [status // 100 for status, _ in answers] == [2, 2, 2]
        assert [done for _, done in answers] == [False, False, False]
        assert runs == ["Ev0SLOW"]
        assert client.webhooks.counts() == {"slack": {"done": 1}}
    finally:
        client.close()
