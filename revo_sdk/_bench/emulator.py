"""A local stand-in for GitHub, Slack and Jira that misbehaves on purpose.

``revo-sdk bench`` runs this module in a process of its own::

    python -m revo_sdk._bench.emulator --port 0 --fault-rate 0.05 --seed 7

It binds ``127.0.0.1`` (port 0 picks a free one), prints the bound port on
the first line of stdout and serves until it is terminated. The endpoints
answer with bodies and headers shaped like the real services (GitHub's
``x-ratelimit-*`` headers and ETags, Slack's ``{"ok": ...}`` envelope, Jira's
REST v2 resources), so the providers' response classification runs on
realistic input.

Faults are injected at ``--fault-rate``: each request draws from one seeded
random generator, so a run with the same seed and the same arrival order
sees the same faults. The fault kinds are listed in :data:`FAULT_KINDS`. A
request may force a fault (or forbid one) with the ``X-Emulator-Fault``
header or the ``_fault`` query parameter, which is how the tests exercise
each kind deterministically.

Control endpoints, never faulted:

- ``GET /_emulator/stats``: counts of requests, statuses, faults and routes;
- ``POST /_emulator/config``: JSON ``{"fault_rate": 0.1, "seed": 3}`` changes
  the fault rate (and reseeds) without a restart, and
  ``{"outage": {"family": "jira", "seconds": 1.5}}`` makes one service answer
  every request with 503 for a while (``seconds`` 0 ends it), which is what
  trips a circuit breaker; answers the new config.

Only the standard library is used here, so the process starts fast and its
behaviour does not depend on the code it is measuring.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

#: Fault kinds, as accepted by ``X-Emulator-Fault``. ``none`` forbids a fault.
FAULT_KINDS = (
    "500",
    "502",
    "503",
    "429",
    "secondary",  # GitHub's 403 "secondary rate limit" answer
    "slack_ratelimited",  # Slack's HTTP 200 with ok=false, error=ratelimited
    "slow",
    "drop",  # the connection is closed without an answer
    "outage",  # 503 like a service that is down (see ``/_emulator/config``)
)

#: Seconds a ``slow`` response is delayed.
SLOW_SECONDS = 0.2

#: The quota advertised in GitHub-style ``x-ratelimit-*`` headers, per
#: minute. Far above GitHub's 5,000 an hour on purpose: a bench run makes
#: thousands of calls in seconds, and a real-sized quota would (correctly)
#: make the client pace itself until the reset, measuring the wait instead
#: of the pipeline. Pacing from these headers is covered by the test suite.
GITHUB_QUOTA = 50_000

_RANDOM_GENERIC = ("500", "502", "503", "429", "slow", "drop")
_JSON = "application/json; charset=utf-8"


class FaultPlan:
    """Decides which requests fail, from one seeded generator.

    Thread-safety: every method may be called from any thread; the generator
    is only touched under the plan's lock.
    """

    def __init__(self, rate: float = 0.0, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rate = 0.0
        self._seed: int | None = None
        self._rng = random.Random(seed)
        self._outages: dict[str, float] = {}  # family -> monotonic end
        self.configure(rate, seed)

    def configure(self, rate: float, seed: int | None = None) -> None:
        """Set the fault rate (clamped to ``[0, 1]``) and reseed."""
        rng = random.Random(seed)
        with self._lock:
            self._rate = min(max(float(rate), 0.0), 1.0)
            self._seed = seed
            self._rng = rng

    def outage(self, family: str, seconds: float) -> None:
        """Fail every request of ``family`` for ``seconds`` from now."""
        until = time.monotonic() + max(float(seconds), 0.0)
        with self._lock:
            self._outages[family] = until

    def config(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            outages = {
                f: round(t - now, 3) for f, t in self._outages.items() if t > now
            }
            return {"fault_rate": self._rate, "seed": self._seed, "outages": outages}

    def draw(self, family: str) -> tuple[str | None, float]:
        """Pick a fault for one request of ``family`` (or ``None``).

        :returns: the fault kind and a uniform number in ``[0, 1)`` that the
            caller uses for the fault's own parameters (such as a
            ``Retry-After`` value), so those stay seeded too.
        """
        kinds: tuple[str, ...] = _RANDOM_GENERIC
        if family == "github":
            kinds = (*_RANDOM_GENERIC, "secondary")
        elif family == "slack":
            kinds = (*_RANDOM_GENERIC, "slack_ratelimited")
        now = time.monotonic()
        with self._lock:
            if self._outages.get(family, 0.0) > now:
                return "outage", 0.0
            if self._rate <= 0.0 or self._rng.random() >= self._rate:
                return None, 0.0
            return self._rng.choice(kinds), self._rng.random()


class Stats:
    """Request counters for ``/_emulator/stats``.

    Thread-safety: all methods are safe to call from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._statuses: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._families: Counter[str] = Counter()
        self._routes: Counter[str] = Counter()

    def count(self, family: str, route: str, status: int, fault: str | None) -> None:
        with self._lock:
            self._requests += 1
            self._statuses[str(status)] += 1
            self._families[family] += 1
            self._routes[route] += 1
            if fault is not None:
                self._faults[fault] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "statuses": dict(self._statuses),
                "faults": dict(self._faults),
                "families": dict(self._families),
                "routes": dict(self._routes),
            }


