"""Walking paginated collections of each provider against a real local server.

Rate limits met in the middle of a walk are waited out on a fake clock, so
no test sleeps for real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import Seen, Upstream, json_answer
from hypothesis import given
from hypothesis import strategies as st

from revo_sdk import (
    BreakerPolicy,
    Client,
    IntegrationConfig,
    PaginationError,
    RetryExhaustedError,
    RetryPolicy,
)
from revo_sdk._pagination import iter_pages, paginate, parse_link
from revo_sdk._pipeline import Integration
from revo_sdk_plugins.slack import SlackProvider


class FakeTime:
    """A monotonic clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


def query(seen: Seen) -> dict[str, str]:
    """The single-valued query parameters of a request the server saw."""
    return {k: v[0] for k, v in parse_qs(urlsplit(seen.path).query).items()}


@pytest.fixture
def client(upstream: Upstream) -> Iterator[Client]:
    """A client with github, slack and jira integrations on the local server."""
    fast = RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=2)
    with Client() as c:
        for name, base in (
            ("github", upstream.url),
            ("slack", f"{upstream.url}/api"),
            ("jira", upstream.url),
        ):
            c.register(
                IntegrationConfig(name=name, base_url=base, token="t", retry=fast)
            )
        yield c


def slack(upstream: Upstream, fake: FakeTime) -> Integration:
    config = IntegrationConfig(
        name="slack",
        base_url=f"{upstream.url}/api",
        token="xoxb",
        breaker=BreakerPolicy(enabled=False),
        retry=RetryPolicy(base_delay=0.1, deadline=600),
    )
    return Integration(config, SlackProvider(), clock=fake.clock, sleep=fake.sleep)


def users_page(ids: list[str], cursor: str) -> Any:
    body = {
        "ok": True,
        "members": [{"id": i} for i in ids],
        "response_metadata": {"next_cursor": cursor},
    }
    return json_answer(200, body)


# -- GitHub -------------------------------------------------------------------


def test_github_search_with_deprecation_link_is_one_page(
    client: Client, upstream: Upstream
) -> None:
    """A search answer with only a deprecation Link and total_count 1 is one
    page with one item."""
    upstream.script(
        "GET",
        "/search/code",
        json_answer(
            200,
            {"total_count": 1, "incomplete_results": False, "items": [{"n": 1}]},
            Link='<https://example.invalid/changelog>; rel="deprecation"',
        ),
    )
    items = list(client.github.paginate("/search/code", params={"q": "x"}))
    assert items == [{"n": 1}]
    assert len(upstream.calls("GET")) == 1


def test_github_walk_follows_next_links(client: Client, upstream: Upstream) -> None:
    """Pages are followed through rel="next" until a page has none."""
    base = upstream.url

    def page(n: int, last: bool) -> Any:
        def answer(seen: Seen) -> Any:
            links = [f'<{base}/repos/o/r/issues?page=1>; rel="first"']
            if not last:
                links.append(f'<{base}/repos/o/r/issues?page={n + 1}>; rel="next"')
            return json_answer(200, [{"n": n}], Link=", ".join(links))

        return answer

    answers = {"1": page(1, False), "2": page(2, False), "3": page(3, True)}
    upstream.script(
        "GET",
        "/repos/o/r/issues",
        lambda seen: answers[query(seen).get("page", "1")](seen),
    )
    items = list(client.github.paginate("/repos/o/r/issues"))
    assert items == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert [query(s).get("page") for s in upstream.calls("GET")] == [None, "2", "3"]


def test_github_204_is_an_empty_last_page(client: Client, upstream: Upstream) -> None:
    """A 204 answer yields no items and ends the walk."""
    upstream.script("GET", "/repos/o/r/forks", (204, {}, b""))
    assert list(client.github.paginate("/repos/o/r/forks")) == []
    pages = list(client.github.iter_pages("/repos/o/r/forks"))
    assert [p.status_code for p in pages] == [204]


# -- Slack --------------------------------------------------------------------


@pytest.mark.parametrize(
    "limited",
    [
        json_answer(429, {"ok": False, "error": "ratelimited"}, Retry_After="30"),
        json_answer(200, {"ok": False, "error": "ratelimited"}),
    ],
    ids=["429-retry-after", "ok-false-ratelimited"],
)
def test_slack_rate_limit_mid_walk_resumes_same_cursor(
    upstream: Upstream, limited: Any
) -> None:
    """users.list page 2 rate limited: the same cursor is asked again after
    the wait, and U1, U2, U3 are each yielded once."""
    fake = FakeTime()
    upstream.script(
        "GET",
        "/api/users.list",
        users_page(["U1", "U2"], "c2"),
        limited,
        users_page(["U3"], ""),
    )
    items = list(paginate(slack(upstream, fake), "/users.list", params={"limit": 2}))
    assert [u["id"] for u in items] == ["U1", "U2", "U3"]
    cursors = [query(s).get("cursor") for s in upstream.calls("GET")]
    assert cursors == [None, "c2", "c2"]
    assert sum(fake.sleeps) >= 30


