"""The resilience pipeline of one integration.

One :class:`Integration` owns every layer an outgoing call passes through, in
this order::

    cache -> single-flight -> bulkhead -> retry loop
        -> breaker -> limiter -> transport -> provider.classify -> metrics

Retries happen outside the breaker, so the breaker sees every attempt and an
open breaker stops a retry loop at once. The provider's reading of each
response (ok, retry, rate limited, auth, client error) drives every layer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json as jsonlib
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from ._breaker import CircuitBreaker
from ._bulkhead import Bulkhead
from ._cache import CachedResponse, ResponseCache, SingleFlight
from ._config import (
    IDEMPOTENT_METHODS,
    NO_FALLBACK,
    BreakerPolicy,
    BulkheadPolicy,
    CachePolicy,
    IntegrationConfig,
    RetryPolicy,
)
from ._exceptions import (
    BulkheadFullError,
    CallError,
    CircuitOpenError,
    ClientClosedError,
    ConfigurationError,
    HTTPStatusError,
    RateLimitedError,
    RetryExhaustedError,
    TransportError,
)
from ._limiter import WRITE_SCOPE, Limiter
from ._provider import Outcome, Provider
from ._records import AttemptRecord
from ._retry import BUDGET_EXHAUSTED, RetryBudget, backoff_delay, parse_retry_after
from ._transport import (
    Origin,
    Transport,
    join_url,
    redact_url,
    stored_response,
    to_response,
)

log = logging.getLogger(__name__)

Observer = Callable[[AttemptRecord], None]
EventSink = Callable[[str, str, str, float], None]  # integration, kind, detail, value

_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")
USER_AGENT = "revo-sdk"

#: Least seconds to wait after a rate limit, even one that said
#: ``Retry-After: 0``; it doubles with each further rate limit in a row on
#: the same scope, up to :data:`MAX_GROWTH` times.
RATE_LIMIT_FLOOR = 1.0
MAX_GROWTH = 64.0
#: Longest pause a server's answer can impose on a scope: a garbled or hostile
#: Retry-After (a year) must not stop an integration until the process ends.
#: GitHub's hourly quota, the longest documented window, fits.
MAX_SERVER_PAUSE = 3600.0
#: Change in the share of quota left (0-1) worth a ``rate_limit_remaining``
#: event.
QUOTA_REPORT_STEP = 0.01

#: Methods that read; every other one is a write, spaced by the limiter's
#: ``write_interval``.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Paths whose route and scope are remembered before the memo starts over.
_ROUTE_MEMO = 4096

#: Headers the validators of a stale cache entry are sent in.
_CONDITIONAL = ("If-None-Match", "If-Modified-Since")
#: Fields a 304 must not overwrite in the stored response (RFC 9111 4.3.4).
_KEEP_ON_304 = frozenset(
    {"content-length", "content-encoding", "content-type", "transfer-encoding"}
)


def route_of(path: str) -> str:
    """The route template of ``path`` for metrics: numeric segments become ``{id}``."""
    return _ID_SEGMENT.sub("/{id}", path) or "/"


def headers_fingerprint(headers: Mapping[str, str]) -> str:
    """A short digest of every request header, credentials included, so two
    callers share a cached response only if they asked in the same way
    (same token, ``Accept``, API version ...); no header value is kept."""
    text = "\n".join(sorted(f"{k.lower()}:{v}" for k, v in headers.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Integration:
    """Every layer of one integration, and the call that runs through them.

    Thread safety: one instance serves all threads; each layer owns its lock.

    :param observe: called with each :class:`AttemptRecord` (metrics, hooks).
    :param event: called as ``event(integration, kind, detail, value)`` for
        retries, cache hits, fallbacks and breaker changes.
    """

    def __init__(
        self,
        config: IntegrationConfig,
        provider: Provider,
        *,
        observe: Observer | None = None,
        event: EventSink | None = None,
        on_breaker_change: Callable[[str, str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        base_url = config.base_url or provider.default_base_url
        if not base_url:
            env = f"REVO_{config.name.upper()}_BASE_URL"
            raise ConfigurationError(
                f"integration {config.name!r} needs a base_url (provider "
                f"{provider.name!r} has no default); pass base_url= or set {env}"
            )
        timeouts = config.timeouts or provider.default_timeouts
        limiter = config.limiter or provider.default_limiter
        bulkhead = config.bulkhead or BulkheadPolicy()
        breaker = config.breaker or BreakerPolicy()
        self.retry = config.retry or RetryPolicy()
        self.max_wait = limiter.max_wait
        config = dataclasses.replace(
            config,
            base_url=base_url,
            timeouts=timeouts,
            retry=self.retry,
            breaker=breaker,
            limiter=limiter,
            cache=config.cache or provider.default_cache,
            bulkhead=bulkhead,
        )
        self.name = config.name
        self.config = config
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self.base_url).path
        self.origin = Origin.of(self.base_url)
        self._observe = observe
        self._event = event
        self._on_breaker_change = on_breaker_change
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()

        self.transport = Transport(
            integration=self.name,
            base_url=self.base_url,
            timeouts=timeouts,
            maxsize=bulkhead.max_concurrent,
            sensitive_headers=provider.sensitive_headers,
        )
        self.limiter = Limiter(limiter, integration=self.name, clock=clock, sleep=sleep)
        self.breaker = CircuitBreaker(
            breaker,
            integration=self.name,
            clock=clock,
            on_change=self._breaker_changed,
        )
        self.cache = ResponseCache(config.cache or CachePolicy(), clock=clock)
        self.flight = SingleFlight()
        self.bulkhead = Bulkhead(bulkhead, integration=self.name)
        #: The integration's retry budget (``None`` when the policy has none).
        self.budget = RetryBudget.from_policy(self.retry, clock=clock)
        self._space_writes = self.limiter.write_interval > 0

        #: Headers of every request; shared by calls that add none, so never
        #: mutated after construction.
        self.headers: dict[str, str] = {"User-Agent": USER_AGENT}
        self.headers.update(provider.default_headers(config))
        self.headers.update(config.headers)
        self.headers.update(provider.auth_headers(config))
        # Cached responses are keyed by who asked and how, without the token.
        self._fingerprint = headers_fingerprint(self.headers)
        # (method, path) -> (route, scope): the provider's scope_for is pure.
        self._routes: dict[tuple[str, str], tuple[str, str]] = {}
        # Rate limits in a row per paused scope; emptied by a success there.
        self._strikes: dict[str, int] = {}
        self._quota_seen: dict[str, float] = {}
        self._closed = False

    # -- the call -----------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
        idempotent: bool | None = None,
        idempotency_key: str | None = None,
        cache: bool = True,
        fallback: Any = NO_FALLBACK,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Run one call through the pipeline; see :meth:`Client.request`."""
        method = method.upper()
        if "://" in path or path.startswith("//"):
            url = join_url(self.base_url, path, self.origin)
            relative = self._relative_path(url)
        else:
            url = self.base_url + "/" + path.lstrip("/")
            relative = "/" + path.lstrip("/")
            if "?" in relative or "#" in relative:
                relative = relative.partition("?")[0].partition("#")[0]
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        request_headers = self.headers
        body: bytes | None = None
        if json is not None or data is not None or headers or idempotency_key:
            request_headers = dict(self.headers)
            body = _encode_body(json, data, request_headers)
            extra = dict(headers or {})
            if idempotency_key:
                extra["Idempotency-Key"] = idempotency_key
            if extra:
                # A caller's header replaces the integration's whatever its
                # case: never send both "Authorization" and "authorization".
                given = {name.lower() for name in extra}
                for name in [n for n in request_headers if n.lower() in given]:
                    del request_headers[name]
                request_headers.update(extra)
        may_resend = bool(idempotent or idempotency_key or method in IDEMPOTENT_METHODS)
        if idempotent is False:
            may_resend = False
        call = _Call(
            method,
            url,
            relative,
            request_headers,
            body,
            None if timeout is None else _timeout(timeout),
            may_resend,
            retry or self.retry,
        )
        if fallback is NO_FALLBACK:
            fallback = self.config.fallback
        try:
            if method == "GET" and cache:
                fingerprint = (
                    self._fingerprint
                    if request_headers is self.headers
                    else headers_fingerprint(request_headers)
                )
                return self._cached_get(call, fingerprint, fallback is NO_FALLBACK)
            response = self._guarded(call)
            if method not in ("GET", "HEAD", "OPTIONS") and response.status_code < 400:
                # A write makes what was read under its path stale.
                self.cache.invalidate_prefix(url.split("?", 1)[0])
            return response
        except CallError as exc:
            if fallback is NO_FALLBACK:
                raise
            self._emit("fallback", type(exc).__name__, 1.0)
            log.info("%s: using fallback after %s", self.name, type(exc).__name__)
            return fallback(exc) if callable(fallback) else fallback

    def _cached_get(
        self, call: _Call, fingerprint: str, stale_ok: bool
    ) -> requests.Response:
        """A GET through the cache: a fresh hit, else one upstream call shared
        by identical concurrent callers, revalidating a stale entry."""
        path = call.path
        if self.cache.ttl_for(path) <= 0:
            return self._guarded(call)
        key = f"GET {call.url}|{fingerprint}"
        hit = self.cache.get(key)
        if hit is not None:
            self._emit("cache_hit", route_of(path), 1.0)
            return _from_cached(hit)
        self._emit("cache_miss", route_of(path), 1.0)

        def fetch() -> requests.Response:
            return self._fetch(call, key)

        try:
            response, shared = self.flight.do(key, fetch)
        except CallError as exc:
            # stale-if-error: without a fallback of the caller's, an entry
            # past its freshness beats an exception.
            stale = self.cache.get_stale(key) if stale_ok else None
            if stale is None:
                raise
            self._emit("cache_stale", type(exc).__name__, 1.0)
            log.info(
                "%s: serving a stale cached response after %s",
                self.name,
                type(exc).__name__,
            )
            served = _from_cached(stale)
            served.stale = True  # type: ignore[attr-defined]  # documented extension
            return served
        # Waiters that shared one upstream call each get their own object.
        return _copy_response(response) if shared else response

    def _fetch(self, call: _Call, key: str) -> requests.Response:
        """One upstream GET for the cache, conditional when a stale entry
        has validators; a 304 refreshes that entry and is served from it."""
        generation = self.cache.generation  # a write meanwhile voids the store
        stale = self.cache.get_stale(key)
        sent = call
        if stale is not None and (stale.etag or stale.last_modified):
            conditional = dict(call.headers)
            if stale.etag:
                conditional[_CONDITIONAL[0]] = stale.etag
            if stale.last_modified:
                conditional[_CONDITIONAL[1]] = stale.last_modified
            sent = call.with_headers(conditional)
        response = self._guarded(sent)

        status = response.status_code
        if status == 304 and stale is not None and sent is not call:
            refreshed = _refreshed(stale, response)
            storable, fresh_for = _storability(_header(response, "cache-control"))
            if storable:
                self.cache.put(
                    key,
                    call.path,
                    refreshed,
                    fresh_for=fresh_for,
                    generation=generation,
                )
            else:
                self.cache.invalidate(key)
            self._emit("cache_revalidated", route_of(call.path), 1.0)
            return _from_cached(refreshed)
        if status == 200:
            storable, fresh_for = _storability(_header(response, "cache-control"))
            if storable:
                self.cache.put(
                    key,
                    call.path,
                    _to_cached(response),
                    fresh_for=fresh_for,
                    generation=generation,
                )
        return response

    def _guarded(self, call: _Call) -> requests.Response:
        if self._closed:
            raise ClientClosedError(f"{self.name}: the client is closed")
        try:
            with self.bulkhead.slot():
                return self._attempts(call)
        except BulkheadFullError:  # raised on entry only: _attempts never does
            self._emit("bulkhead_rejected", call.method, 1.0)
            raise

    def _attempts(self, call: _Call) -> requests.Response:
        policy = call.retry
        deadline = (
            math.inf if policy.deadline is None else self._clock() + policy.deadline
        )
        path = call.path
        known = self._routes.get((call.method, path))
        if known is None:
            known = (route_of(path), self.provider.scope_for(call.method, path))
            if len(self._routes) >= _ROUTE_MEMO:
                self._routes.clear()  # paths with ids are unbounded: start over
            self._routes[(call.method, path)] = known
        route, scope = known
        if self.budget is not None:
            self.budget.record_request()  # once per call, not per attempt
        attempt = 0
        while True:
            attempt += 1
            try:
                trial = self.breaker.acquire()
            except CircuitOpenError as exc:  # an open breaker ends retrying at once
                raise self._circuit_open(exc, attempt - 1) from None
            try:
                # Client-side pacing waits up to max_wait; a pause the server
                # asked for may be waited out up to the call's deadline.
                left = deadline - self._clock()
                waited = self.limiter.acquire(
                    "default", max_wait=min(self.max_wait, left), pause_wait=left
                )
                if scope != "default":
                    left -= waited
                    waited += self.limiter.acquire(
                        scope, max_wait=min(self.max_wait, left), pause_wait=left
                    )
                if self._space_writes and call.method not in _READS:
                    left = deadline - self._clock()
                    waited += self.limiter.acquire(
                        WRITE_SCOPE, max_wait=min(self.max_wait, left), pause_wait=left
                    )
            except BaseException:
                self.breaker.record(trial, None)  # no verdict on the dependency
                raise
            if waited > 0.0:
                self._emit("rate_limit_wait", scope, waited)
            started = time.perf_counter()
            try:
                response = self.transport.send(
                    call.method,
                    call.url,
                    headers=call.headers,
                    body=call.body,
                    timeout=call.timeout,
                )
            except TransportError as exc:
                self.breaker.record(trial, False)
                self._record(
                    call,
                    route,
                    0,
                    "transport_error",
                    type(exc).__name__,
                    started,
                    attempt,
                    waited,
                )
                if exc.may_have_reached_server and not call.may_resend:
                    raise  # a POST that may have been processed is never resent
                self._before_retry(call, exc, None, attempt, deadline, route, scope)
                continue
            except BaseException:
                self.breaker.record(trial, None)  # a bug or an interrupt, not a verdict
                raise

            headers = response.headers
            try:
                outcome = self.provider.classify(
                    response.status_code, headers, response.content, path=path
                )
            except BaseException:
                self.breaker.record(trial, None)
                raise
            self.breaker.record(
                trial, not outcome.is_failure, duration=time.perf_counter() - started
            )
            info = self.provider.rate_limit_info(headers)
            if info is not None:  # pace before the server has to say no
                self.limiter.observe(
                    info.scope, info.remaining, info.reset_at, limit=info.limit
                )
                if info.limit and info.remaining is not None:
                    self._quota_left(info.scope, info.remaining / info.limit)
            self._record(
                call,
                route,
                response.status_code,
                outcome.kind,
                outcome.reason,
                started,
                attempt,
                waited,
            )
            if outcome.kind not in ("retry", "rate_limited"):
                if self._strikes and outcome.kind == "ok":
                    self._strikes.pop(scope, None)
                    self._strikes.pop("default", None)
                return response
            if outcome.kind == "retry" and not call.may_resend:
                return response  # the server saw the request; resending is unsafe
            retry_after = outcome.retry_after
            if retry_after is None:
                retry_after = parse_retry_after(
                    _header(response, "retry-after"), now=time.time()
                )
            self._before_retry(
                call, response, outcome, attempt, deadline, route, scope, retry_after
            )

    def _circuit_open(self, exc: CircuitOpenError, sent: int) -> CircuitOpenError:
        """The breaker's refusal, with an epoch ``retry_at`` and an honest
        account of what this call already sent."""
        retry_at = time.time() + max(exc.retry_at - self._clock(), 0.0)
        if sent:
            message = (
                f"{self.name}: circuit breaker opened after {sent} attempt(s) of "
                "this call reached the network; no further attempt was sent"
            )
        else:
            message = f"{self.name}: circuit breaker is open; no request was sent"
        return CircuitOpenError(
            message, integration=self.name, retry_at=retry_at, sent=sent
        )

    def _before_retry(
        self,
        call: _Call,
        cause: TransportError | requests.Response,
        outcome: Outcome | None,
        attempt: int,
        deadline: float,
        route: str,
        scope: str,
        retry_after: float | None = None,
    ) -> None:
        """Wait before the next attempt, or raise when no attempt is left."""
        reason = outcome.reason if outcome else type(cause).__name__
        delay = backoff_delay(call.retry, attempt, self._rng)
        if retry_after is not None:
            delay = max(delay, retry_after)  # the server's hint is a floor
        limited = outcome is not None and outcome.kind == "rate_limited"
        if limited and outcome is not None:
            # A limit on a scope this call was not paced by (GitHub's
            # secondary limit, a bare 429) holds back the whole integration.
            paused = outcome.scope if outcome.scope == scope else "default"
            # Rate limits in a row on one scope wait ever longer: at least
            # the floor (even after "Retry-After: 0"), and a provider's
            # guessed wait grows too.
            strikes = self._strikes.get(paused, 0) + 1
            self._strikes[paused] = strikes
            growth = min(2.0 ** (strikes - 1), MAX_GROWTH)
            delay = max(delay, RATE_LIMIT_FLOOR * growth)
            if outcome.grows and retry_after is not None:
                delay = max(delay, retry_after * growth)
            # Pause the bucket the limit speaks for, so calls queued behind
            # this one wait too; the next attempt's acquire does the waiting.
            pause = min(delay, MAX_SERVER_PAUSE)
            self.limiter.pause(paused, pause)
            self._emit("rate_limit_pause", paused, pause)
        out_of_time = self._clock() + delay > deadline
        last_attempt = attempt >= call.retry.attempts
        # The retry budget keeps an outage from multiplying the load; a
        # server-named rate-limit wait is not a retry storm and skips it.
        refused = (
            not (last_attempt or out_of_time or limited)
            and self.budget is not None
            and not self.budget.can_retry()
        )
        if refused:
            reason = f"{reason}; {BUDGET_EXHAUSTED}"
            self._emit("retry_budget_refused", route, 1.0)
        if last_attempt or out_of_time or refused:
            if limited and out_of_time:
                raise RateLimitedError(
                    f"{self.name}: rate limited ({reason}); the next attempt would "
                    "pass the call's deadline",
                    integration=self.name,
                    retry_at=time.time() + delay,
                    scope=outcome.scope if outcome else "default",
                )
            last: CallError
            if isinstance(cause, TransportError):
                last = cause
            else:
                last = HTTPStatusError(
                    f"{self.name}: HTTP {cause.status_code} ({reason})",
                    integration=self.name,
                    status=cause.status_code,
                    outcome=outcome.kind if outcome else "",
                    response=cause,
                )
            raise RetryExhaustedError(
                f"{self.name}: gave up after {attempt} attempt(s); last: {reason}",
                integration=self.name,
                attempts=attempt,
                last_error=last,
            ) from last
        self._emit("retry", reason, delay)
        log.debug(
            "%s: retry %d of %s in %.3fs (%s)", self.name, attempt, route, delay, reason
        )
        if not limited and delay > 0:
            self._sleep(delay)

    # -- bookkeeping --------------------------------------------------------

    def _record(
        self,
        call: _Call,
        route: str,
        status: int,
        kind: str,
        reason: str,
        started: float,
        attempt: int,
        waited: float,
    ) -> None:
        if self._observe is None:
            return
        latency = time.perf_counter() - started
        self._observe(
            AttemptRecord(
                self.name,
                call.method,
                route,
                status,
                kind,
                reason,
                latency,
                attempt,
                time.time(),
                waited,
            )
        )

    def _quota_left(self, scope: str, share: float) -> None:
        """Report the share of a scope's quota left when it moved by a point
        or more: every GitHub answer carries it, and one event per call
        would double the metrics written for nothing."""
        last = self._quota_seen.get(scope)
        if last is None or abs(share - last) >= QUOTA_REPORT_STEP:
            self._quota_seen[scope] = share
            self._emit("rate_limit_remaining", scope, share)

    def _emit(self, kind: str, detail: str, value: float) -> None:
        if self._event is not None:
            self._event(self.name, kind, detail, value)

    def _breaker_changed(self, old: str, new: str) -> None:
        log.debug("%s: circuit breaker %s -> %s", self.name, old, new)
        self._emit("breaker_change", f"{old}->{new}", 1.0)
        if self._on_breaker_change is not None:
            self._on_breaker_change(self.name, old, new)

    def _relative_path(self, url: str) -> str:
        path = urlsplit(url).path
        if self._base_path and path.startswith(self._base_path):
            path = path[len(self._base_path) :]
        return path or "/"

    def snapshot(self) -> dict[str, Any]:
        """The state of every layer, for :meth:`Client.status`."""
        return {
            "provider": self.provider.name,
            "base_url": redact_url(self.base_url),
            "breaker": self.breaker.snapshot(),
            "limiter": self.limiter.snapshot(),
            "bulkhead": self.bulkhead.snapshot(),
            "cache": self.cache.snapshot(),
        }

    def close(self) -> None:
        self._closed = True
        self.bulkhead.shutdown(wait=True)
        self.transport.close()


