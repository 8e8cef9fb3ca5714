"""``revo-sdk bench``: the whole system, end to end, against a local emulator.

One run goes through four phases, all on ``127.0.0.1``:

1. **Calls under faults.** A :class:`~revo_sdk.Client` with every layer on
   (retries with short delays, breaker, limiter, cache, bulkhead) makes
   ``requests`` calls from ``threads`` threads against the emulator (see
   :mod:`revo_sdk._bench.emulator`), which misbehaves at ``fault_rate``. The
   mix holds cached and uncached GETs, POSTs that must not be resent, and
   Slack and Jira calls.
2. **Overhead.** With faults off, the same calls are made once with plain
   ``urllib3`` and once through a second client, the response cache bypassed
   so both send every request; the report gives both request rates, their
   ratio and the client-side CPU time per call.
3. **Webhooks.** Payloads (the samples shipped in ``payloads/`` or every
   ``*.json`` under a folder) are signed as each provider signs them and
   posted over HTTP to a ``wsgiref`` server running
   :class:`~revo_sdk.contrib.wsgi.WebhookMiddleware`, with some exact
   redeliveries and some deliveries signed with a wrong secret.
4. **Processing.** Worker threads run the handlers registered with
   ``client.webhooks.on``; a few deliveries fail once on purpose so the
   retry path runs. The SQLite file is then read directly to check that
   every accepted delivery is stored and processed, and that no badly signed
   one was stored.

:func:`run_bench` returns the process exit code: 0 when every accepted
webhook is stored and processed and every bad signature was refused, 1
otherwise, 2 when the run could not be set up.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import json as jsonlib
import logging
import random
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, NamedTuple
from urllib.parse import urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import click
import urllib3

from .._client import Client
from .._config import (
    BreakerPolicy,
    BulkheadPolicy,
    IntegrationConfig,
    LimiterPolicy,
    RetryPolicy,
)
from .._exceptions import RevoError
from .._webhooks import Delivery as QueuedDelivery
from .emulator import EmulatorProcess

log = logging.getLogger(__name__)

PROVIDERS = ("github", "slack", "jira")

#: The samples shipped with the package.
SHIPPED_PAYLOADS = Path(__file__).with_name("payloads")

#: Longest a phase of calls may run before the rest of its calls are skipped.
PHASE_TIMEOUT = 180.0

#: Longest the workers get to process the stored webhooks.
PROCESS_TIMEOUT = 60.0

#: Calls made by each client before the overhead measurement starts.
WARMUP_CALLS = 200

#: Most payload files read from a ``--payloads`` folder.
MAX_PAYLOAD_FILES = 5000

#: During the fault phase one service goes down for a moment, long enough
#: for its circuit breaker to open, let a trial through and close again:
#: (service, seconds after the phase starts, seconds down).
OUTAGE = ("jira", 0.5, 1.5)

#: Share of webhook deliveries whose handler fails on its first attempt.
HANDLER_FAILURE_SHARE = 0.04

_INTERACTIVE_TYPES = frozenset(
    {
        "block_actions",
        "block_suggestion",
        "dialog_submission",
        "interactive_message",
        "message_action",
        "shortcut",
        "view_closed",
        "view_submission",
    }
)


# -- the call mix ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Op:
    """One outgoing call of the benchmark mix."""

    integration: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: Any = None  # sent as JSON


def build_ops(count: int, rng: random.Random) -> list[Op]:
    """``count`` calls in a fixed mix, drawn from ``rng``.

    About 40 % are GETs the providers cache (repository metadata, Slack
    users, Jira projects), 40 % uncached GETs and 20 % POSTs that are not
    idempotent, spread over the three providers.
    """
    makers: list[tuple[float, Callable[[random.Random], Op]]] = [
        (25, _github_repo),
        (15, _github_issues),
        (10, _github_new_issue),
        (5, lambda r: Op("github", "GET", "/rate_limit")),
        (10, _slack_post),
        (10, lambda r: Op("slack", "GET", "/users.list", (("limit", "200"),))),
        (5, lambda r: Op("slack", "GET", "/api.test")),
        (10, lambda r: Op("jira", "GET", f"/rest/api/2/issue/OPS-{r.randint(1, 400)}")),
        (5, lambda r: Op("jira", "GET", "/rest/api/2/project")),
        (5, lambda r: Op("jira", "GET", "/rest/api/2/serverInfo")),
    ]
    weights = [w for w, _ in makers]
    chosen = rng.choices([m for _, m in makers], weights=weights, k=count)
    return [make(rng) for make in chosen]


def _github_repo(rng: random.Random) -> Op:
    return Op("github", "GET", f"/repos/northwind-labs/service-{rng.randint(1, 16)}")


def _github_issues(rng: random.Random) -> Op:
    page = str(rng.randint(1, 5))
    return Op(
        "github", "GET", "/repos/northwind-labs/ledger-sync/issues", (("page", page),)
    )


def _github_new_issue(rng: random.Random) -> Op:
    body = {
        "title": f"Reconciliation drift on store {rng.randint(100, 999)}",
        "body": "Opened by revo-sdk bench.",
        "labels": ["bench"],
    }
    return Op("github", "POST", "/repos/northwind-labs/ledger-sync/issues", body=body)


def _slack_post(rng: random.Random) -> Op:
    body = {"channel": "C05FINOPS", "text": f"Run {rng.randint(1, 10**6)} finished"}
    return Op("slack", "POST", "/chat.postMessage", body=body)


# -- running calls from threads ------------------------------------------------


@dataclass(slots=True)
class CallResult:
    """What one call gave: success, whether it came from the cache, error name."""

    ok: bool
    cached: bool = False
    error: str = ""


@dataclass
class PhaseResult:
    """Measurements of one phase of calls."""

    name: str
    planned: int
    elapsed: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    succeeded: int = 0
    cached: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        done = self.completed
        return {
            "requests": self.planned,
            "completed": done,
            "elapsed_s": round(self.elapsed, 3),
            "throughput_rps": round(self.rate, 1),
            "latency_ms": {
                "mean": _ms(sum(ordered) / done) if done else None,
                "p50": _ms(percentile(ordered, 50)),
                "p95": _ms(percentile(ordered, 95)),
                "p99": _ms(percentile(ordered, 99)),
            },
            "succeeded": self.succeeded,
            "failed": done - self.succeeded,
            "success_rate": round(self.succeeded / done, 4) if done else None,
            "cache_hits": self.cached,
            "cache_hit_rate": round(self.cached / done, 4) if done else None,
            "cpu_us_per_call": round(self.cpu / done * 1e6, 1) if done else None,
            "errors": dict(self.errors.most_common()),
        }


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of already sorted values."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def run_phase(
    name: str,
    ops: Sequence[Op],
    threads: int,
    call: Callable[[Op], CallResult],
    progress: _Progress,
) -> PhaseResult:
    """Make every call in ``ops`` from ``threads`` threads, measuring each.

    Each thread takes every ``threads``-th call. A phase stops issuing calls
    after :data:`PHASE_TIMEOUT` seconds; the calls it skipped are missing
    from ``completed``.
    """
    result = PhaseResult(name, len(ops))
    slices = [ops[n::threads] for n in range(threads)]
    done = [0] * threads
    parts: list[PhaseResult] = [PhaseResult(name, len(s)) for s in slices]
    deadline = time.monotonic() + PHASE_TIMEOUT

    def work(index: int) -> None:
        part = parts[index]
        for op in slices[index]:
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                outcome = call(op)
            except Exception as exc:  # every failure is counted, never fatal
                outcome = CallResult(False, error=type(exc).__name__)
            part.latencies.append(time.perf_counter() - started)
            if outcome.ok:
                part.succeeded += 1
            else:
                part.errors[outcome.error or "failed"] += 1
            if outcome.cached:
                part.cached += 1
            done[index] += 1

    workers = [
        threading.Thread(target=work, args=(n,), name=f"bench-{name}-{n}", daemon=True)
        for n in range(threads)
    ]
    cpu_started = time.process_time()
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    progress.follow(name, len(ops), lambda: sum(done), workers, deadline + 30)
    result.elapsed = time.perf_counter() - started
    result.cpu = time.process_time() - cpu_started
    for part in parts:
        result.latencies.extend(part.latencies)
        result.succeeded += part.succeeded
        result.cached += part.cached
        result.errors.update(part.errors)
    return result


class _Progress:
    """A progress bar on stderr, or nothing when it is not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def follow(
        self,
        label: str,
        total: int,
        count: Callable[[], int],
        workers: Sequence[threading.Thread],
        until: float,
    ) -> None:
        """Wait for ``workers`` (at most until monotonic ``until``), showing
        ``count()`` out of ``total``."""
        bar_cm: Any = (
            click.progressbar(length=total, label=f"{label:<18}", file=sys.stderr)
            if self.enabled
            else contextlib.nullcontext()
        )
        shown = 0
        with bar_cm as bar:
            for worker in workers:
                while worker.is_alive() and time.monotonic() < until:
                    worker.join(0.1)
                    if bar is not None:
                        now = count()
                        bar.update(now - shown)
                        shown = now
            if bar is not None:
                bar.update(count() - shown)


