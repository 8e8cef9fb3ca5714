"""Tests of the response cache, its route patterns and single-flight."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import revo_sdk._cache as cache_module
from revo_sdk import CachePolicy
from revo_sdk._cache import CachedResponse, ResponseCache, SingleFlight, compile_route

GITHUB = "https://api.github.com"


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def response(url: str = f"{GITHUB}/repos/o/r", body: bytes = b"{}") -> CachedResponse:
    return CachedResponse(
        status=200,
        headers=(("Content-Type", "application/json"),),
        body=body,
        url=url,
        stored_at=1_700_000_000.0,
        etag='"abc"',
    )


def key(url: str, method: str = "GET", vary: str = "json|cred1") -> str:
    return f"{method} {url}|{vary}"


ROUTES = (
    ("/repos/*/*", 3600.0),
    ("/rest/api/*/project/**", 14400.0),
    ("/users.*", 1800.0),
    ("/repos/**", 60.0),
)


def make(
    clock: FakeClock | None = None,
    *,
    enabled: bool = True,
    default_ttl: float = 0.0,
    maxsize: int = 1024,
) -> ResponseCache:
    """A cache with GitHub-, Jira- and Slack-like routes."""
    policy = CachePolicy(
        enabled=enabled, route_ttls=ROUTES, default_ttl=default_ttl, maxsize=maxsize
    )
    return ResponseCache(policy, clock=clock or FakeClock())


@pytest.mark.parametrize(
    ("path", "ttl"),
    [
        ("/repos/o/r", 3600.0),
        ("/repos/o/r?per_page=100", 3600.0),
        ("/repos/o/r#readme", 3600.0),
        (f"{GITHUB}/repos/o/r?x=1", 3600.0),
        ("/repos/o", 60.0),  # one segment short of /repos/*/*
        ("/repos/o/r/issues", 60.0),  # one segment too many
        ("/repos//r", 60.0),  # "*" needs a non-empty segment
        ("/rest/api/2/project", 14400.0),  # "**" matches nothing
        ("/rest/api/2/project/", 14400.0),
        ("/rest/api/3/project/KEY/versions", 14400.0),
        ("/rest/api/2/projects", 0.0),
        ("/users.info", 1800.0),
        ("/users.list?limit=5", 1800.0),
        ("/users/info", 0.0),
        ("/chat.postMessage", 0.0),
    ],
)
def test_cache_ttl_for_matches_route_patterns(path: str, ttl: float) -> None:
    """The first matching pattern gives the TTL; unmatched paths get the default."""
    assert make().ttl_for(path) == ttl


def test_cache_ttl_for_uses_default_for_unmatched_paths() -> None:
    """A default TTL applies to paths no pattern matches."""
    assert make(default_ttl=5.0).ttl_for("/search/issues") == 5.0


segment = st.text(
    alphabet=st.characters(blacklist_characters="/?#", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
)


@given(first=segment, second=segment, rest=st.lists(segment, max_size=4))
def test_cache_route_star_matches_exactly_one_segment(
    first: str, second: str, rest: list[str]
) -> None:
    """``/a/*/b`` matches one segment in the middle, never two or none."""
    regex = compile_route("/a/*/b")
    assert regex.fullmatch(f"/a/{first}/b")
    assert not regex.fullmatch(f"/a/{first}/{second}/b")
    assert not regex.fullmatch("/a//b")
    tail = compile_route("/a/**")
    assert tail.fullmatch("/a")
    assert tail.fullmatch("/a/" + "/".join([first, *rest]))
    assert not tail.fullmatch(f"/ab/{first}")


def test_cache_get_returns_fresh_entries_only() -> None:
    """An entry is served until its TTL passes, then get misses."""
    clock = FakeClock()
    cache = make(clock)
    stored = response()
    assert cache.put(key(f"{GITHUB}/repos/o/r"), "/repos/o/r", stored)
    assert cache.get(key(f"{GITHUB}/repos/o/r")) is stored
    clock.advance(3599.0)
    assert cache.get(key(f"{GITHUB}/repos/o/r")) is stored
    clock.advance(1.0)
    assert cache.get(key(f"{GITHUB}/repos/o/r")) is None