class _Call:
    """One prepared call; shared by every attempt.

    ``path`` is the URL's path under the base URL, without the query.
    """

    __slots__ = (
        "body",
        "headers",
        "may_resend",
        "method",
        "path",
        "retry",
        "timeout",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: urllib3.Timeout | None,
        may_resend: bool,
        retry: RetryPolicy,
    ) -> None:
        self.retry = retry
        self.method = method
        self.url = url
        self.path = path
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.may_resend = may_resend

    def with_headers(self, headers: dict[str, str]) -> _Call:
        """The same call sent with ``headers``."""
        return _Call(
            self.method,
            self.url,
            self.path,
            headers,
            self.body,
            self.timeout,
            self.may_resend,
            self.retry,
        )


def _encode_body(
    json: Any, data: Mapping[str, Any] | bytes | str | None, headers: dict[str, str]
) -> bytes | None:
    if json is not None and data is not None:
        raise ValueError("pass json= or data=, not both")
    if json is not None:
        headers["Content-Type"] = "application/json"
        return jsonlib.dumps(json, separators=(",", ":")).encode()
    if data is None:
        return None
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return urlencode(data, doseq=True).encode()


def _timeout(value: float | tuple[float, float] | None) -> urllib3.Timeout | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        return urllib3.Timeout(connect=value[0], read=value[1])
    return urllib3.Timeout(connect=value, read=value)