class EmulatorServer(ThreadingHTTPServer):
    """The HTTP server; one thread per connection, connections kept alive."""

    daemon_threads = True
    # Benchmarks open many pooled connections at once; the default backlog
    # of 5 would make some connects wait for a SYN retransmission.
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], *, fault_rate: float, seed: int | None
    ) -> None:
        self.faults = FaultPlan(fault_rate, seed)
        self.stats = Stats()
        self.started = time.time()
        super().__init__(address, EmulatorHandler)


class _Reply:
    """One prepared answer."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        status: int,
        payload: object = None,
        headers: dict[str, str] | None = None,
        *,
        raw: bytes | None = None,
    ) -> None:
        self.status = status
        self.headers = {"Content-Type": _JSON, **(headers or {})}
        if raw is not None:
            self.body = raw
        elif payload is None:
            self.body = b""
        else:
            self.body = json.dumps(payload, separators=(",", ":")).encode()


class EmulatorHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests (HTTP/1.1 keep-alive)."""

    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    server_version = "revo-emulator/1"
    # Buffer each answer and send it in one segment without Nagle's delay;
    # headers and body written separately would meet the peer's delayed ACK
    # and cost ~40 ms a response. The buffer is flushed after every request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self._read_body()
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query)

        if path.startswith("/_emulator/"):
            self._send(self._control(path, body))
            return

        family = _family(path)
        forced = self.headers.get("X-Emulator-Fault") or _first(query, "_fault")
        if forced:
            fault, u = (None if forced == "none" else forced), 0.5
        else:
            fault, u = self.server.faults.draw(family)

        if fault == "drop":
            self.server.stats.count(family, _route(path), 0, fault)
            self._drop()
            return
        if fault == "slow":
            time.sleep(SLOW_SECONDS)
        reply = None if fault in (None, "slow") else _fault_reply(fault, family, u)
        if reply is None:
            reply = self._route(family, path, query, body)
        self.server.stats.count(family, _route(path), reply.status, fault)
        self._send(reply)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)

    def _drop(self) -> None:
        # Close without a byte of answer: the client sees the connection
        # end (RemoteDisconnected / ProtocolError) after sending its request.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _control(self, path: str, body: bytes) -> _Reply:
        if path == "/_emulator/stats":
            return _Reply(200, self.server.stats.snapshot())
        if path == "/_emulator/config" and self.command == "POST":
            faults = self.server.faults
            try:
                wanted = json.loads(body or b"{}")
                if "fault_rate" in wanted or "seed" in wanted:
                    rate = wanted.get("fault_rate", faults.config()["fault_rate"])
                    faults.configure(float(rate), wanted.get("seed"))
                if wanted.get("outage"):
                    outage = wanted["outage"]
                    faults.outage(str(outage["family"]), float(outage["seconds"]))
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                return _Reply(400, {"error": f"bad config: {exc}"})
            return _Reply(200, self.server.faults.config())
        if path == "/_emulator/config":
            return _Reply(200, self.server.faults.config())
        return _Reply(404, {"error": "unknown control endpoint"})

    def _route(
        self, family: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> _Reply:
        if family == "github":
            return self._github(path, query, body)
        if family == "slack":
            return self._slack(path, body)
        if family == "jira":
            return self._jira(path, body)
        return _Reply(404, {"message": "Not Found"})

    # -- GitHub ------------------------------------------------------------

    def _github(self, path: str, query: dict[str, list[str]], body: bytes) -> _Reply:
        if not self.headers.get("Authorization"):
            return _Reply(
                401,
                {
                    "message": "Requires authentication",
                    "documentation_url": "https://docs.github.com/rest",
                },
            )
        limits = _github_limit_headers(self.server.stats.snapshot()["requests"])
        segments = [s for s in path.split("/") if s]
        if segments == ["rate_limit"]:
            core = {
                "limit": GITHUB_QUOTA,
                "remaining": int(limits["x-ratelimit-remaining"]),
                "reset": int(limits["x-ratelimit-reset"]),
                "used": GITHUB_QUOTA - int(limits["x-ratelimit-remaining"]),
                "resource": "core",
            }
            return _Reply(200, {"resources": {"core": core}, "rate": core}, limits)
        if len(segments) == 3 and segments[0] == "repos":
            return self._github_repo(segments[1], segments[2], limits)
        if len(segments) == 4 and segments[0] == "repos" and segments[3] == "issues":
            owner, repo = segments[1], segments[2]
            if self.command == "POST":
                return _github_create_issue(owner, repo, body, limits)
            page = int(_first(query, "page") or "1")
            return _Reply(200, _github_issues(owner, repo, page), limits)
        return _Reply(
            404,
            {
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest",
            },
            limits,
        )

    def _github_repo(self, owner: str, repo: str, limits: dict[str, str]) -> _Reply:
        raw = json.dumps(_github_repo(owner, repo), separators=(",", ":")).encode()
        etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
        headers = {**limits, "ETag": etag, "Cache-Control": "private, max-age=60"}
        if self.headers.get("If-None-Match") == etag:
            return _Reply(304, None, headers)
        return _Reply(200, headers=headers, raw=raw)

    # -- Slack ---------------------------------------------------------------

    def _slack(self, path: str, body: bytes) -> _Reply:
        method = path[len("/api/") :]
        if method == "api.test":
            return _Reply(200, {"ok": True, "args": {}})
        if not self.headers.get("Authorization"):
            return _Reply(200, {"ok": False, "error": "not_authed"})
        if method == "chat.postMessage":
            fields = _decode_fields(body, self.headers.get("Content-Type", ""))
            channel = str(fields.get("channel") or "C0EMULATOR")
            ts = f"{time.time():.6f}"
            message = {
                "type": "message",
                "subtype": "bot_message",
                "text": str(fields.get("text") or ""),
                "ts": ts,
                "bot_id": "B0EMULATOR",
            }
            return _Reply(
                200, {"ok": True, "channel": channel, "ts": ts, "message": message}
            )
        if method == "users.list":
            return _Reply(200, _slack_users())
        return _Reply(200, {"ok": False, "error": "unknown_method"})

    # -- Jira ----------------------------------------------------------------

    def _jira(self, path: str, body: bytes) -> _Reply:
        if path == "/rest/api/2/serverInfo":
            return _Reply(200, _jira_server_info(self.server.started))
        if not self.headers.get("Authorization"):
            return _Reply(
                401,
                {"errorMessages": ["You are not authenticated."], "errors": {}},
            )
        if path == "/rest/api/2/project":
            return _Reply(200, _jira_projects())
        prefix = "/rest/api/2/issue/"
        if path.startswith(prefix) and "/" not in path[len(prefix) :]:
            return _Reply(200, _jira_issue(path[len(prefix) :]))
        if path == "/rest/api/2/issue" and self.command == "POST":
            return _Reply(
                201,
                {"id": "10401", "key": "OPS-401", "self": "/rest/api/2/issue/10401"},
            )
        return _Reply(404, {"errorMessages": ["Not found"], "errors": {}})


# -- helpers --------------------------------------------------------------


def _family(path: str) -> str:
    if path.startswith("/api/"):
        return "slack"
    if path.startswith("/rest/api/"):
        return "jira"
    if path.startswith(("/repos/", "/rate_limit")):
        return "github"
    return "unknown"


def _route(path: str) -> str:
    """A low-cardinality label for a path (``/repos/*/*/issues``)."""
    segments = [s for s in path.split("/") if s]
    if segments and segments[0] == "repos":
        return "/" + "/".join(["repos", *("*" for _ in segments[1:3]), *segments[3:]])
    if path.startswith("/rest/api/2/issue/"):
        return "/rest/api/2/issue/*"
    return path


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _fault_reply(fault: str, family: str, u: float) -> _Reply | None:
    if fault == "outage":
        return _Reply(503, {"message": "Service Unavailable (emulated outage)"})
    if fault in ("500", "502", "503"):
        message = {"500": "Internal Server Error", "502": "Bad Gateway"}.get(
            fault, "Service Unavailable"
        )
        return _Reply(int(fault), {"message": message})
    if fault == "429":
        # Real services ask for seconds to minutes; 0 or 1 s keeps a bench short.
        return _Reply(
            429,
            {"message": "Too Many Requests"},
            {"Retry-After": str(int(u * 2))},
        )
    if fault == "secondary":
        # GitHub sends ``retry-after: 60`` (or more) with this answer; the
        # emulator asks for 1 s so that a benchmark run stays short.
        return _Reply(
            403,
            {
                "message": "You have exceeded a secondary rate limit. Please wait a "
                "few minutes before you try again. If you reach out to GitHub "
                "Support for help, please include the request ID "
                "C0DE:1F2E:3D4C:5B6A:7980.",
                "documentation_url": "https://docs.github.com/rest/overview/"
                "rate-limits-for-the-rest-api#about-secondary-rate-limits",
            },
            {"retry-after": "1", "x-github-request-id": "C0DE:1F2E:3D4C:5B6A:7980"},
        )
    if fault == "slack_ratelimited":
        return _Reply(200, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
    log.debug("unknown fault %r ignored for %s", fault, family)
    return None


def _github_limit_headers(served: int) -> dict[str, str]:
    # The quota counts down but never reaches zero: exhausting it would
    # (correctly) stall every GitHub call until the reset.
    remaining = GITHUB_QUOTA - 1 - served % (GITHUB_QUOTA - 1)
    reset = int(time.time() // 60 * 60 + 60)
    return {
        "x-ratelimit-limit": str(GITHUB_QUOTA),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-used": str(GITHUB_QUOTA - remaining),
        "x-ratelimit-reset": str(reset),
        "x-ratelimit-resource": "core",
        "x-github-api-version-selected": "2022-11-28",
    }


def _github_user(login: str, user_id: int) -> dict[str, Any]:
    return {
        "login": login,
        "id": user_id,
        "node_id": f"MDQ6VXNlcj{user_id}",
        "avatar_url": f"https://avatars.example.invalid/u/{user_id}?v=4",
        "html_url": f"https://github.example.invalid/{login}",
        "type": "User",
        "site_admin": False,
    }


def _github_repo(owner: str, repo: str) -> dict[str, Any]:
    repo_id = int(hashlib.sha256(f"{owner}/{repo}".encode()).hexdigest()[:7], 16)
    api = f"https://api.github.example.invalid/repos/{owner}/{repo}"
    return {
        "id": repo_id,
        "node_id": f"R_kgDO{repo_id:08d}",
        "name": repo,
        "full_name": f"{owner}/{repo}",
        "private": False,
        "owner": _github_user(owner, repo_id % 100000 + 1),
        "html_url": f"https://github.example.invalid/{owner}/{repo}",
        "description": f"Emulated repository {owner}/{repo}",
        "fork": False,
        "url": api,
        "issues_url": api + "/issues{/number}",
        "pulls_url": api + "/pulls{/number}",
        "created_at": "2021-03-14T09:26:53Z",
        "updated_at": "2026-05-02T17:40:11Z",
        "pushed_at": "2026-05-02T17:39:58Z",
        "homepage": None,
        "size": 4182,
        "stargazers_count": repo_id % 997,
        "watchers_count": repo_id % 997,
        "language": "Python",
        "has_issues": True,
        "forks_count": repo_id % 53,
        "archived": False,
        "open_issues_count": repo_id % 41,
        "license": {"key": "mit", "name": "MIT License", "spdx_id": "MIT"},
        "topics": ["sdk", "webhooks", "resilience"],
        "visibility": "public",
        "default_branch": "main",
        "permissions": {"admin": False, "push": True, "pull": True},
    }


def _github_issue(owner: str, repo: str, number: int, title: str) -> dict[str, Any]:
    api = f"https://api.github.example.invalid/repos/{owner}/{repo}"
    return {
        "id": 2000000 + number,
        "node_id": f"I_kwDO{number:08d}",
        "url": f"{api}/issues/{number}",
        "html_url": f"https://github.example.invalid/{owner}/{repo}/issues/{number}",
        "number": number,
        "title": title,
        "state": "open",
        "user": _github_user("octo-reporter", 58213),
        "labels": [{"id": 31, "name": "bug", "color": "d73a4a", "default": True}],
        "comments": number % 7,
        "created_at": "2026-04-28T08:12:44Z",
        "updated_at": "2026-05-01T10:03:19Z",
        "body": "Steps to reproduce are in the linked run.",
    }


def _github_issues(owner: str, repo: str, page: int) -> list[dict[str, Any]]:
    first = (page - 1) * 5 + 1
    return [
        _github_issue(owner, repo, n, f"Flaky retry on cold start #{n}")
        for n in range(first, first + 5)
    ]


def _github_create_issue(
    owner: str, repo: str, body: bytes, limits: dict[str, str]
) -> _Reply:
    try:
        wanted = json.loads(body or b"{}")
        title = str(wanted["title"])
    except (ValueError, KeyError, TypeError):
        return _Reply(
            422,
            {
                "message": "Validation Failed",
                "errors": [
                    {"resource": "Issue", "code": "missing_field", "field": "title"}
                ],
            },
            limits,
        )
    number = 100 + int(hashlib.sha256(body).hexdigest()[:4], 16) % 9000
    issue = _github_issue(owner, repo, number, title)
    headers = {**limits, "Location": issue["url"]}
    return _Reply(201, issue, headers)


def _slack_users() -> dict[str, Any]:
    members = [
        {
            "id": f"U0{n:07d}",
            "team_id": "T0EMULATE",
            "name": name,
            "deleted": False,
            "real_name": name.replace(".", " ").title(),
            "tz": "Europe/Lisbon",
            "is_bot": False,
            "profile": {"display_name": name, "status_text": "", "status_emoji": ""},
        }
        for n, name in enumerate(("ana.silva", "ben.okafor", "chen.li", "dora.k"))
    ]
    return {"ok": True, "members": members, "response_metadata": {"next_cursor": ""}}


def _jira_server_info(started: float) -> dict[str, Any]:
    return {
        "baseUrl": "https://jira.example.invalid",
        "version": "9.12.4",
        "versionNumbers": [9, 12, 4],
        "deploymentType": "Server",
        "buildNumber": 9120004,
        "serverTime": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime()),
        "serverTitle": "Emulated Jira",
        "uptimeSeconds": int(time.time() - started),
    }


def _jira_projects() -> list[dict[str, Any]]:
    return [
        {
            "id": str(10000 + n),
            "key": key,
            "name": name,
            "projectTypeKey": "software",
            "self": f"https://jira.example.invalid/rest/api/2/project/{10000 + n}",
        }
        for n, (key, name) in enumerate(
            (("OPS", "Operations"), ("WEB", "Web Platform"), ("SDK", "Client SDKs"))
        )
    ]


def _jira_issue(key: str) -> dict[str, Any]:
    project = key.split("-", 1)[0] or "OPS"
    return {
        "id": str(20000 + len(key)),
        "key": key,
        "self": f"https://jira.example.invalid/rest/api/2/issue/{key}",
        "fields": {
            "summary": f"Investigate webhook backlog for {key}",
            "status": {"name": "In Progress", "id": "3"},
            "issuetype": {"name": "Task", "subtask": False},
            "priority": {"name": "Medium", "id": "3"},
            "project": {"key": project, "name": project.title()},
            "assignee": {"name": "dora.k", "displayName": "Dora K"},
            "created": "2026-04-30T09:15:00.000+0000",
            "updated": "2026-05-02T14:22:31.000+0000",
            "labels": ["integrations"],
        },
    }


def _decode_fields(body: bytes, content_type: str) -> dict[str, Any]:
    if not body:
        return {}
    try:
        if "json" in content_type:
            decoded = json.loads(body)
            return decoded if isinstance(decoded, dict) else {}
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    except ValueError:
        return {}


# -- running it ---------------------------------------------------------------


def make_server(
    port: int = 0, *, fault_rate: float = 0.0, seed: int | None = None
) -> EmulatorServer:
    """An emulator bound to ``127.0.0.1:port`` (not yet serving)."""
    return EmulatorServer(("127.0.0.1", port), fault_rate=fault_rate, seed=seed)


def main(argv: list[str] | None = None) -> int:
    """Serve until terminated; print the bound port first."""
    parser = argparse.ArgumentParser(prog="python -m revo_sdk._bench.emulator")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    server = make_server(args.port, fault_rate=args.fault_rate, seed=args.seed)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


class EmulatorProcess:
    """Runs the emulator in a child process; use as a context manager.

    :param fault_rate: share of requests that get a fault, ``0`` to ``1``.
    :param seed: seeds the fault generator; ``None`` for a random one.
    :param startup_timeout: seconds to wait for the child to print its port.

    Thread-safety: start and stop from one thread; :meth:`stats` and
    :meth:`configure` may be called from any thread.
    """

    def __init__(
        self,
        *,
        fault_rate: float = 0.0,
        seed: int | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self.fault_rate = fault_rate
        self.seed = seed
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the emulator is not running")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EmulatorProcess:
        """Spawn the child and wait until it has bound its port."""
        # The file is run directly rather than with ``-m``: it needs only the
        # standard library, and skipping the package import halves start-up.
        cmd = [sys.executable, str(Path(__file__).resolve()), "--port", "0"]
        cmd += ["--fault-rate", repr(float(self.fault_rate))]
        if self.seed is not None:
            cmd += ["--seed", str(int(self.seed))]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            self.port = self._read_port(self._proc)
        except BaseException:
            self.stop()
            raise
        log.debug("emulator pid %d on port %d", self._proc.pid, self.port)
        return self

    def _read_port(self, proc: subprocess.Popen[bytes]) -> int:
        line: list[bytes] = []
        assert proc.stdout is not None
        stdout = proc.stdout
        reader = threading.Thread(
            target=lambda: line.append(stdout.readline()), daemon=True
        )
        reader.start()
        reader.join(self.startup_timeout)
        text = line[0].decode().strip() if line else ""
        if not text.isdigit():
            raise RuntimeError(
                f"emulator did not start (exit code {proc.poll()}): {self._errors()}"
            )
        return int(text)

    def _errors(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return str(self._stderr.read()[-2000:].decode("utf-8", "replace"))

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the child by its pid and wait for it; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.port = None

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(  # noqa: S310 - our own 127.0.0.1 server
            self.base_url + path,
            data=data,
            method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return json.loads(answer.read())

    def stats(self) -> dict[str, Any]:
        """The emulator's counters (see :class:`Stats`)."""
        result: dict[str, Any] = self._call("/_emulator/stats")
        return result

    def configure(self, fault_rate: float, seed: int | None = None) -> None:
        """Change the fault rate (and reseed) of the running emulator."""
        self._call("/_emulator/config", {"fault_rate": fault_rate, "seed": seed})

    def outage(self, family: str, seconds: float) -> None:
        """Make every ``family`` request fail with 503 for ``seconds``."""
        self._call(
            "/_emulator/config", {"outage": {"family": family, "seconds": seconds}}
        )

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    raise SystemExit(main())