def test_cache_get_stale_lends_expired_entry_for_revalidation() -> None:
    """After expiry the entry stays available to get_stale for one more TTL."""
    clock = FakeClock()
    cache = make(clock)
    stored = response()
    cache.put(key("u"), "/repos/o/r", stored)
    clock.advance(3600.0)
    assert cache.get(key("u")) is None
    assert cache.get_stale(key("u")) is stored
    clock.advance(3600.0)
    assert cache.get_stale(key("u")) is None
    assert len(cache) == 0


def test_cache_put_refuses_uncacheable_paths() -> None:
    """Paths with TTL 0 are not stored."""
    cache = make()
    assert cache.put(key("u"), "/chat.postMessage", response()) is False
    assert len(cache) == 0


def test_cache_disabled_policy_stores_nothing() -> None:
    """A disabled cache refuses every put."""
    cache = make(enabled=False)
    assert cache.put(key("u"), "/repos/o/r", response()) is False
    assert cache.get(key("u")) is None


def test_cache_invalidate_forgets_one_key() -> None:
    """invalidate drops the key and says whether it was there."""
    cache = make()
    cache.put(key("u"), "/repos/o/r", response())
    assert cache.invalidate(key("u")) is True
    assert cache.invalidate(key("u")) is False
    assert cache.get(key("u")) is None


def test_cache_invalidate_prefix_matches_the_url_part() -> None:
    """invalidate_prefix drops every method and variant under a URL prefix."""
    cache = make()
    repo = f"{GITHUB}/repos/o/r"
    doomed = [
        key(repo),
        key(repo, vary="raw|cred2"),
        key(f"{repo}/issues?state=open", method="HEAD"),
    ]
    kept = [key(f"{GITHUB}/repos/o/other"), key("https://example.com/repos/o/r")]
    for k in doomed + kept:
        cache.put(k, "/repos/o/r", response())
    assert cache.invalidate_prefix(repo) == 3
    assert [cache.get(k) for k in doomed] == [None] * 3
    assert all(cache.get(k) is not None for k in kept)


def test_cache_evicts_least_recently_used_when_full() -> None:
    """Past maxsize, the entry used longest ago goes first."""
    cache = make(maxsize=2)
    cache.put(key("a"), "/repos/o/a", response())
    cache.put(key("b"), "/repos/o/b", response())
    cache.get(key("a"))
    cache.put(key("c"), "/repos/o/c", response())
    assert cache.get(key("b")) is None
    assert cache.get(key("a")) is not None
    assert cache.get(key("c")) is not None


def test_cache_clear_and_snapshot() -> None:
    """The snapshot counts hits, misses and size; clear empties the cache."""
    cache = make()
    cache.put(key("a"), "/repos/o/a", response())
    cache.get(key("a"))
    cache.get(key("missing"))
    assert cache.snapshot() == {
        "enabled": True,
        "size": 1,
        "maxsize": 1024,
        "hits": 1,
        "misses": 1,
    }
    cache.clear()
    assert len(cache) == 0


def test_cached_response_is_immutable() -> None:
    """Stored responses cannot be changed behind the cache's back."""
    stored = response()
    with pytest.raises(AttributeError):
        stored.status = 500  # type: ignore[misc]  # the point of the test


class CountingCall(cache_module._Call):
    """A single-flight record that counts the callers waiting on it."""

    waiting = 0
    changed = threading.Condition()

    def wait(self) -> None:
        with CountingCall.changed:
            CountingCall.waiting += 1
            CountingCall.changed.notify_all()
        super().wait()

    @classmethod
    def until_waiting(cls, count: int) -> bool:
        with cls.changed:
            return cls.changed.wait_for(lambda: cls.waiting >= count, timeout=5.0)


@pytest.fixture
def counting_calls(monkeypatch: pytest.MonkeyPatch) -> type[CountingCall]:
    """Make SingleFlight count its waiters."""
    CountingCall.waiting = 0
    monkeypatch.setattr(cache_module, "_Call", CountingCall)
    return CountingCall