def _to_cached(response: requests.Response) -> CachedResponse:
    return CachedResponse(
        status=response.status_code,
        headers=_header_items(response),
        body=response.content,
        url=response.url,
        stored_at=time.time(),
        etag=_header(response, "etag"),
        last_modified=_header(response, "last-modified"),
    )


def _from_cached(entry: CachedResponse) -> requests.Response:
    return stored_response(entry.status, entry.headers, entry.body, entry.url)


def _copy_response(response: requests.Response) -> requests.Response:
    copy = _from_cached(_to_cached(response))
    # A copy of a network answer says so; one of a revalidated entry does not.
    copy.from_cache = getattr(response, "from_cache", False)  # type: ignore[attr-defined]
    return copy


def _header(response: requests.Response, lower_name: str) -> str | None:
    """``response.headers.get(name)`` without the exception a miss costs.

    ``CaseInsensitiveDict`` answers ``get`` through ``__getitem__`` and a
    caught ``KeyError`` (about a microsecond); its storage, keyed by the
    lower-case name, answers at once. Other mappings take the public route.
    """
    headers = response.headers
    store = getattr(headers, "_store", None)
    if type(store) is dict:
        found = store.get(lower_name)
        return None if found is None else found[1]
    value = headers.get(lower_name)
    return None if value is None else str(value)