# -- clients ---------------------------------------------------------------------


def _integration_configs(
    base_url: str, *, threads: int, webhook_secrets: dict[str, str]
) -> list[IntegrationConfig]:
    # Short delays keep a run under half a minute; a server's Retry-After
    # still wins over them (the emulator asks for at most 1 s).
    retry = RetryPolicy(max_attempts=4, base_delay=0.02, max_delay=1.0, deadline=15.0)
    breaker = BreakerPolicy(
        failure_threshold=5, recovery_timeout=1.0, half_open_max_calls=2
    )
    # Generous on purpose: the bench measures throughput, not the quota.
    limiter = LimiterPolicy(rate=20_000.0, burst=2_000, max_wait=10.0)
    bulkhead = BulkheadPolicy(
        max_concurrent=threads, max_wait=10.0, max_queue=threads * 4
    )
    bases = {"github": base_url, "slack": base_url + "/api", "jira": base_url}
    return [
        IntegrationConfig(
            name=name,
            base_url=bases[name],
            token=f"bench-{name}-token",
            webhook_secrets=(webhook_secrets[name],),
            retry=retry,
            breaker=breaker,
            limiter=limiter,
            bulkhead=bulkhead,
        )
        for name in PROVIDERS
    ]


def _pipeline_call(client: Client, *, cache: bool) -> Callable[[Op], CallResult]:
    providers = {name: client.integration(name) for name in PROVIDERS}
    classify = {name: client.providers[name].classify for name in PROVIDERS}

    def call(op: Op) -> CallResult:
        try:
            response = providers[op.integration].request(
                op.method, op.path, params=op.params or None, json=op.body, cache=cache
            )
        except Exception as exc:
            return CallResult(False, error=type(exc).__name__)
        cached = bool(getattr(response, "from_cache", False))
        outcome = classify[op.integration](
            response.status_code, response.headers, response.content, path=op.path
        )
        if outcome.kind == "ok":
            return CallResult(True, cached)
        label = f"http_{response.status_code}"
        if outcome.reason and outcome.reason != label:
            label += f" {outcome.reason}"
        return CallResult(False, cached, label)

    return call


