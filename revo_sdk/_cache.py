"""The response cache for GETs, and single-flight sharing of identical calls."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from ._config import CachePolicy

__all__ = ["CachedResponse", "ResponseCache", "SingleFlight"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored response: enough to rebuild a :class:`requests.Response`.

    ``stored_at`` is the epoch time the response arrived; ``etag`` and
    ``last_modified`` are its validators, kept for conditional requests.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    url: str
    stored_at: float
    etag: str | None = None
    last_modified: str | None = None


#: Paths whose TTL is remembered before the memo starts over.
_TTL_MEMO = 4096

# A stored entry: the response, when it stops being fresh, and when the
# cache may drop it (later, so a stale entry can still lend its validators).
_Entry = tuple[CachedResponse, float, float]


def compile_route(pattern: str) -> re.Pattern[str]:
    """Turn a route pattern into a regular expression matching whole paths.

    A segment that is exactly ``*`` matches one non-empty path segment, a
    ``*`` inside a segment matches any characters but ``/`` (``/users.*``
    matches ``/users.info``), and a final ``**`` segment matches any rest of
    the path, nothing included (``/a/**`` matches ``/a``, ``/a/`` and
    ``/a/b/c``).
    """
    segments = pattern.split("/")
    rest = ""
    if segments[-1] == "**":
        segments.pop()
        rest = "(?:/.*)?" if segments else ".*"
    parts = []
    for segment in segments:
        if segment == "*":
            parts.append("[^/]+")
        else:
            parts.append("[^/]*".join(re.escape(p) for p in segment.split("*")))
    return re.compile("/".join(parts) + rest, re.DOTALL)


class ResponseCache:
    """A bounded, per-integration cache of fresh GET responses.

    Keys are built by the client as ``"<METHOD> <url>|<vary>..."``; the TTL
    of an entry comes from the policy's route patterns, matched against the
    request path with the query string ignored. Entries stay in the cache
    for one TTL past freshness so that :meth:`get_stale` can offer their
    validators for a conditional request; :meth:`get` returns fresh ones
    only. The least recently used entry goes first when the cache is full.

    Thread-safety: shared by all threads of an integration, with no lock.
    Every step is one operation of a C-implemented ``OrderedDict`` with
    string keys, which runs whole while the interpreter lock is held (and
    under a free-threaded build, under the dictionary's own lock); a step
    that loses a race (the key another thread just dropped) is skipped.
    Measured here, a lock around even one dictionary call makes four
    threads three to four times slower than one, which is why there is
    none. The worst a race can do is drop an entry early or miscount a
    hit. Entries past their drop time are removed when met (and by
    ``len``), least recently used ones when the cache is full.

    :param policy: route TTLs, default TTL and size.
    :param clock: monotonic time source in seconds.
    """

    def __init__(
        self, policy: CachePolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._enabled = policy.enabled
        self._routes = [(compile_route(p), float(ttl)) for p, ttl in policy.route_ttls]
        self._default_ttl = float(policy.default_ttl)
        # Path -> TTL, so route patterns are matched once per path; plain
        # dict operations, atomic under the GIL, need no lock.
        self._ttls: dict[str, float] = {}
        self._clock = clock
        self._maxsize = policy.maxsize
        # Least recently used first.
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._hits = 0
        self._misses = 0
        # Moves on every invalidation: a response fetched before a write
        # finished must not be stored after that write dropped the old one.
        self._generation = 0

    def ttl_for(self, path: str) -> float:
        """Seconds a response for ``path`` stays fresh; ``0`` means "do not cache".

        ``path`` may carry a query string, which is ignored, or be a whole
        URL, whose path is used.
        """
        known = self._ttls.get(path)
        if known is not None:
            return known
        given = path
        if "://" in path:
            path = urlsplit(path).path or "/"
        else:
            path = path.partition("?")[0].partition("#")[0]
        ttl = self._default_ttl
        for regex, route_ttl in self._routes:
            if regex.fullmatch(path):
                ttl = route_ttl
                break
        if len(self._ttls) >= _TTL_MEMO:
            self._ttls.clear()  # paths with ids are unbounded: start over
        self._ttls[given] = ttl
        return ttl

    def get(self, key: str) -> CachedResponse | None:
        """The fresh response stored under ``key``, or ``None``."""
        now = self._clock()
        cache = self._cache
        entry = cache.get(key)
        if entry is not None:
            if now < entry[1]:
                _touch(cache, key)
                self._hits += 1  # a statistic: a lost update is harmless
                return entry[0]
            if now >= entry[2]:
                cache.pop(key, None)
        self._misses += 1
        return None

    def get_stale(self, key: str) -> CachedResponse | None:
        """The response under ``key`` even if no longer fresh, or ``None``.

        Meant for revalidation: send its ``etag`` / ``last_modified`` in a
        conditional request and :meth:`put` it again on a 304.
        """
        now = self._clock()
        cache = self._cache
        entry = cache.get(key)
        if entry is None:
            return None
        if now >= entry[2]:
            cache.pop(key, None)
            return None
        _touch(cache, key)
        return entry[0]

    def put(
        self,
        key: str,
        path: str,
        value: CachedResponse,
        *,
        fresh_for: float | None = None,
        generation: int | None = None,
    ) -> bool:
        """Store ``value`` under ``key`` for the TTL of ``path``.

        :param fresh_for: seconds the entry counts as fresh when that is less
            than the TTL (``0`` for a response that must be revalidated before
            each use, such as ``Cache-Control: no-cache``); the entry is kept
            for revalidation for twice the TTL either way.
        :param generation: :attr:`generation` read before the response was
            fetched; when an invalidation happened since, nothing is stored.
        :return: ``False`` (and nothing stored) when the cache is disabled,
            the path's TTL is 0, or an invalidation overtook the fetch.
        """
        if not self._enabled:
            return False
        if generation is not None and generation != self._generation:
            return False
        ttl = self.ttl_for(path)
        if ttl <= 0.0:
            return False
        fresh = ttl if fresh_for is None else min(max(fresh_for, 0.0), ttl)
        now = self._clock()
        entry = (value, now + fresh, now + 2.0 * ttl)
        cache = self._cache
        cache[key] = entry
        _touch(cache, key)
        if len(cache) > self._maxsize:
            try:  # noqa: SIM105 - cheaper than contextlib.suppress on this path
                cache.popitem(last=False)
            except KeyError:  # emptied meanwhile by another thread
                pass
        return True

    @property
    def generation(self) -> int:
        """A number that changes whenever entries are invalidated."""
        return self._generation

    def invalidate(self, key: str) -> bool:
        """Forget ``key``; ``True`` if it was stored."""
        self._generation += 1
        return self._cache.pop(key, None) is not None

    def invalidate_prefix(self, prefix: str) -> int:
        """Forget every entry whose URL starts with ``prefix``; return how many.

        The URL is the part of the key between the method and the first
        ``|``, so ``"https://api.github.com/repos/o/r"`` drops that
        repository's entries under any method and variant (and, being a
        plain prefix, those of ``.../repos/o/r2`` too: dropping too much
        only costs a refetch).
        """
        self._generation += 1
        doomed = [k for k in _keys(self._cache) if _url_of(k).startswith(prefix)]
        for key in doomed:
            self._cache.pop(key, None)
        return len(doomed)

    def clear(self) -> None:
        """Forget every entry."""
        self._generation += 1
        self._cache.clear()

    def __len__(self) -> int:
        """Entries held, stale ones kept for revalidation included."""
        now = self._clock()
        cache = self._cache
        for key in _keys(cache):
            entry = cache.get(key)
            if entry is not None and now >= entry[2]:
                cache.pop(key, None)
        return len(cache)

    def snapshot(self) -> dict[str, object]:
        """``enabled``, ``size``, ``maxsize``, ``hits`` and ``misses``."""
        size = len(self)
        hits, misses = self._hits, self._misses
        return {
            "enabled": self._enabled,
            "size": size,
            "maxsize": self.policy.maxsize,
            "hits": hits,
            "misses": misses,
        }


def _touch(cache: OrderedDict[str, _Entry], key: str) -> None:
    """Mark ``key`` as just used, unless another thread dropped it meanwhile."""
    try:  # noqa: SIM105 - cheaper than contextlib.suppress on every hit
        cache.move_to_end(key)
    except KeyError:
        pass


def _keys(cache: OrderedDict[str, _Entry]) -> list[str]:
    """A snapshot of the keys; ``list()`` copies them in one C-level pass."""
    for _ in range(10):
        try:
            return list(cache)
        except RuntimeError:  # changed size during the copy: try again
            continue
    return []


def _url_of(key: str) -> str:
    return key.partition(" ")[2].partition("|")[0]


class _Call:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        # Held while the call runs; waiters block on it. A bare lock is a
        # fifth of the cost of an Event, and most calls have no waiter.
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None

    def wait(self) -> None:
        """Return once the first caller has finished."""
        self.done.acquire()
        self.done.release()


class SingleFlight:
    """Lets identical concurrent calls share one execution.

    While a call for a key runs, later callers with the same key wait for it
    and get its result (or its exception) instead of running their own. The
    key is forgotten as soon as the call returns, so a later call runs anew.

    Thread-safety: meant to be shared by many threads; the function runs in
    the thread that came first, with no lock held. Joining and leaving are
    single dictionary operations (``setdefault``, ``pop``) on string keys,
    atomic in CPython, so no lock guards them (a lock around a dictionary
    call collapses under threads; see :class:`ResponseCache`).
    """

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """Run ``fn``, or wait for the identical call already running.

        :return: ``(result, shared)``; ``shared`` is ``True`` when this caller
            received the result of another caller's execution.
        :raises BaseException: whatever ``fn`` raised, in every waiting caller.
        """
        fresh = _Call()
        call = self._calls.setdefault(key, fresh)

        if call is not fresh:
            call.wait()
            if call.error is not None:
                raise call.error
            return cast(T, call.result), True

        try:
            call.result = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            self._calls.pop(key, None)
            call.done.release()
        return cast(T, call.result), False
