"""WSGI middleware that receives webhooks in front of any WSGI application.

::

    from revo_sdk import Client
    from revo_sdk.contrib.wsgi import WebhookMiddleware

    client = Client.from_env()
    app = WebhookMiddleware(app, client, prefix="/webhooks")

``POST /webhooks/<integration>`` is answered by the middleware itself; every
other request goes to the wrapped application untouched.

What is at stake: a webhook sender treats a 2xx as "delivered" and will not
send again, so the middleware answers 2xx only after the delivery is
committed to the queue. Everything a sender can get wrong is answered with a
4xx that says why (and logged as one WARNING line, without the body or the
signature, and counted as a ``rejected`` webhook record); storage trouble is
a 503 with ``Retry-After`` so the sender tries again; a 500 means a bug in
this process and is logged with its traceback. The body is read once,
exactly ``Content-Length`` bytes, and never more than ``max_body``: a sender
cannot make the process buffer an unbounded body.

Statuses: 202 stored (or already stored), 400 malformed, 401 signature, 404
unknown integration, 405 method, 411 length required, 413 too large, 415
content type, 429 ingest rate limit (with ``Retry-After``), 503 storage
unavailable (with ``Retry-After``), or the provider's own reply to a
handshake (Slack's URL verification).

**A view at the same path.** With ``pass_through=True`` the middleware
still reads, verifies and stores every delivery first, then calls the
wrapped application with a rewound copy of the body (``wsgi.input`` is a
fresh :class:`io.BytesIO`, ``CONTENT_LENGTH`` its length), so a Flask view
at ``/webhooks/slack`` sees ``request.form`` and ``request.get_data()`` as
usual. The view's answer is sent if its status is 2xx (a slash command's
reply text, say; it is buffered in memory, so keep it small); otherwise,
or if it raises, the middleware's own 202 is sent, since the delivery is
stored and a retry would only be a duplicate.
Rejected deliveries, duplicates and handshakes never reach the view. The
environ key ``revo_sdk.webhook`` holds the
:class:`~revo_sdk.WebhookResponse` (queue ``event_id``). Other methods than
POST go to the application untouched in that mode.
"""

from __future__ import annotations

import http
import io
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Protocol

from revo_sdk._exceptions import ConfigurationError, StorageError, WebhookRejected
from revo_sdk._limiter import TokenBucket
from revo_sdk._webhooks import DEFAULT_MAX_BODY, WebhookManager, WebhookResponse

__all__ = ["ENVIRON_KEY", "WebhookMiddleware"]

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Seconds a sender is asked to wait after a 503.
RETRY_AFTER = 5

#: The environ key under which a pass-through view finds the stored delivery.
ENVIRON_KEY = "revo_sdk.webhook"

#: Most integrations given a rate-limit bucket of their own; names beyond
#: that (which only a sender probing paths produces) share one bucket.
MAX_BUCKETS = 256

_CHUNK = 64 * 1024
_DIGITS = re.compile(r"[0-9]{1,20}")
_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")
_RETRY_REASON = re.compile(r"[a-z_]{1,40}")
_OVERFLOW = "\0overflow"


class _HasWebhooks(Protocol):
    @property
    def webhooks(self) -> WebhookManager: ...


