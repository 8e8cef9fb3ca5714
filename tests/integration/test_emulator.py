"""The bench's upstream emulator, run in its own process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from revo_sdk._bench.emulator import FAULT_KINDS, GITHUB_QUOTA, EmulatorProcess

pytestmark = pytest.mark.slow

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    """One fault-free emulator process shared by the read-only tests."""
    process = EmulatorProcess(fault_rate=0.0, seed=1)
    try:
        process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture
def fresh_emulator() -> Iterator[EmulatorProcess]:
    """An emulator of its own, for tests that change its configuration."""
    process = EmulatorProcess(fault_rate=0.0, seed=1)
    try:
        process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[urllib3.PoolManager]:
    """A pool that never retries, so every request reaches the emulator once."""
    pool = urllib3.PoolManager(retries=False, timeout=10.0)
    yield pool
    pool.clear()


def call(
    http: urllib3.PoolManager,
    emulator: EmulatorProcess,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> urllib3.BaseHTTPResponse:
    data = None if body is None else json.dumps(body).encode()
    sent = {**AUTH, "Content-Type": "application/json", **(headers or {})}
    return http.request(method, emulator.base_url + path, body=data, headers=sent)


def test_emulator_repository_carries_github_rate_limit_headers(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """Repository metadata comes with the x-ratelimit-* headers GitHub sends."""
    answer = call(http, emulator, "GET", "/repos/acme/widgets")

    assert answer.status == 200
    assert answer.json()["full_name"] == "acme/widgets"
    assert answer.headers["x-ratelimit-limit"] == str(GITHUB_QUOTA)
    assert 0 < int(answer.headers["x-ratelimit-remaining"]) < GITHUB_QUOTA
    assert int(answer.headers["x-ratelimit-reset"]) > 0
    assert answer.headers["x-ratelimit-resource"] == "core"


def test_emulator_repository_honours_if_none_match(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """A repeated GET with the ETag it was given is answered 304 without a body."""
    etag = call(http, emulator, "GET", "/repos/acme/widgets").headers["ETag"]

    again = call(
        http, emulator, "GET", "/repos/acme/widgets", headers={"If-None-Match": etag}
    )

    assert again.status == 304
    assert again.data == b""


def test_emulator_github_issues_list_and_create(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """Issues are listed by page and created from a JSON title."""
    listed = call(http, emulator, "GET", "/repos/acme/widgets/issues?page=2")
    created = call(
        http, emulator, "POST", "/repos/acme/widgets/issues", body={"title": "Broken"}
    )
    invalid = call(http, emulator, "POST", "/repos/acme/widgets/issues", body={})

    assert listed.status == 200
    assert [issue["number"] for issue in listed.json()] == [6, 7, 8, 9, 10]
    assert created.status == 201
    assert created.json()["title"] == "Broken"
    assert invalid.status == 422


def test_emulator_rate_limit_endpoint_reports_core(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """``/rate_limit`` describes the core quota like GitHub's health endpoint."""
    answer = call(http, emulator, "GET", "/rate_limit")

    assert answer.status == 200
    assert answer.json()["resources"]["core"]["limit"] == GITHUB_QUOTA


def test_emulator_github_without_token_is_unauthorised(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """A GitHub-style call without Authorization is answered 401."""
    answer = http.request("GET", emulator.base_url + "/repos/acme/widgets")

    assert answer.status == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/chat.postMessage"),
        ("GET", "/api/users.list"),
        ("GET", "/api/api.test"),
    ],
)
def test_emulator_slack_methods_answer_ok(
    http: urllib3.PoolManager, emulator: EmulatorProcess, method: str, path: str
) -> None:
    """Slack-style methods answer HTTP 200 with ``"ok": true``."""
    body = {"channel": "C1", "text": "hi"} if method == "POST" else None

    answer = call(http, emulator, method, path, body=body)

    assert answer.status == 200
    assert answer.json()["ok"] is True


def test_emulator_slack_without_token_is_not_authed(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """Slack reports a missing token inside a 200 answer, as the real API does."""
    answer = http.request("GET", emulator.base_url + "/api/users.list")

    assert answer.status == 200
    assert answer.json() == {"ok": False, "error": "not_authed"}


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/rest/api/2/serverInfo", "version"),
        ("/rest/api/2/issue/OPS-7", "fields"),
    ],
)
def test_emulator_jira_resources_answer(
    http: urllib3.PoolManager, emulator: EmulatorProcess, path: str, key: str
) -> None:
    """Jira-style REST v2 resources answer 200 with their usual fields."""
    answer = call(http, emulator, "GET", path)

    assert answer.status == 200
    assert key in answer.json()