def _raw_call(
    client: Client, base_url: str, threads: int
) -> tuple[Callable[[Op], CallResult], urllib3.PoolManager]:
    """The same calls with a bare urllib3 pool and the same headers."""
    pool = urllib3.PoolManager(
        maxsize=threads,
        block=False,
        retries=False,
        timeout=urllib3.Timeout(connect=10.0, read=30.0),
    )
    headers: dict[str, dict[str, str]] = {}
    prefix: dict[str, str] = {}
    for name in PROVIDERS:
        config = client.integration(name).config
        provider = client.providers[name]
        headers[name] = {
            "User-Agent": "revo-sdk-bench",
            **provider.default_headers(config),
            **provider.auth_headers(config),
        }
        prefix[name] = (config.base_url or base_url).rstrip("/")

    def call(op: Op) -> CallResult:
        url = prefix[op.integration] + op.path
        if op.params:
            url += "?" + urlencode(op.params)
        sent = headers[op.integration]
        body = None
        if op.body is not None:
            body = jsonlib.dumps(op.body, separators=(",", ":")).encode()
            sent = {**sent, "Content-Type": "application/json"}
        response = pool.request(op.method, url, body=body, headers=sent)
        data = response.data
        return CallResult(response.status < 400 and b'"ok":false' not in data[:64])

    return call, pool


def _new_client(
    base_url: str,
    db_path: Path,
    *,
    threads: int,
    webhook_secrets: dict[str, str],
) -> Client:
    client = Client(
        db_path=db_path,
        webhook_options={
            "max_attempts": 3,
            "retry": RetryPolicy(
                strategy="fixed", base_delay=0.05, max_delay=0.05, jitter=False
            ),
            "poll_interval": 0.05,
        },
    )
    try:
        for config in _integration_configs(
            base_url, threads=threads, webhook_secrets=webhook_secrets
        ):
            client.register(config)
    except BaseException:
        client.close()
        raise
    return client


def _pipeline_figures(client: Client) -> dict[str, Any]:
    """Retries, breaker changes, rate-limit waits... from the client's metrics."""
    snapshot: dict[str, dict[str, float]] = client.metrics.snapshot()
    keys = (
        "calls",
        "attempts",
        "retries",
        "breaker_transitions",
        "rate_limit_waits",
        "rate_limit_wait_seconds",
        "cache_hits",
        "cache_misses",
        "fallbacks",
        "bulkhead_rejections",
    )
    totals = dict.fromkeys(keys, 0.0)
    per: dict[str, dict[str, float]] = {}
    for name, figures in snapshot.items():
        per[name] = {key: figures.get(key, 0.0) for key in (*keys, "success_rate")}
        for key in keys:
            totals[key] += figures.get(key, 0.0)
    lookups = totals["cache_hits"] + totals["cache_misses"]
    result: dict[str, Any] = {k: _num(v) for k, v in totals.items()}
    result["cache_hit_rate"] = (
        round(totals["cache_hits"] / lookups, 4) if lookups else None
    )
    result["breaker_states"] = {
        name: str(state.get("breaker", {}).get("state", "?"))
        for name, state in client.status().items()
    }
    result["per_integration"] = {
        name: {k: _num(v) for k, v in figures.items()} for name, figures in per.items()
    }
    return result


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 4)


# -- webhook payloads -----------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One payload file: which provider sends it and under what event name."""

    provider: str
    event: str
    name: str
    body: bytes


def load_samples(folder: Path | None) -> list[Sample]:
    """The shipped samples, or every ``*.json`` under ``folder`` (sorted).

    The provider is the first of ``github``/``slack``/``jira`` found in the
    file's path (GitHub if none is). The event name is the file's folder
    for layouts like ``github/<event>/<file>.json``, and otherwise taken
    from the file name: ``<event>.json`` or ``<provider>.<event>[...].json``.
    """
    root = SHIPPED_PAYLOADS if folder is None else Path(folder)
    files = sorted(p for p in root.rglob("*.json") if p.is_file())[:MAX_PAYLOAD_FILES]
    samples = []
    for path in files:
        provider, event = classify_path(path, root)
        samples.append(
            Sample(provider, event, str(path.relative_to(root)), path.read_bytes())
        )
    return samples


def classify_path(path: Path, root: Path) -> tuple[str, str]:
    """``(provider, event)`` for a payload file under ``root``."""
    # The nearest path component naming a provider wins, so a provider's
    # name higher up (in a home folder, say) does not override the layout.
    provider = next(
        (
            found
            for part in reversed(path.resolve().parts)
            if (found := _provider_in(part))
        ),
        "github",
    )
    stem_parts = path.name[: -len(".json")].split(".")
    relative = path.relative_to(root).parts
    parent = path.parent.name
    if len(relative) >= 2 and not _provider_in(parent):
        return provider, parent  # <provider>/<event>/<file>.json
    if len(stem_parts) >= 2 and stem_parts[0].lower() in PROVIDERS:
        return stem_parts[0].lower(), stem_parts[1]  # <provider>.<event>.json
    folder = root.resolve()
    if _provider_in(folder.parent.name) and not _provider_in(folder.name):
        return provider, folder.name  # root is one event's folder
    return provider, stem_parts[0]  # <event>.json