def test_slack_repeated_cursor_raises(upstream: Upstream) -> None:
    """A server that sends the same cursor twice stops the walk with an error."""
    fake = FakeTime()
    upstream.script(
        "GET",
        "/api/conversations.list",
        users_page(["U1"], "c2"),
        users_page(["U2"], "c2"),
    )
    walk = paginate(slack(upstream, fake), "/conversations.list", items="members")
    seen = [next(walk)["id"], next(walk)["id"]]
    with pytest.raises(PaginationError, match="already") as info:
        next(walk)
    assert seen == ["U1", "U2"]
    assert info.value.pages == 2
    assert len(upstream.calls("GET")) == 2


def test_slack_give_up_carries_cursor_to_resume(upstream: Upstream) -> None:
    """When a page cannot be fetched the error carries its cursor, and a new
    walk started from it yields the rest."""
    fake = FakeTime()
    failing = json_answer(503, {"ok": False, "error": "service_unavailable"})
    upstream.script(
        "GET", "/api/users.list", users_page(["U1"], "c2"), failing, failing
    )
    integration = slack(upstream, fake)
    got: list[str] = []

    def walk() -> None:
        for user in paginate(integration, "/users.list", params={"limit": 1}):
            got.append(user["id"])

    with pytest.raises(PaginationError) as info:
        walk()
    assert got == ["U1"]
    assert info.value.cursor == {"limit": 1, "cursor": "c2"}
    assert isinstance(info.value.__cause__, RetryExhaustedError)
    upstream.script("GET", "/api/users.list", users_page(["U2"], ""))
    rest = paginate(integration, "/users.list", start=info.value.cursor)
    assert [u["id"] for u in rest] == ["U2"]


def test_slack_error_page_raises_with_cursor(upstream: Upstream) -> None:
    """An ok:false page that is not retried stops the walk at that cursor."""
    fake = FakeTime()
    upstream.script(
        "GET",
        "/api/users.list",
        users_page(["U1"], "c2"),
        json_answer(200, {"ok": False, "error": "invalid_cursor"}),
    )
    with pytest.raises(PaginationError, match="invalid_cursor") as info:
        list(paginate(slack(upstream, fake), "/users.list"))
    assert info.value.cursor == {"cursor": "c2"}


# -- Jira ---------------------------------------------------------------------


def test_jira_offsets_use_server_max_results(
    client: Client, upstream: Upstream
) -> None:
    """startAt advances by the maxResults the server returned, up to total."""

    def answer(seen: Seen) -> Any:
        start = int(query(seen).get("startAt", "0"))
        issues = [{"key": f"P-{n}"} for n in range(start, min(start + 2, 5))]
        body = {"startAt": start, "maxResults": 2, "total": 5, "issues": issues}
        return json_answer(200, body)

    upstream.script("GET", "/rest/api/2/search", answer)
    walk = client.jira.paginate(
        "/rest/api/2/search", params={"jql": "project=P", "maxResults": 100}
    )
    assert [i["key"] for i in walk] == [f"P-{n}" for n in range(5)]
    starts = [query(s).get("startAt") for s in upstream.calls("GET")]
    assert starts == [None, "2", "4"]


def test_jira_next_page_token_walk(client: Client, upstream: Upstream) -> None:
    """The enhanced search is walked by nextPageToken until isLast."""

    def answer(seen: Seen) -> Any:
        token = query(seen).get("nextPageToken")
        if token is None:
            return json_answer(200, {"issues": [{"id": 1}], "nextPageToken": "t2"})
        return json_answer(200, {"issues": [{"id": 2}], "isLast": True})

    upstream.script("GET", "/rest/api/3/search/jql", answer)
    walk = client.jira.paginate("/rest/api/3/search/jql", params={"jql": "x"})
    assert [i["id"] for i in walk] == [1, 2]


# -- helpers ------------------------------------------------------------------


def test_parse_link_keeps_only_paging_relations() -> None:
    """Link parsing keeps next/prev/first/last, splits multi-valued rel, and
    ignores everything else."""
    header = (
        '<https://a/x?page=2>; rel="next last", <https://a/d>; rel="deprecation", '
        "<https://a/x?page=1>; rel=prev, junk, <>; rel=next"
    )
    assert parse_link(header) == {
        "next": "https://a/x?page=2",
        "last": "https://a/x?page=2",
        "prev": "https://a/x?page=1",
    }
    assert parse_link(None) == {} == parse_link("garbage")


def test_paginate_refuses_fallback(upstream: Upstream) -> None:
    """A walk has no fallback: every page failure raises."""
    integration = slack(upstream, FakeTime())
    with pytest.raises(TypeError):
        list(iter_pages(integration, "/users.list", fallback=None))


def test_max_pages_stops_early(upstream: Upstream) -> None:
    """max_pages bounds the walk."""
    upstream.script("GET", "/api/users.list", users_page(["U1"], "more"))
    upstream.script(
        "GET",
        "/api/users.list",
        lambda seen: users_page(["U"], json.dumps(len(upstream.seen))),
    )
    pages = list(iter_pages(slack(upstream, FakeTime()), "/users.list", max_pages=3))
    assert len(pages) == 3


@given(st.text(max_size=300))
def test_parse_link_never_raises_and_keeps_paging_relations(value: str) -> None:
    """Any header text parses without error into paging relations only."""
    found = parse_link(value)
    assert set(found) <= {"next", "prev", "previous", "first", "last"}
    assert all(isinstance(url, str) and url for url in found.values())
