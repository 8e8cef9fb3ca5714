"""A client that has lived through every situation the monitoring reports.

Used by the Prometheus and dashboard tests: a real client with a GitHub
integration pointed at a scripted server on 127.0.0.1, real webhook
deliveries through the queue, health probes and alert evaluation.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from conftest import Upstream, json_answer, sleep_then

from revo_sdk import (
    BreakerPolicy,
    BulkheadPolicy,
    CachePolicy,
    CallError,
    Client,
    IntegrationConfig,
    LimiterPolicy,
    RetryPolicy,
    Timeouts,
    WebhookRejected,
)

TOKEN = "ghp_SuperSecretToken0123456789"
WEBHOOK_SECRET = "whsec-Very-Secret-Signing-Key"

#: The share of GitHub's core quota the scenario's quota headers leave.
REMAINING_RATIO = 0.05


def signed(
    body: dict[str, Any], delivery: str, secret: str = WEBHOOK_SECRET
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a GitHub ``push`` delivery signed with ``secret``."""
    raw = json.dumps(body).encode()
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={digest}",
    }
    return headers, raw


def make_client(upstream: Upstream, db_path: Path) -> Client:
    """A client with one ``github`` integration pointed at ``upstream``."""
    client = Client(
        db_path=db_path,
        webhook_options={
            "max_attempts": 2,
            "retry": RetryPolicy(base_delay=0.01, max_delay=0.02, jitter=False),
        },
    )
    client.register(
        IntegrationConfig(
            name="github",
            provider="github",
            base_url=upstream.url,
            token=TOKEN,
            webhook_secrets=(WEBHOOK_SECRET,),
            retry=RetryPolicy(base_delay=0.01, max_delay=0.02, max_attempts=3),
            breaker=BreakerPolicy(
                failure_threshold=2, recovery_timeout=60, minimum_calls=1
            ),
            limiter=LimiterPolicy(rate=1000, burst=1000),
            cache=CachePolicy(route_ttls=(("/cached/*", 600.0),)),
            timeouts=Timeouts(connect=2, read=2),
        )
    )
    # A second integration with no retry budget and one slot, to meet the
    # budget's refusals and the bulkhead's rejections for real.
    client.register(
        IntegrationConfig(
            name="gh_strict",
            provider="github",
            base_url=upstream.url,
            token=TOKEN,
            retry=RetryPolicy(
                base_delay=0.01, max_attempts=3, budget_ratio=0.0, budget_floor=0.0
            ),
            breaker=BreakerPolicy(enabled=False),
            limiter=LimiterPolicy(rate=1000, burst=1000),
            bulkhead=BulkheadPolicy(max_concurrent=1, max_wait=0.0),
            timeouts=Timeouts(connect=2, read=2),
        )
    )
    return client


def live_through_everything(client: Client, upstream: Upstream) -> None:
    """Drive ``client`` through calls, failures, webhooks, probes and alerts."""
    github = client.github
    upstream.script("GET", "/rate_limit", json_answer(200, {"resources": {}}))
    quota = {
        "x_ratelimit_limit": "5000",
        "x_ratelimit_remaining": str(int(5000 * REMAINING_RATIO)),
        "x_ratelimit_reset": str(int(time.time()) + 2),
        "x_ratelimit_resource": "core",
    }
    upstream.script("GET", "/repos/o/r", json_answer(200, {"id": 1}, **quota))
    upstream.script(
        "GET",
        "/limited",
        json_answer(429, {}, Retry_After="1"),
        json_answer(200, {"ok": True}),
    )
    upstream.script(
        "GET", "/budget", json_answer(503, {}), json_answer(200, {"ok": True})
    )
    upstream.script("GET", "/slow", sleep_then(0.5, json_answer(200, {})))
    upstream.script(
        "GET", "/flaky", json_answer(503, {}), json_answer(200, {"ok": True})
    )
    upstream.script("GET", "/cached/1", json_answer(200, {"id": 1}))
    upstream.script("GET", "/down", json_answer(503, {}))
    upstream.script(
        "GET",
        "/cached/etag",
        json_answer(200, {"v": 1}, ETag='"v1"', Cache_Control="max-age=0"),
        (304, {"ETag": '"v1"'}, b""),
    )
    upstream.script(
        "GET", "/cached/old", json_answer(200, {"v": 0}, Cache_Control="max-age=0")
    )

    assert client.monitor.check("github").ok
    assert github.get("/repos/o/r").status_code == 200
    assert github.get("/flaky").status_code == 200  # one retry
    # Rate limits: a 429 pauses the integration, and the retry waits it out.
    assert github.get("/limited").status_code == 200
    github.get("/cached/1")  # miss
    github.get("/cached/1")  # hit
    github.get("/cached/etag")  # stored, already stale
    github.get("/cached/etag")  # revalidated with a 304
    github.get("/cached/old")  # stored, already stale
    for _ in range(3):
        with contextlib.suppress(CallError):  # the breaker opening is the point
            github.get("/down")
    assert github.get("/down", fallback="cached answer") == "cached answer"
    assert not client.monitor.check("github").ok  # the breaker is open now
    assert github.get("/cached/old").stale  # stale-if-error while open

    # No retry budget: the 503 is not retried.
    strict = client.gh_strict
    with contextlib.suppress(CallError):
        strict.get("/budget")
    # One slot, taken by a slow call: a second call is turned away at once.
    slow = strict.submit("GET", "/slow")
    for _ in range(200):  # until the slow call holds the slot
        if strict.status()["bulkhead"]["in_flight"]:
            break
        time.sleep(0.01)
    with contextlib.suppress(CallError):
        strict.get("/slow")
    slow.result(10)

    calls = {"n": 0}

    @client.webhooks.on("github", "push")
    def handle(delivery: Any) -> None:
        calls["n"] += 1
        if b"always-fails" in delivery.body or calls["n"] == 1:
            raise RuntimeError("handler failed")

    hooks = client.webhooks
    hooks.receive("github", *signed({"n": 1}, "d-1"))
    hooks.receive("github", *signed({"n": 1}, "d-1"))  # duplicate
    hooks.receive("github", *signed({"n": 2, "x": "always-fails"}, "d-2"))
    with contextlib.suppress(WebhookRejected):  # a bad signature is the point
        hooks.receive("github", *signed({"n": 3}, "d-3", secret="wrong-secret"))
    for _ in range(100):  # the first delivery is retried once, then processed
        hooks.drain(timeout=5)
        counts = hooks.counts().get("github", {})
        if counts.get("done") == 1 and counts.get("dead") == 1:
            break
        time.sleep(0.02)
    hooks.receive("github", *signed({"n": 4}, "d-4"))  # left waiting

    client.monitor.evaluate()
    client.metrics.flush()