def _provider_in(name: str) -> str | None:
    lowered = name.lower()
    return next((p for p in PROVIDERS if p in lowered), None)


@dataclass
class Delivery:
    """One HTTP POST of a webhook, ready to send."""

    integration: str
    event: str
    source: str
    headers: dict[str, str]
    body: bytes
    #: The id the queue stores it under, when the sender sets it; else the
    #: body identifies it (such bodies are made unique).
    delivery_id: str | None
    #: The answer a handshake expects (Slack's challenge); such deliveries
    #: are answered inline and never stored.
    handshake: bytes | None = None
    bad_signature: bool = False
    duplicate_of: Delivery | None = None
    status: int = 0
    answer: bytes = b""

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class Signer:
    """Signs deliveries the way each provider does.

    Delivery ids are random on every run, even with a seed, so runs that
    share a database never mistake each other's deliveries for their own.
    """

    def __init__(self, webhook_secrets: dict[str, str], rng: random.Random) -> None:
        self.secrets = webhook_secrets
        self.rng = rng
        self.serial = 0

    def _uuid(self) -> str:
        return str(uuid.uuid4())

    def make(self, sample: Sample, *, secret: str | None = None) -> Delivery:
        """A fresh delivery of ``sample``, with its own delivery id."""
        self.serial += 1
        key = (secret or self.secrets[sample.provider]).encode()
        if sample.provider == "slack":
            return self._slack(sample, key)
        if sample.provider == "jira":
            delivery = self._uuid()
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Atlassian Webhook HTTP Client",
                "X-Atlassian-Webhook-Identifier": delivery,
                "X-Hub-Signature": "sha256=" + _hmac(key, sample.body, "sha256"),
            }
            return Delivery(
                "jira", sample.event, sample.name, headers, sample.body, delivery
            )
        delivery = self._uuid()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/5c1e2a7",
            "X-GitHub-Event": sample.event,
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Hook-ID": "498311207",
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": "702114587",
            "X-Hub-Signature": "sha1=" + _hmac(key, sample.body, "sha1"),
            "X-Hub-Signature-256": "sha256=" + _hmac(key, sample.body, "sha256"),
        }
        return Delivery(
            "github", sample.event, sample.name, headers, sample.body, delivery
        )

    def _slack(self, sample: Sample, key: bytes) -> Delivery:
        try:
            payload = jsonlib.loads(sample.body)
        except ValueError:
            payload = None
        content_type = "application/json"
        body = sample.body
        delivery_id: str | None = None
        handshake: bytes | None = None
        if isinstance(payload, dict):
            kind = payload.get("type")
            unique = f"{self.serial}.{uuid.uuid4().hex[:12]}"
            if kind == "url_verification":
                handshake = str(payload.get("challenge", "")).encode()
            elif kind == "event_callback":
                delivery_id = "Ev" + uuid.uuid4().hex[:12].upper()
                body = _json_bytes({**payload, "event_id": delivery_id})
            elif "command" in payload:
                fields = {k: _form_value(v) for k, v in payload.items()}
                fields["trigger_id"] = unique
                body = urlencode(fields).encode()
                content_type = "application/x-www-form-urlencoded"
            elif kind in _INTERACTIVE_TYPES:
                inner = _json_bytes({**payload, "trigger_id": unique}).decode()
                body = urlencode({"payload": inner}).encode()
                content_type = "application/x-www-form-urlencoded"
        timestamp = str(int(time.time()))
        signed = b"v0:" + timestamp.encode() + b":" + body
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": "v0=" + _hmac(key, signed, "sha256"),
        }
        return Delivery(
            "slack", sample.event, sample.name, headers, body, delivery_id, handshake
        )


def _hmac(key: bytes, message: bytes, digest: str) -> str:
    return hmac.new(key, message, digest).hexdigest()


