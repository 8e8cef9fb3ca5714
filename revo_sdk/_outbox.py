"""The outbox: outgoing calls stored durably now and sent by workers later.

For calls that must happen but need not happen now -- post a Slack message,
comment on an issue -- ``client.<name>.enqueue("POST", path, json=...)``
stores the call in the same SQLite file and on the same queue machinery as
incoming webhooks (``kind = "outbox"``): it survives a crash, is leased to
one worker at a time, retried with backoff, and dead-lettered with its
errors when it keeps failing. ``revo-sdk webhooks list --kind outbox`` shows
these messages; replay and purge work on them as on webhooks.

Each stored call gets an idempotency key (generated unless the caller gives
one), stored with it and sent as ``Idempotency-Key`` on every attempt, so a
resend after a crash between sending and recording the result is safe with
any service that honours the header. GitHub, Slack and Jira do not: a crash
in that window (or a lease that runs out while the call is in flight) can
make them see the call twice. Passing your own ``idempotency_key`` also
deduplicates enqueues: a second enqueue with the same key is stored once.

Thread safety: the functions keep no state and may be called from any thread.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _queue
from ._db import Database
from ._exceptions import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    HTTPStatusError,
    PermanentHandlerError,
    RateLimitedError,
    RetryLater,
    UnsafeURLError,
)

log = logging.getLogger(__name__)

#: Keyword arguments of :meth:`Client.request` an outbox call may carry.
OPTIONS = frozenset({"json", "params", "data", "headers", "timeout"})

#: Statuses worth another attempt; any other 4xx is final.
RETRY_STATUSES = frozenset({408, 425, 429})

_DEDUP_PREFIX = "outbox:"


@dataclass(frozen=True)
class OutboxCall:
    """A stored outgoing call, as a worker sends it."""

    id: int
    integration: str
    method: str
    path: str
    options: dict[str, Any]
    idempotency_key: str
    attempts: int


@dataclass(frozen=True)
class Enqueued:
    """What :meth:`IntegrationHandle.enqueue` returns.

    :param id: the queue id (``revo-sdk webhooks show <id>``).
    :param idempotency_key: sent with every attempt of the call.
    :param duplicate: true when a call with this idempotency key was
        already stored (nothing new was stored).
    """

    id: int
    idempotency_key: str
    duplicate: bool


class OutboxCallFailed(Exception):  # reads as an event, like StopIteration
    """A stored call got an answer worth retrying (5xx, 408, 425, 429)."""


def enqueue_call(
    db: Database,
    *,
    integration: str,
    method: str,
    path: str,
    options: Mapping[str, Any],
    max_attempts: int,
    now: float,
    idempotency_key: str | None = None,
    ordering_key: str | None = None,
) -> Enqueued:
    """Store one outgoing call durably; returns once it is committed.

    :param options: keyword arguments for :meth:`Client.request`: ``json``,
        ``params``, ``data`` (a mapping or text), ``headers``, ``timeout``.
        They must be JSON-serialisable.
    :raises ConfigurationError: an unknown option or a value that cannot be
        stored.
    :raises StorageError: the store could not commit the call.
    """
    unknown = set(options) - OPTIONS
    if unknown:
        raise ConfigurationError(
            f"enqueue() does not take {sorted(unknown)}; allowed: {sorted(OPTIONS)}"
        )
    if not method or not path:
        raise ConfigurationError("enqueue() needs a method and a path")
    key = idempotency_key or uuid.uuid4().hex
    record = {"method": method.upper(), "path": path, "options": dict(options)}
    try:
        body = json.dumps(record, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"enqueue() options must be JSON data: {exc}") from exc
    event_id, created = _queue.enqueue(
        db,
        integration=integration,
        event=f"{method.upper()} {path}"[:200],
        delivery_id=key,
        dedup_key=_DEDUP_PREFIX + key,
        headers={},
        body=body,
        max_attempts=max_attempts,
        now=now,
        kind=_queue.OUTBOX,
        ordering_key=None if ordering_key is None else f"{integration}:{ordering_key}",
    )
    log.debug("outbox %s %s stored as %d", integration, record["method"], event_id)
    return Enqueued(event_id, key, not created)


def decode_call(item: _queue.ClaimedEvent) -> OutboxCall:
    """The call a claimed outbox message holds.

    :raises PermanentHandlerError: the stored body is not a call.
    """
    try:
        record = json.loads(item.body)
        return OutboxCall(
            id=item.id,
            integration=item.integration,
            method=str(record["method"]),
            path=str(record["path"]),
            options=dict(record.get("options") or {}),
            idempotency_key=item.delivery_id,
            attempts=item.attempts,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentHandlerError(f"outbox message {item.id} unreadable") from exc


def make_sender(
    request: Callable[..., Any], *, clock: Callable[[], float] = time.time
) -> Callable[[_queue.ClaimedEvent], None]:
    """A worker's sender: sends a claimed outbox message through ``request``.

    ``request(integration, method, path, **options)`` is
    :meth:`Client.request`, so each attempt passes the whole resilience
    pipeline (limiter, breaker, its own short retries). The sender returns
    on a 1xx-3xx answer and raises for the queue otherwise:
    :class:`RetryLater` when the breaker is open or a rate limit names a
    time, :class:`PermanentHandlerError` (straight to the dead letters) for
    a 4xx other than 408/425/429, an authentication failure or an unsafe
    URL, and :class:`OutboxCallFailed` (retry with backoff) for the rest.
    """

    def send(item: _queue.ClaimedEvent) -> None:
        call = decode_call(item)
        options = dict(call.options)
        try:
            response = request(
                call.integration,
                call.method,
                call.path,
                idempotency_key=call.idempotency_key,
                **options,
            )
        except CircuitOpenError as exc:
            # Refused before anything was sent: the attempt is given back (an
            # open breaker must not use up a call's attempts on its own).
            raise RetryLater(
                max(1.0, exc.retry_at - clock()), str(exc), counts=bool(exc.sent)
            ) from exc
        except RateLimitedError as exc:
            if exc.retry_at is None:
                raise
            # Refused by a limit, so never processed: not a spent attempt.
            raise RetryLater(
                max(1.0, exc.retry_at - clock()), str(exc), counts=False
            ) from exc
        except (AuthenticationError, UnsafeURLError, ConfigurationError) as exc:
            raise PermanentHandlerError(str(exc)) from exc
        except HTTPStatusError as exc:
            if 400 <= exc.status < 500 and exc.status not in RETRY_STATUSES:
                raise PermanentHandlerError(str(exc)) from exc
            raise
        _check_status(call, int(getattr(response, "status_code", 200)))

    return send


def _check_status(call: OutboxCall, status: int) -> None:
    if status < 400:
        log.debug("outbox call %d sent: HTTP %d", call.id, status)
        return
    what = f"{call.method} {call.path} answered HTTP {status}"
    if status >= 500 or status in RETRY_STATUSES:
        raise OutboxCallFailed(what)
    raise PermanentHandlerError(what)
