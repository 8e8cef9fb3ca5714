"""Webhook intake: what each layer in front of the queue costs, side by side.

Run: ``python benchmarks/bench_intake.py [-n 2000] [--size 10240]``

One run measures, with signed 10 KB GitHub deliveries (each a new delivery
id, so every one is committed to SQLite with its fsync):

- ``verify``: the signature check alone (HMAC-SHA256 over the body);
- ``receive``: ``client.webhooks.receive()`` (verify, parse, durable store);
- ``middleware``: the same through ``WebhookMiddleware``, called in-process
  with a WSGI environ (adds body reading and header collection);
- ``http 1`` / ``http 8``: over HTTP to ``revo-sdk serve``'s server on
  127.0.0.1, from one client thread and from eight.

Ratios are against ``receive``. The machine is noisy: run it twice.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import io
import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from revo_sdk import Client, IntegrationConfig
from revo_sdk._serve import WebhookServer
from revo_sdk.contrib.wsgi import WebhookMiddleware

SECRET = "bench-secret"  # noqa: S105  # signs local test deliveries only


def delivery(n: int, size: int, tag: str) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"ref": "refs/heads/main", "pad": "x" * size}).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": f"{tag}-{n}",
        "X-GitHub-Hook-ID": "1",
        "X-Hub-Signature-256": f"sha256={digest}",
    }
    return headers, body


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed(count: int, func: Callable[[int], Any]) -> float:
    started = time.perf_counter()
    for n in range(count):
        func(n)
    return rate(count, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="deliveries per row")
    parser.add_argument("--size", type=int, default=10 * 1024, help="body bytes")
    args = parser.parse_args()
    count, size = args.n, args.size

    with tempfile.TemporaryDirectory() as tmp:
        client = Client(
            [IntegrationConfig(name="github", webhook_secrets=(SECRET,))],
            db_path=Path(tmp) / "intake.db",
            metrics=False,
        )
        provider = client.providers["github"]
        rows: list[tuple[str, float]] = []

        headers, body = delivery(0, size, "v")
        secrets = (SECRET,)
        rows.append(
            (
                "verify",
                timed(
                    count * 5,
                    lambda n: provider.verify_webhook(headers, body, secrets, now=0.0),
                ),
            )
        )

        prepared = [delivery(n, size, "r") for n in range(count)]
        rows.append(
            (
                "receive",
                timed(
                    count,
                    lambda n: client.webhooks.receive("github", *prepared[n]),
                ),
            )
        )

        middleware = WebhookMiddleware(lambda e, s: [], client)
        environs = []
        for n in range(count):
            h, b = delivery(n, size, "m")
            env = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/webhooks/github",
                "CONTENT_TYPE": h.pop("Content-Type"),
                "CONTENT_LENGTH": str(len(b)),
                "wsgi.input": io.BytesIO(b),
            }
            env.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in h.items()})
            environs.append(env)
        rows.append(
            (
                "middleware",
                timed(count, lambda n: middleware(environs[n], lambda *a: None)),
            )
        )

        server = WebhookServer(client, port=0, threads=0, close_client=False)
        server.start()
        try:
            address = server.address

            def post(item: tuple[dict[str, str], bytes]) -> int:
                conn = http.client.HTTPConnection(*address, timeout=30)
                try:
                    conn.request("POST", "/webhooks/github", item[1], item[0])
                    response = conn.getresponse()
                    response.read()
                    return response.status
                finally:
                    conn.close()

            for threads in (1, 8):
                items = [delivery(n, size, f"h{threads}") for n in range(count)]
                started = time.perf_counter()
                with ThreadPoolExecutor(threads) as pool:
                    statuses = list(pool.map(post, items))
                elapsed = time.perf_counter() - started
                assert all(s == 202 for s in statuses), set(statuses)
                rows.append((f"http {threads}", rate(count, elapsed)))
        finally:
            server.stop()

    base = dict(rows)["receive"]
    print(f"webhook intake, {count} deliveries of {size} bytes each")
    print(f"{'row':<12}{'per second':>14}{'vs receive':>12}")
    for name, value in rows:
        print(f"{name:<12}{value:>14,.0f}{value / base:>12.2f}")


if __name__ == "__main__":
    main()
