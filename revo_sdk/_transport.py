"""Sending one HTTP request with urllib3 and wrapping the answer.

The pipeline talks to urllib3 pools directly (a ``requests.Session`` costs
about three times as much per call, a third of it re-reading proxy settings
from the environment) and hands back real :class:`requests.Response` objects.
urllib3's own retries and redirects are switched off: the pipeline owns
retries, and redirects are followed here so credentials can be dropped when a
redirect leaves the integration's host.
"""

from __future__ import annotations

import datetime
import logging
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.connectionpool import connection_from_url
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import parse_url

from ._config import Timeouts
from ._exceptions import (
    CallTimeoutError,
    ResponseTooLargeError,
    TooManyRedirectsError,
    TransportError,
    UnsafeURLError,
)

log = logging.getLogger(__name__)

#: Headers never sent to another host and never logged.
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "private-token"}
)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5

#: Largest response body read into memory (after content decoding); a larger
#: one raises :class:`ResponseTooLargeError` instead of exhausting memory.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host and port: what "the same host" means for credentials."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of ``url`` as urllib3 (which sends the request) reads it.

        Parsing with the sender's own parser matters: ``urlsplit`` and
        urllib3 disagree on URLs such as ``http://a:1\\@b:2/``, and a check
        made with one parser would let the other send credentials elsewhere.
        """
        try:
            parts = parse_url(url)
        except LocationParseError:
            raise UnsafeURLError(f"invalid URL {redact_url(url)!r}") from None
        scheme = (parts.scheme or "").lower()
        default = 443 if scheme == "https" else 80
        return cls(scheme, (parts.host or "").lower(), parts.port or default)


def redact_url(url: str) -> str:
    """``url`` without user info and query string, safe for messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<an invalid URL>"
    return f"{parts.scheme}://{host}{parts.path}"


def join_url(base_url: str, path: str, origin: Origin) -> str:
    """The absolute URL for ``path`` under ``base_url``.

    A relative path is appended to the base URL's path. An absolute URL is
    accepted only when it points at the integration's own origin, so a path
    taken from user input can never carry credentials elsewhere.
    """
    if "://" in path or path.startswith("//"):
        authority = path.split("/", 3)[2]  # "scheme://AUTHORITY/..." or "//AUTHORITY/"
        if "\\" in path or "@" in authority:
            # User info or a backslash in an absolute URL is never needed to
            # reach an API, and is how parsers are tricked: refuse outright.
            raise UnsafeURLError(
                f"refusing {redact_url(path)!r}: user info and backslashes are "
                "not allowed in absolute URLs"
            )
        if Origin.of(path) != origin:
            raise UnsafeURLError(
                f"refusing to send credentials to {redact_url(path)!r}: "
                f"only {origin.scheme}://{origin.host}:{origin.port} is allowed "
                "for this integration"
            )
        return path
    return base_url.rstrip("/") + "/" + path.lstrip("/")