def _json_bytes(value: object) -> bytes:
    return jsonlib.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _form_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def plan_deliveries(
    samples: Sequence[Sample], count: int, signer: Signer
) -> tuple[list[Delivery], list[Delivery], list[Delivery]]:
    """``(originals, redeliveries, badly_signed)`` for ``count`` deliveries.

    Originals cycle through the samples (each at least once); about one in
    ten is sent again byte for byte, and one in twenty more is signed with a
    wrong secret.
    """
    total = max(count, len(samples))
    originals = [signer.make(samples[n % len(samples)]) for n in range(total)]
    storable = [d for d in originals if d.handshake is None]
    picks = signer.rng.sample(storable, min(len(storable), max(1, total // 10)))
    redeliveries = [
        Delivery(
            d.integration,
            d.event,
            d.source,
            dict(d.headers),
            d.body,
            d.delivery_id,
            duplicate_of=d,
        )
        for d in picks
    ]
    identified = [
        sample
        for sample, delivery in zip(samples, originals[: len(samples)], strict=True)
        if delivery.delivery_id
    ] or list(samples)
    badly_signed = []
    for n in range(max(1, total // 20)):
        wrong = secrets.token_hex(16)
        bad = signer.make(identified[n % len(identified)], secret=wrong)
        bad.bad_signature = True
        badly_signed.append(bad)
    return originals, redeliveries, badly_signed


# -- the receiving server --------------------------------------------------------


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("wsgi: " + format, *args)


def _not_found(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


@contextlib.contextmanager
def receiving_server(client: Client) -> Iterator[str]:
    """Serve ``WebhookMiddleware`` on an ephemeral port; yields its base URL."""
    # Imported by name: the front end installs as revo_sdk.contrib.wsgi from
    # contrib/wsgi, a mapping static type checkers do not follow.
    wsgi = importlib.import_module("revo_sdk.contrib.wsgi")
    app = wsgi.WebhookMiddleware(_not_found, client, prefix="/webhooks")
    server = make_server(
        "127.0.0.1",
        0,
        app,
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        daemon=True,
        name="bench-wsgi",
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/webhooks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def post_deliveries(
    url: str,
    deliveries: Sequence[Delivery],
    threads: int,
    progress: _Progress,
    label: str,
) -> float:
    """POST each delivery (from ``threads`` threads); returns seconds taken.

    Each delivery's ``status`` and ``answer`` are filled in; a network
    failure leaves status 0.
    """
    pool = urllib3.PoolManager(maxsize=threads, retries=False, timeout=30.0)
    done = [0] * threads
    deadline = time.monotonic() + PHASE_TIMEOUT

    def work(index: int) -> None:
        for delivery in deliveries[index::threads]:
            if time.monotonic() > deadline:
                break
            try:
                answer = pool.request(
                    "POST",
                    f"{url}/{delivery.integration}",
                    body=delivery.body,
                    headers=delivery.headers,
                )
                delivery.status, delivery.answer = answer.status, answer.data
            except urllib3.exceptions.HTTPError as exc:
                delivery.answer = type(exc).__name__.encode()
            done[index] += 1

    workers = [
        threading.Thread(target=work, args=(n,), name=f"bench-post-{n}", daemon=True)
        for n in range(threads)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    progress.follow(label, len(deliveries), lambda: sum(done), workers, deadline + 30)
    elapsed = time.perf_counter() - started
    pool.clear()
    return elapsed


# -- checking the store ---------------------------------------------------------


def _open_readonly(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)


class StoredRow(NamedTuple):
    """The queue row that holds one delivery."""

    id: int
    status: str
    attempts: int
    event: str


def stored_row(conn: sqlite3.Connection, delivery: Delivery) -> StoredRow | None:
    """The queue row holding ``delivery``, if there is one."""
    if delivery.delivery_id is not None:
        row = conn.execute(
            "SELECT id, status, attempts, event FROM webhook_events"
            " WHERE integration = ? AND delivery_id = ?",
            (delivery.integration, delivery.delivery_id),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT e.id, e.status, e.attempts, e.event FROM webhook_events e"
            " JOIN webhook_payloads p ON p.event_id = e.id"
            " WHERE e.integration = ? AND p.body = ?",
            (delivery.integration, delivery.body),
        ).fetchone()
    if row is None:
        return None
    return StoredRow(int(row[0]), str(row[1]), int(row[2]), str(row[3]))


def read_rows(db_path: Path, deliveries: Sequence[Delivery]) -> list[StoredRow | None]:
    """The queue row of each delivery (``None`` where there is none)."""
    with contextlib.closing(_open_readonly(db_path)) as conn:
        return [stored_row(conn, delivery) for delivery in deliveries]


def wait_settled(db_path: Path, accepted: Sequence[Delivery], timeout: float) -> None:
    """Poll the store until every stored accepted delivery is done or dead,
    or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = read_rows(db_path, accepted)
        if all(row is None or row.status in ("done", "dead") for row in rows):
            return
        time.sleep(0.1)


# -- the benchmark ---------------------------------------------------------------


class _Handlers:
    """Webhook handlers that count what they see; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        self.undecoded = 0
        self.failed_on_purpose = 0

    def register(self, client: Client) -> None:
        for name in PROVIDERS:
            client.webhooks.on(name, "*")(self.handle)

    def handle(self, delivery: QueuedDelivery) -> None:
        # A stable few fail their first attempt, so the retry path runs.
        digest = hashlib.sha256(
            f"{delivery.integration}:{delivery.id}".encode()
        ).digest()
        if delivery.attempts == 1 and digest[0] < 256 * HANDLER_FAILURE_SHARE:
            with self._lock:
                self.failed_on_purpose += 1
            raise RuntimeError("bench: first attempt fails on purpose")
        with self._lock:
            self.seen[f"{delivery.integration}/{delivery.event}"] += 1
            if delivery.payload is None:
                self.undecoded += 1


def run_bench(
    *,
    requests: int = 2000,
    threads: int = 8,
    fault_rate: float = 0.05,
    webhooks: int = 200,
    payloads: Path | str | None = None,
    db: Path | str | None = None,
    json: bool = False,
    seed: int | None = None,
    no_progress: bool = False,
    queue_messages: int = 1000,
) -> int:
    """Run the benchmark, print its report and return the exit code.

    :param requests: outgoing calls in the fault phase (and again in each
        overhead run).
    :param threads: threads making calls.
    :param fault_rate: share of emulator answers that misbehave, ``0``-``1``.
    :param webhooks: distinct webhook deliveries to send (at least one per
        payload file); ``0`` skips the webhook phases.
    :param payloads: folder of ``*.json`` payloads; the shipped samples when
        ``None``.
    :param db: SQLite file to use; a temporary one (removed afterwards)
        when ``None``.
    :param json: print the report as JSON instead of a table.
    :param seed: seeds the call mix, the faults and the delivery ids.
    :param no_progress: never show progress bars.
    :param queue_messages: messages per measurement of the queue phase
        (enqueue from 1 and 8 producers, claim + ack at backlogs of 1,000 and
        10,000); ``0`` skips it.
    """
    progress = _Progress(not no_progress and sys.stderr.isatty())
    rng = random.Random(seed)
    scratch = Path(tempfile.mkdtemp(prefix="revo-bench-"))
    db_path = Path(db) if db is not None else scratch / "bench.db"
    emulator = EmulatorProcess(fault_rate=fault_rate, seed=seed)
    clients: list[Client] = []
    status = ""
    try:
        try:
            samples = load_samples(Path(payloads) if payloads is not None else None)
            if webhooks and not samples:
                raise click.ClickException(f"no *.json payload files under {payloads}")
            emulator.start()
        except (OSError, RuntimeError, click.ClickException) as exc:
            click.echo(f"revo-sdk bench: cannot start: {exc}", err=True)
            return 2
        try:
            report = _run(
                emulator,
                clients,
                rng,
                progress,
                db_path,
                scratch,
                samples,
                requests=requests,
                threads=threads,
                fault_rate=fault_rate,
                webhooks=webhooks,
                seed=seed,
                queue_messages=queue_messages,
            )
        except RevoError as exc:
            click.echo(f"revo-sdk bench: {type(exc).__name__}: {exc}", err=True)
            return 2
    finally:
        for client in clients:
            client.close()  # flushes the metrics the status table reads
        emulator.stop()
        if not json and db_path.exists():
            status = _status_table(db_path)
        shutil.rmtree(scratch, ignore_errors=True)

    report["config"].update(
        payloads=str(payloads) if payloads is not None else "shipped samples",
        db=str(db_path) if db is not None else "temporary",
    )
    click.echo(jsonlib.dumps(report, indent=2) if json else format_report(report))
    if status:
        click.echo("\nStatus of the run's integrations (revo-sdk status)\n" + status)
    return 0 if report["ok"] else 1


def _status_table(db_path: Path) -> str:
    """The ``revo-sdk status`` table of the run's database, or a note why not."""
    from .._cli_monitor import print_status

    try:
        return print_status(db_path, echo=lambda text: None)
    except RevoError as exc:
        return f"(status unavailable: {exc})"


def _run(
    emulator: EmulatorProcess,
    clients: list[Client],
    rng: random.Random,
    progress: _Progress,
    db_path: Path,
    scratch: Path,
    samples: list[Sample],
    *,
    requests: int,
    threads: int,
    fault_rate: float,
    webhooks: int,
    seed: int | None,
    queue_messages: int = 0,
) -> dict[str, Any]:
    webhook_secrets = {name: secrets.token_hex(20) for name in PROVIDERS}
    ops = build_ops(requests, rng)
    base = emulator.base_url

    # Phase 1: every layer on, faults on.
    client = _new_client(
        base, db_path, threads=threads, webhook_secrets=webhook_secrets
    )
    clients.append(client)
    before = emulator.stats()
    outage = None
    if fault_rate > 0:
        family, delay, seconds = OUTAGE
        outage = threading.Timer(delay, emulator.outage, (family, seconds))
        outage.daemon = True
        outage.start()
    try:
        faulted = run_phase(
            "calls (faults)", ops, threads, _pipeline_call(client, cache=True), progress
        )
    finally:
        if outage is not None:
            outage.cancel()
            outage.join(10)
    after = emulator.stats()

    # Phase 2: faults off; raw urllib3 against a fresh client, cache bypassed.
    emulator.configure(0.0)
    clean = _new_client(
        base, scratch / "overhead.db", threads=threads, webhook_secrets=webhook_secrets
    )
    clients.append(clean)
    overhead = measure_overhead(clean, base, ops, threads, progress)
    emulator.configure(fault_rate, seed)

    report: dict[str, Any] = {
        "config": {
            "requests": requests,
            "threads": threads,
            "fault_rate": fault_rate,
            "webhooks": webhooks,
            "seed": seed,
            "outage": (
                {"service": OUTAGE[0], "after_s": OUTAGE[1], "seconds": OUTAGE[2]}
                if fault_rate > 0
                else None
            ),
        },
        "calls": faulted.summary(),
        "upstream": {
            "requests": after["requests"] - before["requests"],
            "faults": _diff(after["faults"], before["faults"]),
        },
        "pipeline": _pipeline_figures(client),
        "overhead": overhead,
        "webhooks": None,
        "problems": [],
    }
    if webhooks > 0:
        report["webhooks"] = bench_webhooks(
            client,
            db_path,
            samples,
            webhooks,
            min(threads, 4),
            rng,
            webhook_secrets,
            progress,
        )
        report["problems"].extend(report["webhooks"].pop("problems"))
    report["queue"] = None
    if queue_messages > 0:
        from .queue import queue_benchmark

        report["queue"] = queue_benchmark(
            scratch, n=queue_messages, backlogs=(1_000, 10_000)
        )
    report["ok"] = not report["problems"]
    return report


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    changes = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in sorted(changes.items()) if v}


def measure_overhead(
    client: Client, base_url: str, ops: Sequence[Op], threads: int, progress: _Progress
) -> dict[str, Any]:
    """Raw urllib3 vs the pipeline on the same calls, faults off."""
    raw_call, pool = _raw_call(client, base_url, threads)
    piped = _pipeline_call(client, cache=False)
    warm = list(ops[:WARMUP_CALLS])
    try:
        run_phase("warm-up raw", warm, threads, raw_call, progress)
        run_phase("warm-up pipeline", warm, threads, piped, progress)
        raw = run_phase("raw urllib3", ops, threads, raw_call, progress)
        pipe = run_phase("pipeline", ops, threads, piped, progress)
    finally:
        pool.clear()
    raw_s, pipe_s = raw.summary(), pipe.summary()
    return {
        "requests": len(ops),
        "threads": threads,
        "raw_urllib3_rps": raw_s["throughput_rps"],
        "pipeline_rps": pipe_s["throughput_rps"],
        "ratio": round(pipe.rate / raw.rate, 3) if raw.rate else None,
        "raw_cpu_us_per_call": raw_s["cpu_us_per_call"],
        "pipeline_cpu_us_per_call": pipe_s["cpu_us_per_call"],
        "raw_p50_ms": raw_s["latency_ms"]["p50"],
        "pipeline_p50_ms": pipe_s["latency_ms"]["p50"],
        "raw_success_rate": raw_s["success_rate"],
        "pipeline_success_rate": pipe_s["success_rate"],
    }


def bench_webhooks(
    client: Client,
    db_path: Path,
    samples: list[Sample],
    count: int,
    threads: int,
    rng: random.Random,
    webhook_secrets: dict[str, str],
    progress: _Progress,
) -> dict[str, Any]:
    """Phases 3 and 4: post, process and verify webhook deliveries."""
    signer = Signer(webhook_secrets, rng)
    originals, redeliveries, badly_signed = plan_deliveries(samples, count, signer)
    first = originals + badly_signed
    rng.shuffle(first)
    handlers = _Handlers()
    handlers.register(client)

    with receiving_server(client) as url:
        intake = post_deliveries(url, first, threads, progress, "webhooks")
        intake += post_deliveries(url, redeliveries, threads, progress, "redeliveries")

    accepted = [d for d in originals if d.accepted and d.handshake is None]
    started = time.perf_counter()
    client.webhooks.start(threads=2)
    try:
        wait_settled(db_path, accepted, PROCESS_TIMEOUT)
    finally:
        client.webhooks.stop()
    processing = time.perf_counter() - started

    rows = read_rows(db_path, accepted)
    report = _webhook_report(originals, redeliveries, badly_signed, accepted, rows)
    report.update(
        bad_signature_stored=sum(
            1 for row in read_rows(db_path, badly_signed) if row is not None
        ),
        handler_calls=sum(handlers.seen.values()),
        handler_failures_on_purpose=handlers.failed_on_purpose,
        undecoded_payloads=handlers.undecoded,
        intake_rps=round(report["sent"] / intake, 1) if intake > 0 else None,
        processing_s=round(processing, 3),
    )
    if report["bad_signature_stored"]:
        report["problems"].append(
            f"{report['bad_signature_stored']} badly signed webhook(s) stored"
        )
    return report


def _webhook_report(
    originals: list[Delivery],
    redeliveries: list[Delivery],
    badly_signed: list[Delivery],
    accepted: list[Delivery],
    rows: list[StoredRow | None],
) -> dict[str, Any]:
    """Counts and problems from what was sent, answered and stored."""
    problems: list[str] = []
    stored = [row for row in rows if row is not None]
    missing = [d for d, row in zip(accepted, rows, strict=True) if row is None]
    unprocessed = [row for row in stored if row.status != "done"]
    for delivery in missing[:5]:
        problems.append(
            f"accepted, not stored: {delivery.integration} {delivery.source}"
        )
    if missing:
        problems.append(f"{len(missing)} accepted webhook(s) missing from the store")
    if unprocessed:
        problems.append(f"{len(unprocessed)} stored webhook(s) not processed")
    bad_accepted = sum(1 for d in badly_signed if d.accepted)
    if bad_accepted:
        problems.append(f"{bad_accepted} badly signed webhook(s) accepted")

    handshakes = [d for d in originals if d.handshake is not None]
    answered = [d for d in handshakes if d.status == 200 and d.answer == d.handshake]
    if len(answered) < len(handshakes):
        problems.append(
            f"{len(handshakes) - len(answered)} handshake(s) answered wrong"
        )
    expected_dups = [
        d for d in redeliveries if d.duplicate_of and d.duplicate_of.accepted
    ]
    duplicated = [
        d for d in expected_dups if d.accepted and b'"duplicate":true' in d.answer
    ]
    rejected: Counter[str] = Counter(
        f"{d.status} {_reason(d.answer)}"
        for d in originals + redeliveries + badly_signed
        if not d.accepted
    )
    by_event = Counter(
        f"{d.integration}/{row.event}"
        for d, row in zip(accepted, rows, strict=True)
        if row
    )
    return {
        "sent": len(originals) + len(redeliveries) + len(badly_signed),
        "distinct_deliveries": len(originals),
        "accepted": len(accepted),
        "stored": len({row.id for row in stored}),
        "processed": sum(1 for row in stored if row.status == "done"),
        "dead": sum(1 for row in stored if row.status == "dead"),
        "missing": len(missing),
        "unprocessed": len(unprocessed),
        "redeliveries_sent": len(redeliveries),
        "redeliveries_of_accepted": len(expected_dups),
        "duplicated": len(duplicated),
        "bad_signature_sent": len(badly_signed),
        "bad_signature_rejected": sum(1 for d in badly_signed if d.status == 401),
        "handshakes": len(handshakes),
        "handshakes_answered": len(answered),
        "rejected": dict(rejected.most_common()),
        "by_event": dict(sorted(by_event.items())),
        "problems": problems,
    }


def _reason(answer: bytes) -> str:
    try:
        decoded = jsonlib.loads(answer)
    except ValueError:
        return answer[:40].decode("utf-8", "replace") or "no answer"
    if isinstance(decoded, dict):
        return str(decoded.get("reason") or decoded.get("error") or "")
    return ""


# -- the report -------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    """The report as an aligned, human-readable table."""
    config, calls, pipe = report["config"], report["calls"], report["pipeline"]
    over, upstream = report["overhead"], report["upstream"]
    lines = [
        "revo-sdk bench",
        f"  {config['requests']} calls from {config['threads']} threads, fault rate "
        f"{config['fault_rate']:.0%}, seed {config['seed']}, "
        f"payloads: {config['payloads']}",
        *(
            [f"  {o['service']} is down for {o['seconds']} s, {o['after_s']} s in"]
            if (o := config["outage"])
            else []
        ),
        "",
        "Calls through the pipeline (faults on)",
    ]
    latency = calls["latency_ms"]
    faults = ", ".join(f"{k} {v}" for k, v in upstream["faults"].items()) or "none"
    rows: list[tuple[str, object]] = [
        (
            "throughput",
            f"{calls['throughput_rps']:.1f} calls/s "
            f"({calls['completed']}/{calls['requests']} in {calls['elapsed_s']} s)",
        ),
        (
            "latency p50 / p95 / p99",
            f"{latency['p50']} / {latency['p95']} / {latency['p99']} ms",
        ),
        ("success rate", _pct(calls["success_rate"])),
        ("failures", _pairs(calls["errors"]) or "none"),
        ("upstream requests", f"{upstream['requests']} (faults injected: {faults})"),
        ("retries", pipe["retries"]),
        (
            "breaker transitions",
            f"{pipe['breaker_transitions']} (now: {_pairs(pipe['breaker_states'])})",
        ),
        (
            "cache hit rate",
            f"{_pct(calls['cache_hit_rate'])} of calls ({calls['cache_hits']} hits; "
            f"{_pct(pipe['cache_hit_rate'])} of cacheable lookups)",
        ),
        (
            "rate-limit waits",
            f"{pipe['rate_limit_waits']} ({pipe['rate_limit_wait_seconds']} s in all)",
        ),
    ]
    lines += _table(rows)
    lines += ["", f"Overhead (faults off, cache bypassed, {over['requests']} calls)"]
    lines += _table(
        [
            (
                "raw urllib3",
                f"{over['raw_urllib3_rps']} calls/s, "
                f"{over['raw_cpu_us_per_call']} us CPU/call",
            ),
            (
                "pipeline",
                f"{over['pipeline_rps']} calls/s, "
                f"{over['pipeline_cpu_us_per_call']} us CPU/call",
            ),
            (
                "ratio pipeline / raw",
                f"{over['ratio']} (calls/s; 1.0 = no overhead, higher is better)",
            ),
            (
                "successes raw / pipeline",
                f"{_pct(over['raw_success_rate'])} / "
                f"{_pct(over['pipeline_success_rate'])}",
            ),
        ]
    )
    hooks = report["webhooks"]
    if hooks is not None:
        lines += ["", "Webhooks (WSGI middleware -> SQLite queue -> workers)"]
        lines += _table(
            [
                (
                    "sent",
                    f"{hooks['sent']} ({hooks['distinct_deliveries']} distinct, "
                    f"{hooks['redeliveries_sent']} redelivered, "
                    f"{hooks['bad_signature_sent']} badly signed)",
                ),
                ("accepted / stored", f"{hooks['accepted']} / {hooks['stored']}"),
                ("processed / dead", f"{hooks['processed']} / {hooks['dead']}"),
                (
                    "duplicates recognised",
                    f"{hooks['duplicated']} of {hooks['redeliveries_of_accepted']}"
                    " redeliveries",
                ),
                (
                    "bad signatures refused",
                    f"{hooks['bad_signature_rejected']} of "
                    f"{hooks['bad_signature_sent']} (401)",
                ),
                ("rejected", _pairs(hooks["rejected"]) or "none"),
                (
                    "handshakes answered",
                    f"{hooks['handshakes_answered']} of {hooks['handshakes']}",
                ),
                ("handler retries", hooks["handler_failures_on_purpose"]),
                ("intake", f"{hooks['intake_rps']} posts/s"),
                ("processing", f"{hooks['processing_s']} s"),
                (
                    "missing / unprocessed",
                    f"{hooks['missing']} / {hooks['unprocessed']}",
                ),
            ]
        )
    queue = report.get("queue")
    if queue:
        floor = queue["fsync_floor"]
        lines += ["", "Durable queue (10 KB messages, synchronous=FULL enqueue)"]
        lines += _table(
            [
                ("fsync floor", f"{floor:.0f} appends+fsync/s on this disk"),
                ("enqueue, 1 producer", _rate(queue["enqueue_1"], floor)),
                ("enqueue, 8 producers", _rate(queue["enqueue_8"], floor)),
                *(
                    (
                        f"claim + ack, backlog {backlog:,}",
                        f"{rates['one']:.0f}/s one at a time, "
                        f"{rates['batch32']:.0f}/s in claims of 32",
                    )
                    for backlog, rates in queue["claim_ack"].items()
                ),
            ]
        )
    lines.append("")
    if report["problems"]:
        lines += ["PROBLEMS:", *(f"  - {p}" for p in report["problems"])]
    else:
        lines.append("OK: every accepted webhook was stored and processed.")
    return "\n".join(lines)


def _rate(rate: float, floor: float) -> str:
    return f"{rate:.0f}/s ({rate / floor:.2f} of the fsync floor)"


def _table(rows: Sequence[tuple[str, object]]) -> list[str]:
    width = max(len(name) for name, _ in rows)
    return [f"  {name:<{width}}  {value}" for name, value in rows]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in values.items())
