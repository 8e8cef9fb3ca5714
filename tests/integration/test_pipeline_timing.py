"""Waiting behaviour of the pipeline, with a fake clock and a real server.

The clock and sleep of the pipeline are injected, so these tests check how
long the pipeline *decides* to wait without ever waiting for real.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
from conftest import Upstream, json_answer

from revo_sdk import (
    BreakerPolicy,
    CachePolicy,
    IntegrationConfig,
    LimiterPolicy,
    Provider,
    RateLimitedError,
    RetryExhaustedError,
    RetryPolicy,
)
from revo_sdk._pipeline import Integration


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


class Plain(Provider):
    name = "plain"


def make(upstream: Upstream, fake: FakeTime, **overrides: object) -> Integration:
    config = IntegrationConfig(
        name="plain",
        base_url=upstream.url,
        limiter=LimiterPolicy(rate=100, burst=100, max_wait=600),
        retry=overrides.get(
            "retry", RetryPolicy(base_delay=0.1, max_delay=5, deadline=600)
        ),  # type: ignore[arg-type]
        breaker=BreakerPolicy(enabled=False),
    )
    return Integration(config, Plain(), clock=fake.clock, sleep=fake.sleep)


def test_retry_after_is_a_floor_for_the_next_attempt(upstream: Upstream) -> None:
    """A 429 with Retry-After: 30 makes the next attempt wait at least 30 s."""
    fake = FakeTime()
    upstream.script(
        "GET", "/x", json_answer(429, {}, Retry_After="30"), json_answer(200, {})
    )
    integration = make(upstream, fake)
    assert integration.request("GET", "/x").status_code == 200
    assert sum(fake.sleeps) >= 30
    assert len(upstream.calls()) == 2


def test_rate_limit_pause_holds_back_other_calls(upstream: Upstream) -> None:
    """After a 429 the whole integration waits, not only the call that saw it."""
    fake = FakeTime()
    upstream.script(
        "GET", "/x", json_answer(429, {}, Retry_After="20"), json_answer(200, {})
    )
    upstream.script("GET", "/y", json_answer(200, {}))
    integration = make(upstream, fake)
    integration.request("GET", "/x")
    paused_until = fake.now
    fake.sleeps.clear()
    integration.limiter.pause("default", 15)
    integration.request("GET", "/y")
    assert sum(fake.sleeps) >= 15
    assert fake.now >= paused_until + 15


def test_rate_limit_past_deadline_raises_with_retry_at(upstream: Upstream) -> None:
    """A Retry-After beyond the call's deadline raises at once, never sleeps past it."""
    fake = FakeTime()
    upstream.script("GET", "/x", json_answer(429, {}, Retry_After="3600"))
    integration = make(upstream, fake, retry=RetryPolicy(deadline=10))
    with pytest.raises(RateLimitedError) as info:
        integration.request("GET", "/x")
    assert info.value.retry_at is not None
    assert info.value.integration == "plain"
    assert sum(fake.sleeps) <= 10
    assert len(upstream.calls()) == 1


def test_retry_delays_respect_the_cap(upstream: Upstream) -> None:
    """Backoff waits between 5xx retries never exceed max_delay."""
    fake = FakeTime()
    upstream.script("GET", "/x", json_answer(503, {}))
    integration = make(
        upstream,
        fake,
        retry=RetryPolicy(base_delay=1, max_delay=2, max_attempts=6, deadline=600),
    )
    with pytest.raises(Exception, match="gave up after 6"):
        integration.request("GET", "/x")
    assert len(fake.sleeps) == 5
    assert all(0 < s <= 2 for s in fake.sleeps)


def test_garbage_retry_after_falls_back_to_backoff(upstream: Upstream) -> None:
    """An unparseable Retry-After is ignored and the normal backoff used."""
    fake = FakeTime()
    upstream.script(
        "GET", "/x", json_answer(503, {}, Retry_After="1m0s"), json_answer(200, {})
    )
    integration = make(upstream, fake)
    assert integration.request("GET", "/x").status_code == 200
    assert 0 < sum(fake.sleeps) <= 5