class Transport:
    """One urllib3 pool manager for one integration.

    Thread safety: shared by every thread calling the integration (urllib3
    pools are thread-safe).
    """

    def __init__(
        self,
        *,
        integration: str,
        base_url: str,
        timeouts: Timeouts,
        maxsize: int = 10,
        sensitive_headers: frozenset[str] = frozenset(),
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.integration = integration
        self.max_response_bytes = max_response_bytes
        self.origin = Origin.of(base_url)
        if self.origin.scheme not in ("http", "https") or not self.origin.host:
            raise UnsafeURLError(f"base URL {redact_url(base_url)!r} is not http(s)")
        self.timeout = urllib3.Timeout(connect=timeouts.connect, read=timeouts.read)
        self.sensitive = SENSITIVE_HEADERS | {h.lower() for h in sensitive_headers}
        # Proxy settings are read once here, not on every call.
        proxy = _proxy_for(base_url)
        self.pool: urllib3.PoolManager
        # Without a proxy, requests to the integration's own origin go
        # straight to one connection pool: the pool manager would parse each
        # URL again to find that pool (about a tenth of a request's CPU time).
        self._direct: urllib3.HTTPConnectionPool | None = None
        parts = urlsplit(base_url)
        self._prefix = f"{parts.scheme}://{parts.netloc}/"
        if proxy:
            self.pool = urllib3.ProxyManager(
                proxy, maxsize=maxsize, retries=False, timeout=self.timeout
            )
        else:
            self.pool = urllib3.PoolManager(
                maxsize=maxsize, retries=False, timeout=self.timeout
            )
            self._direct = connection_from_url(
                f"{self.origin.scheme}://{parts.netloc}",
                maxsize=maxsize,
                retries=False,
                timeout=self.timeout,
            )

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None,
        timeout: urllib3.Timeout | None = None,
    ) -> requests.Response:
        """Send one request, following redirects, and return the response.

        Raises :class:`TransportError` (or its :class:`CallTimeoutError`
        subclass) when no HTTP answer arrives.
        """
        start = time.perf_counter()
        for _ in range(MAX_REDIRECTS + 1):
            raw = self._urlopen(method, url, headers, body, timeout)
            location = raw.headers.get("Location")
            if raw.status not in REDIRECT_STATUSES or not location:
                data = self._read_body(raw, method, url)
                return to_response(raw, url, time.perf_counter() - start, data)
            raw.drain_conn()
            raw.release_conn()
            next_url = urljoin(url, location)
            if Origin.of(next_url) != self.origin:
                # Leaving the host: credentials stay behind (never re-added).
                headers = {
                    k: v for k, v in headers.items() if k.lower() not in self.sensitive
                }
                log.debug("redirect to another host; credentials dropped")
            if raw.status == 303 or (raw.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers = {
                    k: v for k, v in headers.items() if k.lower() != "content-type"
                }
            url = next_url
        raise TooManyRedirectsError(
            f"{self.integration}: more than {MAX_REDIRECTS} redirects, last to "
            f"{redact_url(url)}",
            integration=self.integration,
        )

    def _read_body(self, raw: urllib3.BaseHTTPResponse, method: str, url: str) -> bytes:
        """The decoded body, at most ``max_response_bytes`` of it."""
        limit = self.max_response_bytes
        declared = raw.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raw.close()  # never read what is already known to be too big
            raise self._too_large(method, url)
        try:
            # A declared, unencoded length within the limit is read whole
            # (urllib3's fast path); anything else (chunked, or compressed,
            # whose decoded size the length does not bound) up to the limit.
            whole = (
                declared is not None
                and declared.isdigit()
                and not raw.headers.get("Content-Encoding")
            )
            data = raw.read() if whole else raw.read(limit + 1)
        except ReadTimeoutError:
            raw.close()
            raise CallTimeoutError(
                f"{self.integration}: read timed out for {method} {redact_url(url)}",
                integration=self.integration,
                may_have_reached_server=True,
            ) from None
        except (ProtocolError, SSLError, HTTPError, OSError) as exc:
            raw.close()
            raise TransportError(
                f"{self.integration}: {method} {redact_url(url)} failed while "
                f"reading the body: {_short(exc)}",
                integration=self.integration,
                may_have_reached_server=True,
            ) from None
        if len(data) > limit:
            raw.close()
            raise self._too_large(method, url)
        raw.release_conn()
        return data

    def _too_large(self, method: str, url: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"{self.integration}: the answer to {method} {redact_url(url)} is over "
            f"{self.max_response_bytes} bytes",
            integration=self.integration,
        )

    def _urlopen(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: urllib3.Timeout | None,
    ) -> urllib3.BaseHTTPResponse:
        direct = self._direct
        try:
            if direct is not None and url.startswith(self._prefix):
                # The request target is the URL without its origin.
                return direct.urlopen(
                    method,
                    url[len(self._prefix) - 1 :],
                    body=body,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    assert_same_host=False,
                    timeout=timeout or self.timeout,
                    preload_content=False,
                )
            return self.pool.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                timeout=timeout or self.timeout,
                preload_content=False,
            )
        except (ConnectTimeoutError, NewConnectionError) as exc:
            # Nothing was sent: safe to retry whatever the method.
            # urllib3 makes NewConnectionError a ConnectTimeoutError subclass:
            # test for the refusal first, or it would read as a timeout.
            cls = (
                TransportError
                if isinstance(exc, NewConnectionError)
                else CallTimeoutError
            )
            host = self.origin.host
            raise cls(
                f"{self.integration}: cannot connect to {host}: {_short(exc)}",
                integration=self.integration,
            ) from None
        except ReadTimeoutError:
            raise CallTimeoutError(
                f"{self.integration}: read timed out for {method} {redact_url(url)}",
                integration=self.integration,
                may_have_reached_server=True,
            ) from None
        except (ProtocolError, SSLError, ProxyError, HTTPError, OSError) as exc:
            raise TransportError(
                f"{self.integration}: {method} {redact_url(url)} failed: {_short(exc)}",
                integration=self.integration,
                may_have_reached_server=True,
            ) from None

    def close(self) -> None:
        self.pool.clear()
        if self._direct is not None:
            self._direct.close()