def test_emulator_jira_project_list(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """``/rest/api/2/project`` lists projects with their keys."""
    answer = call(http, emulator, "GET", "/rest/api/2/project")

    assert {project["key"] for project in answer.json()} >= {"OPS"}


def test_emulator_unknown_path_is_not_found(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """A path no service has is a 404."""
    assert call(http, emulator, "GET", "/nowhere").status == 404


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_emulator_forced_server_error(
    http: urllib3.PoolManager, emulator: EmulatorProcess, status: str
) -> None:
    """``X-Emulator-Fault: 5xx`` answers that status."""
    answer = call(
        http, emulator, "GET", "/repos/a/b", headers={"X-Emulator-Fault": status}
    )

    assert answer.status == int(status)


def test_emulator_forced_429_has_short_retry_after(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """A forced 429 carries a Retry-After of at most one second."""
    answer = call(http, emulator, "GET", "/rest/api/2/project?_fault=429")

    assert answer.status == 429
    assert answer.headers["Retry-After"] in ("0", "1")


def test_emulator_forced_secondary_limit_looks_like_github(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """The secondary-limit fault is GitHub's 403 with its message and retry-after."""
    answer = call(
        http, emulator, "GET", "/repos/a/b", headers={"X-Emulator-Fault": "secondary"}
    )

    assert answer.status == 403
    assert "secondary rate limit" in answer.json()["message"]
    assert answer.headers["retry-after"] == "1"


def test_emulator_forced_slack_ratelimited_is_http_200(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """Slack's rate limit arrives as HTTP 200 with ``ok: false``."""
    answer = call(
        http,
        emulator,
        "POST",
        "/api/chat.postMessage",
        headers={"X-Emulator-Fault": "slack_ratelimited"},
        body={"channel": "C1", "text": "x"},
    )

    assert answer.status == 200
    assert answer.json() == {"ok": False, "error": "ratelimited"}
    assert answer.headers["Retry-After"] == "1"


def test_emulator_forced_drop_closes_without_answer(
    http: urllib3.PoolManager, emulator: EmulatorProcess
) -> None:
    """A dropped connection ends without a status line."""
    with pytest.raises(urllib3.exceptions.ProtocolError):
        call(http, emulator, "GET", "/repos/a/b", headers={"X-Emulator-Fault": "drop"})

    assert call(http, emulator, "GET", "/repos/a/b").status == 200


def test_emulator_forced_slow_answer_is_counted(
    http: urllib3.PoolManager, fresh_emulator: EmulatorProcess
) -> None:
    """A slow fault still answers normally and is counted as a fault."""
    answer = call(
        http,
        fresh_emulator,
        "GET",
        "/api/api.test",
        headers={"X-Emulator-Fault": "slow"},
    )

    assert answer.status == 200
    assert fresh_emulator.stats()["faults"] == {"slow": 1}


def test_emulator_stats_count_requests_by_route(
    http: urllib3.PoolManager, fresh_emulator: EmulatorProcess
) -> None:
    """The stats endpoint counts requests, statuses, routes and families."""
    for number in range(3):
        call(http, fresh_emulator, "GET", f"/rest/api/2/issue/OPS-{number}")
    call(http, fresh_emulator, "GET", "/repos/a/b", headers={"X-Emulator-Fault": "503"})

    stats = fresh_emulator.stats()

    assert stats["requests"] == 4
    assert stats["routes"]["/rest/api/2/issue/*"] == 3
    assert stats["statuses"] == {"200": 3, "503": 1}
    assert stats["families"] == {"jira": 3, "github": 1}


def test_emulator_random_faults_repeat_with_the_same_seed(
    http: urllib3.PoolManager, fresh_emulator: EmulatorProcess
) -> None:
    """Reseeding with the same seed replays the same fault sequence."""

    def sequence() -> list[str]:
        seen = []
        for _ in range(10):
            before = fresh_emulator.stats()["faults"]
            with contextlib.suppress(urllib3.exceptions.HTTPError):
                call(http, fresh_emulator, "GET", "/rest/api/2/project")
            after = fresh_emulator.stats()["faults"]
            seen.extend(k for k in after if after[k] != before.get(k, 0))
        return seen

    fresh_emulator.configure(1.0, seed=42)
    first = sequence()
    fresh_emulator.configure(1.0, seed=42)
    second = sequence()

    assert len(first) == 10
    assert first == second
    assert set(first) <= set(FAULT_KINDS)


def test_emulator_fault_rate_zero_injects_nothing(
    http: urllib3.PoolManager, fresh_emulator: EmulatorProcess
) -> None:
    """With the fault rate at zero every request is answered normally."""
    statuses = {
        call(http, fresh_emulator, "GET", "/api/api.test").status for _ in range(50)
    }

    assert statuses == {200}
    assert fresh_emulator.stats()["faults"] == {}


def test_emulator_none_header_forbids_a_fault(
    http: urllib3.PoolManager, fresh_emulator: EmulatorProcess
) -> None:
    """``X-Emulator-Fault: none`` is answered normally even at fault rate 1."""
    fresh_emulator.configure(1.0, seed=3)

    answer = call(
        http,
        fresh_emulator,
        "GET",
        "/api/api.test",
        headers={"X-Emulator-Fault": "none"},
    )

    assert answer.status == 200


def test_emulator_process_stops_by_pid() -> None:
    """Stopping terminates the child process and frees its port."""
    process = EmulatorProcess()
    try:
        process.start()
        proc = process._proc
        base = process.base_url
    finally:
        process.stop()

    assert proc is not None
    assert proc.poll() is not None
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.PoolManager(retries=False).request("GET", base + "/_emulator/stats")


def test_emulator_outage_fails_one_service_until_ended(
    http: urllib3.PoolManager, fresh_emulator: EmulatorProcess
) -> None:
    """An outage answers 503 for its service only, and ends when set to 0 s."""
    fresh_emulator.outage("jira", 60.0)

    during = call(http, fresh_emulator, "GET", "/rest/api/2/project").status
    other = call(http, fresh_emulator, "GET", "/api/api.test").status
    fresh_emulator.outage("jira", 0.0)
    after = call(http, fresh_emulator, "GET", "/rest/api/2/project").status

    assert (during, other, after) == (503, 200, 200)
    assert fresh_emulator.stats()["faults"] == {"outage": 1}