def test_github_secondary_limit_holds_calls_for_a_minute(upstream: Upstream) -> None:
    """GitHub's 403 secondary limit (quota left, no Retry-After) waits >= 60 s."""
    from revo_sdk_plugins.github import GitHubProvider

    fake = FakeTime()
    secondary = json_answer(
        403,
        {"message": "You have exceeded a secondary rate limit. Please wait."},
        x_ratelimit_remaining="6",
    )
    upstream.script(
        "GET", "/search/code", secondary, json_answer(200, {"total_count": 1})
    )
    config = IntegrationConfig(
        name="github",
        base_url=upstream.url,
        token="t",
        breaker=BreakerPolicy(enabled=False),
        retry=RetryPolicy(base_delay=0.1, deadline=600),
    )
    integration = Integration(
        config, GitHubProvider(), clock=fake.clock, sleep=fake.sleep
    )
    assert (
        integration.request("GET", "/search/code", params={"q": "x"}).status_code == 200
    )
    _first, second = upstream.calls("GET")
    assert sum(fake.sleeps) >= 60
    assert "Bearer t" in second.headers["Authorization"]


def test_slack_ok_false_ratelimited_is_retried(upstream: Upstream) -> None:
    """Slack's HTTP 200 with ok:false ratelimited is a rate limit, then retried."""
    from revo_sdk_plugins.slack import SlackProvider

    fake = FakeTime()
    upstream.script(
        "POST",
        "/api/chat.postMessage",
        json_answer(200, {"ok": False, "error": "ratelimited"}),
        json_answer(200, {"ok": True}),
    )
    config = IntegrationConfig(
        name="slack",
        base_url=f"{upstream.url}/api",
        token="xoxb",
        breaker=BreakerPolicy(enabled=False),
        retry=RetryPolicy(base_delay=0.1, deadline=600),
    )
    integration = Integration(
        config, SlackProvider(), clock=fake.clock, sleep=fake.sleep
    )
    response = integration.request("POST", "/chat.postMessage", json={"text": "hi"})
    assert response.json() == {"ok": True}
    assert len(upstream.calls("POST")) == 2
    assert sum(fake.sleeps) > 0


def test_slack_limit_on_one_method_leaves_others_running(upstream: Upstream) -> None:
    """A ratelimited chat.postMessage pauses that method only, not users.list."""
    from revo_sdk_plugins.slack import SlackProvider

    fake = FakeTime()
    upstream.script(
        "POST",
        "/api/chat.postMessage",
        json_answer(200, {"ok": False, "error": "ratelimited"}, Retry_After="30"),
    )
    upstream.script("GET", "/api/users.list", json_answer(200, {"ok": True}))
    config = IntegrationConfig(
        name="slack",
        base_url=f"{upstream.url}/api",
        token="xoxb",
        breaker=BreakerPolicy(enabled=False),
        retry=RetryPolicy(max_attempts=1),
    )
    integration = Integration(
        config, SlackProvider(), clock=fake.clock, sleep=fake.sleep
    )
    with pytest.raises(Exception, match="gave up"):
        integration.request("POST", "/chat.postMessage", json={})
    assert integration.limiter.snapshot()["chat.postMessage"]["paused_for"] >= 30
    fake.sleeps.clear()
    assert integration.request("GET", "/users.list", cache=False).json() == {"ok": True}
    assert sum(fake.sleeps) < 1


def test_github_secondary_limit_pauses_whole_integration(upstream: Upstream) -> None:
    """A secondary limit is per token: calls to any resource wait it out."""
    from revo_sdk_plugins.github import GitHubProvider

    fake = FakeTime()
    upstream.script(
        "GET",
        "/search/issues",
        json_answer(403, {"message": "secondary rate limit"}, Retry_After="45"),
    )
    upstream.script("GET", "/user", json_answer(200, {}))
    config = IntegrationConfig(
        name="github",
        base_url=upstream.url,
        breaker=BreakerPolicy(enabled=False),
        retry=RetryPolicy(max_attempts=1),
    )
    integration = Integration(
        config, GitHubProvider(), clock=fake.clock, sleep=fake.sleep
    )
    with pytest.raises(Exception, match="gave up"):
        integration.request("GET", "/search/issues")
    integration.request("GET", "/user")
    assert sum(fake.sleeps) >= 45


# -- growing waits, pacing and queued calls ----------------------------------