class _Rejection(Exception):
    """A request refused before it reached the webhook manager."""

    def __init__(self, status: int, reason: str, retry_after: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class WebhookMiddleware:
    """Answers ``POST {prefix}/<integration>`` through ``client.webhooks``.

    :param app: the WSGI application that gets every other request.
    :param client: anything with a ``webhooks`` attribute holding a
        :class:`~revo_sdk._webhooks.WebhookManager`, usually a
        :class:`revo_sdk.Client`; looked up on each request. When it also
        has ``metrics`` (a client does), Slack's retry headers are counted
        there as ``webhook_sender_retry`` events.
    :param prefix: the path under which webhooks are received.
    :param max_body: largest body read, in bytes (413 above).
    :param pass_through: after storing a delivery, call ``app`` with a
        rewound copy of the body and send its answer if it is 2xx (see the
        module docstring).
    :param ingest_rate: deliveries a second accepted per integration, with
        bursts of ``ingest_burst``; more are answered 429 with
        ``Retry-After`` before their body is read. ``None`` (the default)
        sets no limit.
    :param ingest_burst: the token bucket's size.
    :param clock: monotonic seconds, for the rate limit.

    Thread safety: any number of server threads may call it at once; the
    only shared state is the rate-limit buckets, which lock themselves.
    """

    def __init__(
        self,
        app: WSGIApp,
        client: _HasWebhooks,
        prefix: str = "/webhooks",
        *,
        max_body: int = DEFAULT_MAX_BODY,
        pass_through: bool = False,
        ingest_rate: float | None = None,
        ingest_burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ingest_rate is not None:
            try:
                TokenBucket(ingest_rate, ingest_burst)  # validates the settings
            except ValueError as exc:
                raise ConfigurationError(f"ingest rate limit: {exc}") from None
        self.app = app
        self.client = client
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.max_body = max_body
        self.pass_through = pass_through
        self.ingest_rate = ingest_rate
        self.ingest_burst = ingest_burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._buckets_lock = threading.Lock()
        self._route = re.compile(re.escape(self.prefix) + r"/([^/]+)/?")

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        match = self._route.fullmatch(environ.get("PATH_INFO", "") or "")
        if match is None:
            return self.app(environ, start_response)
        integration = match.group(1)
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if self.pass_through and method != "POST":
            return self.app(environ, start_response)
        try:
            body, answer = self._handle(integration, method, environ)
        except _Rejection as exc:
            _log_rejection(integration, exc.status, exc.reason)
            self._count_rejection(integration, exc.reason)
            return _reply(start_response, *_error(exc.status, exc.reason, exc))
        except WebhookRejected as exc:
            # The manager has logged and counted it already.
            return _reply(start_response, *_error(exc.status, exc.reason))
        except StorageError:
            log.exception("webhook %s: storage failed", _shown(integration))
            return _reply(start_response, *_error(503, "storage_unavailable"))
        except Exception:
            log.exception("webhook %s: internal error", _shown(integration))
            return _reply(start_response, *_error(500, "internal_error"))

        if self.pass_through and answer.event_id is not None and not answer.duplicate:
            passed = self._call_app(integration, environ, body, answer)
            if passed is not None:
                status_line, headers, chunks = passed
                start_response(status_line, headers)
                return chunks
        return _reply(start_response, answer.status, answer.content_type, answer.body)

    def _handle(
        self, integration: str, method: str, environ: dict[str, Any]
    ) -> tuple[bytes, WebhookResponse]:
        if method != "POST":
            raise _Rejection(405, "method_not_allowed")
        self._check_rate(integration)
        body = self._read_body(environ)
        headers = _headers(environ)
        self._note_sender_retry(integration, headers)
        content_type = environ.get("CONTENT_TYPE", "") or ""
        answer = self.client.webhooks.receive(integration, headers, body, content_type)
        return body, answer

    # -- ingest rate limit ---------------------------------------------------

    def _check_rate(self, integration: str) -> None:
        if self.ingest_rate is None:
            return
        bucket = self._bucket(integration if _NAME.fullmatch(integration) else "?")
        if bucket.reserve(max_wait=0.0) is None:
            retry_after = max(1, math.ceil(1.0 / bucket.rate))
            raise _Rejection(429, "rate_limited", retry_after)

    def _bucket(self, name: str) -> TokenBucket:
        bucket = self._buckets.get(name)
        if bucket is not None:
            return bucket
        assert self.ingest_rate is not None  # checked by the caller
        with self._buckets_lock:
            if name not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
                name = _OVERFLOW
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = TokenBucket(
                    self.ingest_rate, self.ingest_burst, clock=self._clock
                )
                self._buckets[name] = bucket
        return bucket

    # -- body ----------------------------------------------------------------

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        stream = environ.get("wsgi.input")
        raw = str(environ.get("CONTENT_LENGTH") or "").strip()
        if not raw:
            encoding = str(environ.get("HTTP_TRANSFER_ENCODING", ""))
            chunked = "chunked" in encoding.lower()
            # Without a length, reading to the end is only safe when the
            # server promises the stream ends with the request.
            if chunked and environ.get("wsgi.input_terminated") and stream:
                return self._read_to_end(stream)
            raise _Rejection(411, "length_required")
        if not _DIGITS.fullmatch(raw):
            raise _Rejection(400, "invalid_content_length")
        length = int(raw)
        if length > self.max_body:
            raise _Rejection(413, "too_large")
        if length == 0 or stream is None:
            return b""
        return _read_exactly(stream, length)

    def _read_to_end(self, stream: Any) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = _read_chunk(stream, min(_CHUNK, self.max_body + 1 - size))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            size += len(chunk)
            if size > self.max_body:
                raise _Rejection(413, "too_large")

    # -- observation -----------------------------------------------------------

    def _count_rejection(self, integration: str, reason: str) -> None:
        # Rejections the manager never saw are counted like its own ones.
        emit = getattr(self.client.webhooks, "_emit", None)
        if emit is None:
            return
        try:
            emit(_shown(integration), "", "rejected", reason, None)
        except Exception:
            log.exception("counting a webhook rejection failed")

    def _note_sender_retry(self, integration: str, headers: dict[str, str]) -> None:
        number = headers.get("X-Slack-Retry-Num")
        if number is None:
            return
        reason = headers.get("X-Slack-Retry-Reason", "")
        shown = reason if _RETRY_REASON.fullmatch(reason) else "other"
        log.debug(
            "webhook %s: sender retry %s (%s)",
            _shown(integration),
            number[:10],
            shown,
        )
        metrics = getattr(self.client, "metrics", None)
        record = getattr(metrics, "record_event", None)
        if record is None or not _NAME.fullmatch(integration):
            return
        try:
            record(integration, "webhook_sender_retry", shown, 1.0)
        except Exception:
            log.exception("counting a webhook sender retry failed")

    # -- pass-through ------------------------------------------------------------

    def _call_app(
        self,
        integration: str,
        environ: dict[str, Any],
        body: bytes,
        answer: WebhookResponse,
    ) -> tuple[str, list[tuple[str, str]], list[bytes]] | None:
        """The app's answer for a stored delivery if it is 2xx, else ``None``."""
        inner = dict(environ)
        inner["wsgi.input"] = io.BytesIO(body)
        inner["CONTENT_LENGTH"] = str(len(body))
        inner.pop("HTTP_TRANSFER_ENCODING", None)
        inner[ENVIRON_KEY] = answer
        captured: list[tuple[str, list[tuple[str, str]]]] = []
        written: list[bytes] = []

        def start(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: tuple[type[BaseException], BaseException, TracebackType]
            | None = None,
        ) -> Callable[[bytes], None]:
            captured[:] = [(status, list(headers))]
            return written.append

        try:
            result = self.app(inner, start)
            try:
                chunks = [*written, *result]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception(
                "webhook %s: the application failed on stored event %s; answering 202",
                _shown(integration),
                answer.event_id,
            )
            return None
        if not captured or captured[0][0][:1] != "2":
            log.warning(
                "webhook %s: the application answered %s to stored event %s;"
                " answering 202",
                _shown(integration),
                captured[0][0][:3] if captured else "nothing",
                answer.event_id,
            )
            return None
        return captured[0][0], captured[0][1], chunks


def _read_chunk(stream: Any, size: int) -> bytes:
    try:
        chunk = stream.read(size)
    except (OSError, ValueError):
        # A connection reset, or a server's stream refusing to read on.
        raise _Rejection(400, "incomplete_body") from None
    return chunk if isinstance(chunk, bytes) else b""


def _read_exactly(stream: Any, length: int) -> bytes:
    parts: list[bytes] = []
    left = length
    while left > 0:
        chunk = _read_chunk(stream, min(left, _CHUNK))
        if not chunk:  # the sender closed the connection early
            raise _Rejection(400, "incomplete_body")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
            headers[name] = value
    for key, name in (
        ("CONTENT_TYPE", "Content-Type"),
        ("CONTENT_LENGTH", "Content-Length"),
    ):
        if environ.get(key):
            headers[name] = environ[key]
    return headers


def _error(
    status: int, reason: str, rejection: _Rejection | None = None
) -> tuple[int, str, bytes, tuple[tuple[str, str], ...]]:
    body = json.dumps({"error": reason}).encode()
    extra: tuple[tuple[str, str], ...] = ()
    if status == 503:
        extra = (("Retry-After", str(RETRY_AFTER)),)
    elif status == 429:
        wait = rejection.retry_after if rejection is not None else 1
        extra = (("Retry-After", str(max(wait, 1))),)
    elif status == 405:
        extra = (("Allow", "POST"),)
    return status, "application/json", body, extra


def _reply(
    start_response: StartResponse,
    status: int,
    content_type: str,
    body: bytes,
    extra: tuple[tuple[str, str], ...] = (),
) -> list[bytes]:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        *extra,
    ]
    start_response(f"{status} {phrase}", headers)
    return [body]


def _shown(integration: str) -> str:
    return integration if re.fullmatch(r"[A-Za-z0-9_]{1,100}", integration) else "?"


def _log_rejection(integration: str, status: int, reason: str) -> None:
    log.warning(
        "webhook rejected: integration=%s status=%d reason=%s",
        _shown(integration),
        status,
        reason,
    )