# The attributes of a fresh requests.Response, copied into each new one:
# Response() builds a cookie policy and several objects a response read from
# urllib3 replaces at once.
_BLANK = requests.Response().__dict__


def to_response(
    raw: urllib3.BaseHTTPResponse, url: str, elapsed: float, data: bytes | None = None
) -> requests.Response:
    """A :class:`requests.Response` holding ``raw``'s status, headers and body
    (``data`` when the body was already read, else ``raw.data``)."""
    response = _blank_response()
    state = response.__dict__
    headers = _headers_of(raw.headers)
    state["headers"] = headers
    state["status_code"] = raw.status
    state["_content"] = raw.data if data is None else data
    state["url"] = url
    state["reason"] = raw.reason or ""
    state["encoding"] = _encoding(headers.get("content-type"))
    state["elapsed"] = datetime.timedelta(seconds=elapsed)
    state["from_cache"] = False  # documented extensions
    state["stale"] = False
    return response


def stored_response(
    status: int, header_pairs: Iterable[tuple[str, str]], body: bytes, url: str
) -> requests.Response:
    """A :class:`requests.Response` rebuilt from stored parts (a cache entry),
    with ``from_cache`` set. ``header_pairs`` holds each name once."""
    response = _blank_response()
    state = response.__dict__
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict.__new__(CaseInsensitiveDict)
    store = {name.lower(): (name, value) for name, value in header_pairs}
    headers._store = store  # type: ignore[attr-defined]  # requests' own storage
    state["headers"] = headers
    state["status_code"] = status
    state["_content"] = body
    state["url"] = url
    found = store.get("content-type")
    state["encoding"] = _encoding(None if found is None else found[1])
    state["from_cache"] = True  # documented extensions
    state["stale"] = False
    return response


def _blank_response() -> requests.Response:
    response = requests.Response.__new__(requests.Response)
    state = response.__dict__
    state.update(_BLANK)
    state["cookies"] = RequestsCookieJar()
    state["history"] = []
    state["elapsed"] = datetime.timedelta(0)
    return response


def _headers_of(raw: Mapping[str, str]) -> CaseInsensitiveDict[str]:
    """``CaseInsensitiveDict(raw)``, three times faster for urllib3's headers.

    urllib3's ``HTTPHeaderDict`` keeps ``lower-name -> [name, *values]`` in
    ``_container``; when that is not there (another urllib3), the public
    route is taken. Repeated fields are joined with ``", "`` either way.
    """
    container = getattr(raw, "_container", None)
    if type(container) is not dict:
        return CaseInsensitiveDict(raw)
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict.__new__(CaseInsensitiveDict)
    headers._store = {  # type: ignore[attr-defined]  # requests' own storage
        key: (fields[0], fields[1] if len(fields) == 2 else ", ".join(fields[1:]))
        for key, fields in container.items()
    }
    return headers


_ENCODINGS: dict[str | None, str | None] = {}


def _encoding(content_type: str | None) -> str | None:
    """requests' encoding for ``content_type``, remembered per distinct value."""
    try:
        return _ENCODINGS[content_type]
    except KeyError:
        pass
    found = get_encoding_from_headers(
        CaseInsensitiveDict({"content-type": content_type} if content_type else {})
    )
    if len(_ENCODINGS) < 256:  # servers send few distinct content types
        _ENCODINGS[content_type] = found
    return found


def _proxy_for(url: str) -> str | None:
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def _short(exc: BaseException) -> str:
    # urllib3 messages can embed the pool's repr; keep the first useful part.
    text = str(
        exc.args[-1] if isinstance(exc, NewConnectionError) and exc.args else exc
    )
    return text[:200]