def test_retry_after_zero_still_waits_a_growing_minimum(upstream: Upstream) -> None:
    """429 with Retry-After: 0 waits at least 1 s, then 2 s on the next one."""
    fake = FakeTime()
    zero = json_answer(429, {}, Retry_After="0")
    upstream.script("GET", "/x", zero, zero, json_answer(200, {}))
    integration = make(upstream, fake)
    assert integration.request("GET", "/x").status_code == 200
    assert len(fake.sleeps) == 2
    assert fake.sleeps[0] >= 1.0
    assert fake.sleeps[1] >= 2.0


def test_github_repeated_secondary_limit_waits_longer(upstream: Upstream) -> None:
    """A second secondary limit in a row waits at least 120 s, not 60 again."""
    from revo_sdk_plugins.github import GitHubProvider

    fake = FakeTime()
    secondary = json_answer(
        403, {"message": "You have exceeded a secondary rate limit"}
    )
    upstream.script("GET", "/user", secondary, secondary, json_answer(200, {}))
    config = IntegrationConfig(
        name="github",
        base_url=upstream.url,
        breaker=BreakerPolicy(enabled=False),
        retry=RetryPolicy(base_delay=0.1, deadline=600),
    )
    integration = Integration(
        config, GitHubProvider(), clock=fake.clock, sleep=fake.sleep
    )
    assert integration.request("GET", "/user").status_code == 200
    assert len(fake.sleeps) == 2
    assert fake.sleeps[0] >= 60
    assert fake.sleeps[1] >= 120
    assert integration._strikes == {}  # the success forgot the streak


def test_exhausted_quota_header_paces_the_next_call(upstream: Upstream) -> None:
    """A 200 saying no quota is left holds the next call until the reset."""
    from revo_sdk_plugins.github import GitHubProvider

    fake = FakeTime()
    wall = [1_700_000_000.0]
    spent = json_answer(
        200,
        {},
        x_ratelimit_limit="5000",
        x_ratelimit_remaining="0",
        x_ratelimit_reset=str(int(wall[0]) + 40),
        x_ratelimit_resource="core",
    )
    upstream.script("GET", "/user", spent, json_answer(200, {}))
    config = IntegrationConfig(
        name="github",
        base_url=upstream.url,
        breaker=BreakerPolicy(enabled=False),
        retry=RetryPolicy(deadline=600),
        limiter=LimiterPolicy(rate=100, burst=100, max_wait=600),
    )
    integration = Integration(
        config, GitHubProvider(), clock=fake.clock, sleep=fake.sleep
    )
    integration.limiter._wall = lambda: wall[0]
    integration.request("GET", "/user", cache=False)
    assert fake.sleeps == []
    integration.request("GET", "/user", cache=False)
    assert 39 <= sum(fake.sleeps) <= 41


