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
signature); storage trouble is a 503 with ``Retry-After`` so the sender tries
again; a 500 means a bug in this process and is logged with its traceback.
The body is read once, exactly ``Content-Length`` bytes, and never more than
``max_body``: a sender cannot make the process buffer an unbounded body.

Statuses: 202 stored (or already stored), 400 malformed, 401 signature, 404
unknown integration, 405 method, 411 length required, 413 too large, 415
content type, 503 storage unavailable, or the provider's own reply to a
handshake (Slack's URL verification).
"""

from __future__ import annotations

import http
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from revo_sdk._exceptions import StorageError, WebhookRejected
from revo_sdk._webhooks import DEFAULT_MAX_BODY, WebhookManager, WebhookResponse

__all__ = ["WebhookMiddleware"]

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Seconds a sender is asked to wait after a 503.
RETRY_AFTER = 5

_CHUNK = 64 * 1024
_DIGITS = re.compile(r"[0-9]{1,20}")


class _HasWebhooks(Protocol):
    @property
    def webhooks(self) -> WebhookManager: ...


class _Rejection(Exception):
    """A request refused before it reached the webhook manager."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookMiddleware:
    """Answers ``POST {prefix}/<integration>`` through ``client.webhooks``.

    :param app: the WSGI application that gets every other request.
    :param client: anything with a ``webhooks`` attribute holding a
        :class:`~revo_sdk._webhooks.WebhookManager`, usually a
        :class:`revo_sdk.Client`; looked up on each request.
    :param prefix: the path under which webhooks are received.
    :param max_body: largest body read, in bytes (413 above).

    Thread safety: keeps no per-request state; any number of server threads
    may call it at once.
    """

    def __init__(
        self,
        app: WSGIApp,
        client: _HasWebhooks,
        prefix: str = "/webhooks",
        *,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.app = app
        self.client = client
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.max_body = max_body
        self._route = re.compile(re.escape(self.prefix) + r"/([^/]+)/?")

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        match = self._route.fullmatch(environ.get("PATH_INFO", "") or "")
        if match is None:
            return self.app(environ, start_response)
        integration = match.group(1)
        try:
            answer = self._handle(integration, environ)
        except _Rejection as exc:
            _log_rejection(integration, exc.status, exc.reason)
            return _reply(start_response, *_error(exc.status, exc.reason))
        except WebhookRejected as exc:
            # The manager has logged it already.
            return _reply(start_response, *_error(exc.status, exc.reason))
        except StorageError:
            log.exception("webhook %s: storage failed", _shown(integration))
            return _reply(start_response, *_error(503, "storage_unavailable"))
        except Exception:
            log.exception("webhook %s: internal error", _shown(integration))
            return _reply(start_response, *_error(500, "internal_error"))
        return _reply(start_response, answer.status, answer.content_type, answer.body)

    def _handle(self, integration: str, environ: dict[str, Any]) -> WebhookResponse:
        if environ.get("REQUEST_METHOD", "GET").upper() != "POST":
            raise _Rejection(405, "method_not_allowed")
        body = self._read_body(environ)
        headers = _headers(environ)
        content_type = environ.get("CONTENT_TYPE", "") or ""
        return self.client.webhooks.receive(integration, headers, body, content_type)

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        stream = environ.get("wsgi.input")
        raw = (environ.get("CONTENT_LENGTH") or "").strip()
        if not raw:
            chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
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
            chunk = stream.read(min(_CHUNK, self.max_body + 1 - size))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            size += len(chunk)
            if size > self.max_body:
                raise _Rejection(413, "too_large")


def _read_exactly(stream: Any, length: int) -> bytes:
    parts: list[bytes] = []
    left = length
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
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
    status: int, reason: str
) -> tuple[int, str, bytes, tuple[tuple[str, str], ...]]:
    body = json.dumps({"error": reason}).encode()
    extra = (("Retry-After", str(RETRY_AFTER)),) if status == 503 else ()
    if status == 405:
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