def run_threads(count: int, target: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10.0)
    assert not any(t.is_alive() for t in threads)


def test_singleflight_8_threads_make_one_call(
    counting_calls: type[CountingCall],
) -> None:
    """Eight concurrent identical calls run the function once and share its result."""
    flight = SingleFlight()
    calls = 0
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def fetch() -> str:
        nonlocal calls
        with lock:
            calls += 1
        assert counting_calls.until_waiting(7)  # hold on until everyone has joined
        return "body"

    def caller() -> None:
        result = flight.do("GET /repos/o/r", fetch)
        with lock:
            results.append(result)

    run_threads(8, caller)
    assert calls == 1
    assert sorted(results) == [("body", False)] + [("body", True)] * 7


def test_singleflight_exception_reaches_every_waiter(
    counting_calls: type[CountingCall],
) -> None:
    """When the shared call fails, every caller sees its exception."""
    flight = SingleFlight()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def fetch() -> str:
        assert counting_calls.until_waiting(3)
        raise ConnectionError("upstream down")

    def caller() -> None:
        try:
            flight.do("k", fetch)
        except ConnectionError as exc:
            with lock:
                errors.append(exc)

    run_threads(4, caller)
    assert len(errors) == 4
    assert all(str(e) == "upstream down" for e in errors)


def test_singleflight_forgets_key_after_return() -> None:
    """A call after the previous one returned runs the function again."""
    flight = SingleFlight()
    answers = iter(["first", "second"])
    assert flight.do("k", lambda: next(answers)) == ("first", False)
    assert flight.do("k", lambda: next(answers)) == ("second", False)


def test_singleflight_different_keys_do_not_share() -> None:
    """Calls under different keys each run their own function."""
    flight = SingleFlight()
    assert flight.do("a", lambda: 1) == (1, False)
    assert flight.do("b", lambda: 2) == (2, False)


def test_cache_put_fresh_for_zero_keeps_entry_for_revalidation() -> None:
    """An entry stored fresh for 0 s is never a hit but lends its validators."""
    clock = FakeClock()
    cache = make(clock)
    stored = response()
    assert cache.put(key("u"), "/repos/o/r", stored, fresh_for=0.0)
    assert cache.get(key("u")) is None
    assert cache.get_stale(key("u")) is stored


def test_cache_put_fresh_for_never_exceeds_route_ttl() -> None:
    """fresh_for may shorten the route's TTL, never lengthen it."""
    clock = FakeClock()
    cache = make(clock)
    cache.put(key("u"), "/repos/o/r", response(), fresh_for=1e9)
    clock.advance(3600.0)
    assert cache.get(key("u")) is None


def test_cache_len_drops_entries_past_their_drop_time() -> None:
    """len counts stale entries still kept for revalidation, not dropped ones."""
    clock = FakeClock()
    cache = make(clock)
    cache.put(key("a"), "/repos/o/a", response())
    cache.put(key("b"), "/users.list", response())  # a 1800 s route
    clock.advance(2000.0)
    assert cache.get(key("b")) is None
    assert len(cache) == 2  # the stale 1800 s entry is kept for revalidation
    clock.advance(2000.0)
    assert len(cache) == 1  # and dropped once twice its TTL has passed


def test_cache_survives_8_threads_mixing_every_operation() -> None:
    """Without a lock, concurrent puts, gets, invalidations and len never
    raise, and the cache never holds more than maxsize (plus racing puts)."""
    clock = FakeClock()
    cache = make(clock, maxsize=64)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(2000):
                k = key(f"{GITHUB}/repos/o/r{(worker * 7 + n) % 200}")
                cache.put(k, "/repos/o/r", response())
                cache.get(k)
                cache.get_stale(k)
                if n % 50 == 0:
                    cache.invalidate_prefix(f"{GITHUB}/repos/o/r1")
                    len(cache)
                if n % 97 == 0:
                    cache.invalidate(k)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(cache) <= 64 + 8