def _header_items(response: requests.Response) -> tuple[tuple[str, str], ...]:
    """The response's ``(name, value)`` pairs, names as the server sent them."""
    store = getattr(response.headers, "_store", None)
    if type(store) is dict:
        return tuple(store.values())
    return tuple(response.headers.items())


def _refreshed(entry: CachedResponse, answer: requests.Response) -> CachedResponse:
    """``entry`` updated by a 304 ``answer``: its new headers, validators and
    arrival time, the stored body."""
    headers = CaseInsensitiveDict(dict(entry.headers))
    for name, value in answer.headers.items():
        if name.lower() not in _KEEP_ON_304:
            headers[name] = value
    return dataclasses.replace(
        entry,
        headers=tuple(headers.items()),
        stored_at=time.time(),
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
    )


def _storability(cache_control: str | None) -> tuple[bool, float | None]:
    """``(may store, seconds fresh)`` from a response's ``Cache-Control``.

    ``no-store`` is never stored. ``no-cache`` and ``max-age=0`` are stored
    for revalidation only (fresh for 0 s). ``private`` is stored: this is
    one client's own cache, keyed by its credentials. Other directives leave
    the route's TTL in charge.
    """
    if not cache_control:
        return True, None
    fresh_for: float | None = None
    for part in cache_control.lower().split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name == "no-store":
            return False, None
        if name == "no-cache" or (name == "max-age" and value.strip(' "') == "0"):
            fresh_for = 0.0
    return True, fresh_for


__all__ = ["Integration", "route_of", "to_response"]