class ManualTime:
    """A clock shared by threads: sleepers block until the test moves time on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.cond = threading.Condition()
        self.wakes: list[float] = []  # when each current sleeper wants to wake

    def clock(self) -> float:
        with self.cond:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.cond:
            until = self.now + max(seconds, 0.0)
            self.wakes.append(until)
            self.cond.notify_all()
            ok = self.cond.wait_for(lambda: self.now >= until, timeout=10)
            self.wakes.remove(until)
        assert ok, "nobody moved the clock on"

    def _waiting(self) -> list[float]:
        return [w for w in self.wakes if w > self.now]

    def advance_when_sleeping(self, count: int, seconds: float) -> None:
        """Wait (up to 10 s real time) for ``count`` sleepers, then move on."""
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self._waiting()) >= count, timeout=10)
            assert ok, f"expected {count} sleepers, saw {len(self._waiting())}"
            self.now += seconds
            self.cond.notify_all()

    def run_until_done(self, threads: list[threading.Thread]) -> None:
        """Jump to the next sleeper's wake time until all ``threads`` have
        finished (at most 100 jumps)."""
        for _ in range(100):
            if not any(t.is_alive() for t in threads):
                return
            with self.cond:
                if self.cond.wait_for(self._waiting, timeout=0.05):
                    self.now = min(self._waiting())
                    self.cond.notify_all()


def test_queued_calls_wait_out_a_secondary_limit(upstream: Upstream) -> None:
    """After /search/code's 403 secondary limit (quota left, no Retry-After),
    two more calls on the same token wait too: nothing leaves before 60 s,
    then each of the three calls succeeds once."""
    from revo_sdk_plugins.github import GitHubProvider

    manual = ManualTime()
    sent_at: list[float] = []

    def stamped(answer: Any) -> Any:
        def reply(_seen: Any) -> Any:
            sent_at.append(manual.now)
            return answer

        return reply

    secondary = json_answer(
        403,
        {"message": "You have exceeded a secondary rate limit."},
        x_ratelimit_remaining="6",
        x_ratelimit_resource="code_search",
    )
    ok = json_answer(200, {"total_count": 0, "items": []})
    upstream.script("GET", "/search/code", stamped(secondary), stamped(ok))
    config = IntegrationConfig(
        name="github",
        base_url=upstream.url,
        token="t",
        breaker=BreakerPolicy(enabled=False),
        retry=RetryPolicy(base_delay=0.1, deadline=600),
    )
    integration = Integration(
        config, GitHubProvider(), clock=manual.clock, sleep=manual.sleep
    )
    statuses: list[int] = []

    def search(q: str) -> None:
        response = integration.request("GET", "/search/code", params={"q": q})
        statuses.append(response.status_code)

    first = threading.Thread(target=search, args=("a",))
    first.start()
    manual.advance_when_sleeping(1, 0.0)  # the first call now waits its 60 s
    queued = [threading.Thread(target=search, args=(q,)) for q in ("b", "c")]
    for thread in queued:
        thread.start()
    manual.advance_when_sleeping(3, 60.0)
    # Searches are spaced 2 s apart after the pause: let that time pass too.
    manual.run_until_done([first, *queued])
    for thread in [first, *queued]:
        thread.join(10)
    assert statuses == [200, 200, 200]
    assert len(upstream.calls("GET")) == 4
    start = sent_at[0]
    assert all(at >= start + 60 for at in sent_at[1:])


# -- cache revalidation and stale-if-error -----------------------------------


class Cached(Provider):
    name = "cached"
    default_cache = CachePolicy(route_ttls=(("/things/*", 60.0),))


def make_cached(upstream: Upstream, fake: FakeTime, **config: Any) -> Integration:
    settings: dict[str, Any] = {
        "name": "cached",
        "base_url": upstream.url,
        "breaker": BreakerPolicy(enabled=False),
        "retry": RetryPolicy(base_delay=0.1, max_attempts=2, deadline=600),
        **config,
    }
    return Integration(
        IntegrationConfig(**settings), Cached(), clock=fake.clock, sleep=fake.sleep
    )


def test_cache_revalidates_with_etag_and_serves_304(upstream: Upstream) -> None:
    """A stale entry is revalidated with If-None-Match; a 304 is served from it."""
    fake = FakeTime()
    upstream.script(
        "GET",
        "/things/1",
        json_answer(200, {"v": 1}, ETag='"v1"'),
        (304, {"ETag": '"v1"', "X-Fresh": "yes"}, b""),
    )
    integration = make_cached(upstream, fake)
    assert integration.request("GET", "/things/1").from_cache is False
    fake.now += 61  # past the route's 60 s TTL
    again = integration.request("GET", "/things/1")
    assert (again.status_code, again.json(), again.from_cache) == (200, {"v": 1}, True)
    assert again.headers["X-Fresh"] == "yes"
    first, second = upstream.calls("GET")
    assert "If-None-Match" not in first.headers
    assert second.headers["If-None-Match"] == '"v1"'
    assert integration.request("GET", "/things/1").from_cache is True  # fresh again
    assert len(upstream.calls("GET")) == 2


def test_cache_revalidates_with_last_modified(upstream: Upstream) -> None:
    """Without an ETag, Last-Modified is sent back as If-Modified-Since."""
    fake = FakeTime()
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    upstream.script(
        "GET",
        "/things/2",
        json_answer(200, {"v": 2}, Last_Modified=stamp),
        (304, {}, b""),
    )
    integration = make_cached(upstream, fake)
    integration.request("GET", "/things/2")
    fake.now += 61
    assert integration.request("GET", "/things/2").json() == {"v": 2}
    assert upstream.calls("GET")[1].headers["If-Modified-Since"] == stamp


def test_cache_no_cache_response_is_revalidated_every_time(upstream: Upstream) -> None:
    """Cache-Control: no-cache stores the response for revalidation only."""
    fake = FakeTime()
    upstream.script(
        "GET",
        "/things/3",
        json_answer(200, {"v": 3}, ETag='"e3"', Cache_Control="private, no-cache"),
        (304, {"ETag": '"e3"'}, b""),
    )
    integration = make_cached(upstream, fake)
    integration.request("GET", "/things/3")
    assert integration.request("GET", "/things/3").json() == {"v": 3}
    assert upstream.calls("GET")[1].headers["If-None-Match"] == '"e3"'


def test_cache_no_store_is_never_stored(upstream: Upstream) -> None:
    """Cache-Control: no-store sends every GET upstream."""
    fake = FakeTime()
    upstream.script(
        "GET", "/things/4", json_answer(200, {}, Cache_Control="no-store", ETag='"x"')
    )
    integration = make_cached(upstream, fake)
    integration.request("GET", "/things/4")
    integration.request("GET", "/things/4")
    assert len(upstream.calls("GET")) == 2
    assert "If-None-Match" not in upstream.calls("GET")[1].headers


def test_cache_errors_are_never_stored(upstream: Upstream) -> None:
    """A 404 on a cached route is not kept; the next GET asks again."""
    fake = FakeTime()
    upstream.script(
        "GET", "/things/5", json_answer(404, {}), json_answer(200, {"v": 5})
    )
    integration = make_cached(upstream, fake)
    assert integration.request("GET", "/things/5").status_code == 404
    assert integration.request("GET", "/things/5").json() == {"v": 5}


def test_cache_serves_stale_entry_when_upstream_fails(upstream: Upstream) -> None:
    """Without a fallback, a failing upstream is answered by the stale entry."""
    fake = FakeTime()
    upstream.script(
        "GET", "/things/6", json_answer(200, {"v": 6}), json_answer(503, {})
    )
    integration = make_cached(upstream, fake)
    integration.request("GET", "/things/6")
    fake.now += 61
    stale = integration.request("GET", "/things/6")
    assert (stale.json(), stale.from_cache, stale.stale) == ({"v": 6}, True, True)
    assert integration.request("GET", "/things/6", fallback="fb") == "fb"


def test_cache_without_stale_entry_raises_on_failure(upstream: Upstream) -> None:
    """stale-if-error needs an entry: with none, the error reaches the caller."""
    fake = FakeTime()
    upstream.script("GET", "/things/7", json_answer(503, {}))
    integration = make_cached(upstream, fake)
    with pytest.raises(RetryExhaustedError):
        integration.request("GET", "/things/7")


# -- wiring of the breaker, the retry budget and write spacing ---------------


def test_github_writes_are_spaced_a_second_apart(upstream: Upstream) -> None:
    """Two POSTs in a row through the GitHub provider are at least 1 s apart."""
    from revo_sdk_plugins.github import GitHubProvider

    fake = FakeTime()
    upstream.script("POST", "/repos/o/r/issues", json_answer(201, {}))
    config = IntegrationConfig(
        name="github", base_url=upstream.url, breaker=BreakerPolicy(enabled=False)
    )
    integration = Integration(
        config, GitHubProvider(), clock=fake.clock, sleep=fake.sleep
    )
    integration.request("POST", "/repos/o/r/issues", json={"title": "a"})
    assert fake.sleeps == []
    integration.request("POST", "/repos/o/r/issues", json={"title": "b"})
    assert sum(fake.sleeps) >= 1.0


def test_spent_retry_budget_stops_retrying(upstream: Upstream) -> None:
    """With no retry budget left a 503 is not retried, and the error says why."""
    fake = FakeTime()
    upstream.script("GET", "/x", json_answer(503, {}))
    policy = RetryPolicy(base_delay=0.1, deadline=600, budget_ratio=0.0)
    integration = make(
        upstream, fake, retry=dataclasses.replace(policy, budget_floor=0)
    )
    with pytest.raises(RetryExhaustedError, match="budget_exhausted"):
        integration.request("GET", "/x")
    assert len(upstream.calls()) == 1


class Exploding(Provider):
    """Classifies like the base class, except when told to fail."""

    name = "exploding"
    fail = False

    def classify(
        self, status: int, headers: Any, body: bytes, *, path: str = ""
    ) -> Any:
        if self.fail:
            raise RuntimeError("classifier bug")
        return super().classify(status, headers, body, path=path)


def test_breaker_trial_permit_returned_when_classify_raises(
    upstream: Upstream,
) -> None:
    """A half-open trial whose classification raises gives its permit back,
    so the next call may still try."""
    fake = FakeTime()
    upstream.script(
        "GET", "/x", json_answer(503, {}), json_answer(200, {}), json_answer(200, {})
    )
    provider = Exploding()
    config = IntegrationConfig(
        name="exploding",
        base_url=upstream.url,
        breaker=BreakerPolicy(failure_threshold=1, recovery_timeout=5),
        retry=RetryPolicy(max_attempts=1),
    )
    integration = Integration(config, provider, clock=fake.clock, sleep=fake.sleep)
    with pytest.raises(RetryExhaustedError):
        integration.request("GET", "/x")
    fake.now += 6  # recovery elapsed: one trial permit
    provider.fail = True
    with pytest.raises(RuntimeError):
        integration.request("GET", "/x")
    provider.fail = False
    assert integration.request("GET", "/x").status_code == 200


def test_huge_retry_after_pauses_at_most_an_hour(upstream: Upstream) -> None:
    """A Retry-After of years raises for this call and pauses the scope one hour."""
    fake = FakeTime()
    upstream.script("GET", "/x", json_answer(429, {}, Retry_After="99999999"))
    integration = make(upstream, fake, retry=RetryPolicy(deadline=10))
    with pytest.raises(RateLimitedError):
        integration.request("GET", "/x")
    paused_for = integration.limiter.snapshot()["default"]["paused_for"]
    assert 3000 < paused_for <= 3600


@pytest.mark.parametrize("garbage", ["1e3", "1_0", "-5", "nan"])
def test_provider_retry_after_garbage_is_ignored(
    upstream: Upstream, garbage: str
) -> None:
    """Values like 1e3 are garbage: the normal backoff applies, not 1000 s."""
    fake = FakeTime()
    upstream.script(
        "GET", "/x", json_answer(503, {}, Retry_After=garbage), json_answer(200, {})
    )
    integration = make(upstream, fake)
    assert integration.request("GET", "/x").status_code == 200
    assert sum(fake.sleeps) <= 5


def test_pipeline_reports_waits_pauses_and_quota_as_events(upstream: Upstream) -> None:
    """Rate-limit waits, server pauses and quota left reach the event sink."""
    from revo_sdk_plugins.github import GitHubProvider

    fake = FakeTime()
    events: list[tuple[str, str, str, float]] = []
    upstream.script(
        "GET",
        "/user",
        json_answer(429, {}, Retry_After="5"),
        json_answer(
            200,
            {},
            x_ratelimit_limit="5000",
            x_ratelimit_remaining="4000",
            x_ratelimit_reset="9999999999",
            x_ratelimit_resource="core",
        ),
    )
    config = IntegrationConfig(
        name="github",
        base_url=upstream.url,
        breaker=BreakerPolicy(enabled=False),
        retry=RetryPolicy(base_delay=0.1, deadline=600),
    )
    integration = Integration(
        config,
        GitHubProvider(),
        clock=fake.clock,
        sleep=fake.sleep,
        event=lambda *e: events.append(e),
    )
    integration.request("GET", "/user")
    kinds = {kind: (detail, value) for _, kind, detail, value in events}
    assert kinds["rate_limit_pause"][1] >= 5
    assert kinds["rate_limit_wait"][1] >= 5
    assert kinds["rate_limit_remaining"] == ("core", pytest.approx(0.8))


def test_quota_left_is_reported_when_it_moves_not_on_every_call(
    upstream: Upstream,
) -> None:
    """Ten answers a few calls apart in quota give one event; a 2 % drop another."""
    from revo_sdk_plugins.github import GitHubProvider

    fake = FakeTime()
    events: list[tuple[str, str, str, float]] = []

    def quota(remaining: int) -> Any:
        return json_answer(
            200,
            {},
            x_ratelimit_limit="5000",
            x_ratelimit_remaining=str(remaining),
            x_ratelimit_reset="9999999999",
            x_ratelimit_resource="core",
        )

    upstream.script("GET", "/user", *[quota(4000 - n) for n in range(10)], quota(3900))
    config = IntegrationConfig(
        name="github", base_url=upstream.url, breaker=BreakerPolicy(enabled=False)
    )
    integration = Integration(
        config,
        GitHubProvider(),
        clock=fake.clock,
        sleep=fake.sleep,
        event=lambda *e: events.append(e),
    )
    for _ in range(11):
        integration.request("GET", "/user")
    reported = [value for _, kind, _, value in events if kind == "rate_limit_remaining"]
    assert reported == [pytest.approx(0.8), pytest.approx(0.78)]
