"""Webhook intake: verify, store durably, then process with worker threads.

:meth:`WebhookManager.receive` is the framework-free core behind the WSGI
middleware and the Flask extension. It answers 2xx only after the delivery
is committed to the SQLite queue, so an acknowledged delivery survives a
crash of the process a moment later. Handlers run later, on worker threads
(:meth:`WebhookManager.start`) or in the caller's thread
(:meth:`WebhookManager.drain`), with at-least-once semantics: a handler may
see the same delivery again after a crash or a retry, so it should be
idempotent.

Processing rules:

- every handler registered for the integration and event runs, and so does
  every handler registered with ``"*"`` for the integration, in registration
  order; the event is done when all of them returned;
- a handler raising :class:`~revo_sdk.PermanentHandlerError` sends the event
  to the dead letters at once; one raising :class:`~revo_sdk.RetryLater`
  has it tried again after the delay it asks for (the attempt counts);
- any other exception retries the event after a backoff delay until
  ``max_attempts`` attempts were made, then it is dead, with the traceback
  kept in ``last_error``;
- an event no handler asked for is marked done (logged at DEBUG), so the
  queue does not fill up with events nobody reads; it can be replayed with
  ``status="done"`` once a handler exists. Register handlers before
  :meth:`~WebhookManager.start` or :meth:`~WebhookManager.drain`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import _queue
from ._config import IntegrationConfig, RetryPolicy
from ._db import Database
from ._exceptions import (
    ConfigurationError,
    PermanentHandlerError,
    RetryLater,
    StorageError,
    UnknownIntegrationError,
    WebhookRejected,
)
from ._provider import Provider, WebhookEvent
from ._records import WebhookRecord
from ._retry import backoff_delay

log = logging.getLogger(__name__)

#: Integration names as :class:`~revo_sdk.IntegrationConfig` allows them.
INTEGRATION_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")

#: Media types a delivery may declare (an empty content type is allowed too).
FORM_TYPE = "application/x-www-form-urlencoded"

DEFAULT_MAX_BODY = 25 * 1024 * 1024

_ACCEPTED = b'{"ok":true}'
_DUPLICATE = b'{"ok":true,"duplicate":true}'


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive view of request headers.

    Iteration yields the names as they were given. Thread safety: immutable,
    so it may be shared freely.
    """

    __slots__ = ("_items",)

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {
            name.lower(): (name, value) for name, value in (headers or {}).items()
        }

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        # Values stay out of reprs: they may hold signatures.
        return f"Headers({sorted(self)!r})"

    def to_dict(self) -> dict[str, str]:
        """A plain dict with the original names."""
        return dict(self._items.values())


@dataclass(frozen=True)
class Delivery:
    """What a handler receives: one stored delivery, decoded.

    :param id: the queue's event id (``revo-sdk webhooks show <id>``).
    :param payload: the body as the provider decoded it (JSON, or the
        fields of a form); ``None`` when it could not be decoded.
    :param attempts: 1 on the first try, counting this one.
    """

    id: int
    integration: str
    event: str
    delivery_id: str
    payload: Any = field(repr=False)
    headers: Headers = field(repr=False)
    attempts: int
    max_attempts: int
    body: bytes = field(repr=False)
    lease_until: float = 0.0
    _extend: Callable[[float], bool] | None = field(
        default=None, repr=False, compare=False
    )

    def extend_lease(self, seconds: float) -> bool:
        """Keep this delivery leased for ``seconds`` more from now.

        Call it from a handler that may outlive the manager's ``lease``, as
        often as needed (a heartbeat). Returns false when the lease was
        already lost: another worker claimed the delivery again after it ran
        out, so this run's result will be ignored.
        """
        if seconds <= 0:
            raise ValueError("extend_lease() needs seconds > 0")
        return self._extend(seconds) if self._extend is not None else False


@dataclass(frozen=True)
class WebhookResponse:
    """The answer :meth:`WebhookManager.receive` gives the sender.

    ``event_id`` is the queue id of the stored delivery (``None`` for a
    handshake answered inline); ``duplicate`` is true when the delivery was
    already stored.
    """

    status: int
    content_type: str
    body: bytes
    event_id: int | None
    duplicate: bool


Handler = Callable[[Delivery], object]


@dataclass(frozen=True)
class _Done:
    """A claimed event whose handlers finished, waiting for its ack."""

    item: _queue.ClaimedEvent
    reason: str


F = TypeVar("F", bound=Handler)


def _noop(record: WebhookRecord) -> None:
    return None


class WebhookManager:
    """Receives webhooks durably and runs their handlers.

    :param database: returns the :class:`~revo_sdk._db.Database` holding the
        queue; called on each use so the database can be opened lazily.
        The manager never closes it.
    :param resolve: returns ``(config, provider)`` for an integration name,
        raising :class:`~revo_sdk.UnknownIntegrationError` for unknown ones.
    :param notify: receives a :class:`~revo_sdk.WebhookRecord` for each
        delivery received, found duplicate, rejected, processed, retried or
        dead; it must return quickly, and its exceptions are logged and
        ignored.
    :param clock: wall-clock time in epoch seconds (stored in the queue).
    :param max_attempts: attempts a handler gets before the event is dead.
    :param retry: the backoff between attempts (its ``max_attempts`` is not
        used; strategy ``none`` makes the first failure final).
    :param lease: seconds a claimed event is reserved for its worker; a
        handler running longer than this may see the event run twice.
    :param max_body: largest body accepted, in bytes (413 above).
    :param poll_interval: seconds an idle worker waits before looking for
        due events again (deliveries received in this process wake it at
        once).
    :param retention: seconds done events are kept before workers purge
        them (``None``: kept until purged by hand); their dedup keys are
        remembered for 7 days whatever this is.
    :param dead_retention: the same for dead events (default 30 days).
    :param purge_interval: seconds between two retention purges by workers.
    :param heartbeat: when set, started workers extend the lease of every
        event whose handler is still running every ``heartbeat`` seconds
        (to ``now + lease``), so handlers of any length keep their events.
        A handler that hangs then holds its event until its process ends.
        Not applied by :meth:`drain`; there, call
        :meth:`Delivery.extend_lease` yourself.
    :param ordering: ``ordering(integration, parsed_event) -> key or None``;
        events with the same key are handled one at a time, oldest first
        (for example the repository or issue an event is about). A
        provider may also give the parsed event an ``ordering_key``
        attribute; this function wins.

    Thread safety: every method may be called from any thread. Handlers
    run on worker threads (or the thread calling :meth:`drain`), several at
    once when ``threads > 1``.
    """

    def __init__(
        self,
        *,
        database: Callable[[], Database],
        resolve: Callable[[str], tuple[IntegrationConfig, Provider]],
        notify: Callable[[WebhookRecord], None] = _noop,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 5,
        retry: RetryPolicy = RetryPolicy(base_delay=1, max_delay=300),  # noqa: B008  # frozen, shared safely
        lease: float = 60.0,
        max_body: int = DEFAULT_MAX_BODY,
        poll_interval: float = 0.5,
        retention: float | None = 7 * 86400.0,
        dead_retention: float | None = 30 * 86400.0,
        purge_interval: float = 3600.0,
        ordering: Callable[[str, WebhookEvent], str | None] | None = None,
        heartbeat: float | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if lease <= 0 or poll_interval <= 0:
            raise ConfigurationError("lease and poll_interval must be > 0")
        if max_body < 0:
            raise ConfigurationError("max_body must be >= 0")
        if heartbeat is not None and not 0 < heartbeat < lease:
            raise ConfigurationError("heartbeat must be > 0 and shorter than lease")
        self._database = database
        self._resolve = resolve
        self._notify = notify
        self._clock = clock
        self.max_attempts = max_attempts
        self.retry = retry
        self.lease = lease
        self.max_body = max_body
        self.poll_interval = poll_interval
        self.retention = retention
        self.dead_retention = dead_retention
        self.purge_interval = purge_interval
        self._ordering = ordering
        self._outbox: Callable[[_queue.ClaimedEvent], None] | None = None
        self._next_purge = 0.0  # monotonic; the first worker loop purges
        self.heartbeat = heartbeat
        self._inflight: dict[int, _queue.ClaimedEvent] = {}  # guarded by _lock
        # Replaced whole on registration, so readers never need the lock.
        self._handlers: dict[str, tuple[tuple[str, Handler], ...]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- handlers ----------------------------------------------------------

    def on(self, integration: str, event: str = "*") -> Callable[[F], F]:
        """Register the decorated function as a handler.

        :param event: the event name (GitHub ``push``, Slack ``message``,
            Jira ``jira:issue_created``), or ``"*"`` for every event of the
            integration.

        ::

            @client.webhooks.on("github", "push")
            def on_push(delivery):
                print(delivery.payload["ref"])
        """
        if not integration or not event:
            raise ConfigurationError("on() needs an integration and an event name")

        def register(handler: F) -> F:
            with self._lock:
                handlers = dict(self._handlers)
                known = handlers.get(integration, ())
                handlers[integration] = (*known, (event, handler))
                self._handlers = handlers
            return handler

        return register

    def handlers_for(self, integration: str, event: str) -> list[Handler]:
        """The handlers that will run for ``event``, in order."""
        return [
            handler
            for name, handler in self._handlers.get(integration, ())
            if name in (event, "*")
        ]

    # -- intake ------------------------------------------------------------

    def receive(
        self,
        integration: str,
        headers: Mapping[str, str],
        body: bytes,
        content_type: str = "",
    ) -> WebhookResponse:
        """Verify, name and durably store one delivery.

        Returns a 202 response once the delivery is committed (or was
        already stored), or the provider's handshake reply, which is
        answered inline and not stored.

        :param content_type: the request's content type; taken from
            ``headers`` when empty.
        :raises WebhookRejected: with the status to answer: 404 unknown
            integration, 413 too large, 415 unsupported content type, 401
            bad or missing signature (``no_secret`` when the integration
            has no secret and does not allow unsigned deliveries), 400
            malformed delivery, 503 (``storage_unavailable``) when the
            queue could not commit it. Each is logged as one WARNING line.
        """
        now = self._clock()
        view = Headers(headers)
        content_type = content_type or view.get("Content-Type", "")
        try:
            parsed = self._accept(integration, view, body, content_type, now)
            if parsed.reply is not None:
                status, reply_type, reply_body = parsed.reply
                log.debug("webhook %s: handshake answered inline", integration)
                return WebhookResponse(status, reply_type, reply_body, None, False)
            event_id, created = self._store(integration, parsed, view, body, now)
        except WebhookRejected as exc:
            self._rejected(integration, exc, now)
            raise

        self._wake.set()
        stage = "received" if created else "duplicate"
        log.debug("webhook %s/%s %s as %d", integration, parsed.event, stage, event_id)
        self._emit(integration, parsed.event, stage, "", event_id)
        return WebhookResponse(
            202,
            "application/json",
            _ACCEPTED if created else _DUPLICATE,
            event_id,
            not created,
        )

    def _accept(
        self,
        integration: str,
        headers: Headers,
        body: bytes,
        content_type: str,
        now: float,
    ) -> WebhookEvent:
        if not INTEGRATION_NAME.fullmatch(integration):
            raise WebhookRejected(404, "unknown_integration")
        try:
            config, provider = self._resolve(integration)
        except UnknownIntegrationError:
            raise WebhookRejected(404, "unknown_integration") from None
        if len(body) > self.max_body:
            raise WebhookRejected(413, "too_large")
        if not _supported_type(content_type):
            raise WebhookRejected(415, "unsupported_media_type")

        self._verify(config, provider, headers, body, now)
        return self._parse(provider, headers, body, content_type)

    def _verify(
        self,
        config: IntegrationConfig,
        provider: Provider,
        headers: Headers,
        body: bytes,
        now: float,
    ) -> None:
        secrets = config.webhook_secrets
        if not secrets:
            if config.allow_unsigned_webhooks:
                return
            raise WebhookRejected(401, "no_secret")
        try:
            result = provider.verify_webhook(headers, body, secrets, now=now)
        except Exception:
            # A provider must not raise here; a signature we cannot check is
            # not one we accept.
            log.exception("provider %r raised while verifying a webhook", provider)
            raise WebhookRejected(401, "verify_error") from None
        if not result.ok:
            raise WebhookRejected(401, result.reason)

    def _parse(
        self, provider: Provider, headers: Headers, body: bytes, content_type: str
    ) -> WebhookEvent:
        try:
            parsed = provider.parse_webhook(headers, body, content_type)
        except WebhookRejected as exc:
            if 400 <= exc.status < 500:
                raise
            raise WebhookRejected(400, exc.reason, str(exc)) from exc
        except (
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            AttributeError,
            RecursionError,  # absurdly nested JSON
        ) as exc:
            # Malformed input tripping up the provider's decoding.
            raise WebhookRejected(400, "malformed", type(exc).__name__) from exc
        if not isinstance(parsed, WebhookEvent) or not parsed.event:
            raise WebhookRejected(400, "malformed", "no event name")
        return parsed

    def _store(
        self,
        integration: str,
        parsed: WebhookEvent,
        headers: Headers,
        body: bytes,
        now: float,
    ) -> tuple[int, bool]:
        try:
            return _queue.enqueue(
                self._database(),
                integration=integration,
                event=parsed.event,
                delivery_id=parsed.delivery_id,
                dedup_key=parsed.dedup_key or parsed.delivery_id,
                headers=headers.to_dict(),
                body=body,
                max_attempts=self.max_attempts,
                now=now,
                ordering_key=self._ordering_key(integration, parsed),
            )
        except StorageError as exc:
            log.error("webhook %s not stored: %s", integration, exc)
            raise WebhookRejected(503, "storage_unavailable") from exc

    def _ordering_key(self, integration: str, parsed: WebhookEvent) -> str | None:
        if self._ordering is not None:
            key = self._ordering(integration, parsed)
        else:
            key = getattr(parsed, "ordering_key", None)
        return None if key is None else f"{integration}:{key}"

    def _rejected(self, integration: str, exc: WebhookRejected, now: float) -> None:
        shown = integration if INTEGRATION_NAME.fullmatch(integration) else "?"
        log.warning(
            "webhook rejected: integration=%s status=%d reason=%s",
            shown,
            exc.status,
            exc.reason,
        )
        self._emit(shown, "", "rejected", exc.reason, None)

    # -- processing --------------------------------------------------------

    def drain(self, timeout: float = 30.0) -> int:
        """Process every due event in the calling thread; returns how many.

        Stops when no event is due any more (events waiting for a retry
        later are left) or after ``timeout`` seconds. Each event counts
        once, whether it was done, retried or dead.
        """
        deadline = time.monotonic() + timeout
        handled = 0
        done: list[_Done] = []
        worked = True
        try:
            while time.monotonic() < deadline:
                done, worked = self._step(done, probe=not worked)
                if not worked:
                    break
                handled += 1
        finally:
            self._flush(done)
        return handled

    def start(self, threads: int = 2) -> None:
        """Start ``threads`` daemon worker threads; a no-op if running."""
        if threads < 1:
            raise ConfigurationError("start() needs at least one thread")
        with self._lock:
            if self._threads:
                return
            self._stop = threading.Event()
            self._threads = [
                threading.Thread(
                    target=self._work,
                    args=(self._stop,),
                    name=f"revo-webhooks-{n}",
                    daemon=True,
                )
                for n in range(threads)
            ]
            if self.heartbeat is not None:
                self._threads.append(
                    threading.Thread(
                        target=self._beat,
                        args=(self._stop, self.heartbeat),
                        name="revo-webhooks-heartbeat",
                        daemon=True,
                    )
                )
            started = list(self._threads)
        for thread in started:
            thread.start()
        log.debug("started %d webhook workers", threads)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the workers to finish their current event and wait for them.

        A worker still busy after ``timeout`` seconds is left running (it
        is a daemon thread); its event's lease expires and another worker
        or process will claim it again.
        """
        with self._lock:
            threads, self._threads = self._threads, []
            self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread.ident is not None:  # not started yet: it sees the flag
                thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            log.warning("webhook workers still busy after %.1fs: %s", timeout, alive)

    def close(self) -> None:
        """Stop the workers. The database is not closed: its owner does that."""
        self.stop()

    def set_outbox_sender(
        self, sender: Callable[[_queue.ClaimedEvent], None] | None
    ) -> None:
        """Let the workers also run outbox messages, through ``sender``.

        ``sender`` receives the claimed outbox message and raises like a
        handler (:class:`~revo_sdk.RetryLater`,
        :class:`~revo_sdk.PermanentHandlerError`, any other exception to
        retry with backoff). Without a sender the workers leave outbox
        messages alone. :class:`~revo_sdk.Client` sets it.
        """
        self._outbox = sender
        self._wake.set()

    def wake(self) -> None:
        """Tell idle workers that new work was stored (they poll otherwise)."""
        self._wake.set()

    def _kinds(self) -> tuple[str, ...] | None:
        return None if self._outbox is not None else (_queue.WEBHOOK,)

    def _work(self, stop: threading.Event) -> None:
        done: list[_Done] = []
        worked = True
        while not stop.is_set():
            self._wake.clear()
            self._maybe_purge()
            try:
                done, worked = self._step(done, probe=not worked)
            except StorageError as exc:
                log.warning("webhook worker: queue unavailable: %s", exc)
                worked = False
            except Exception:
                log.exception("webhook worker failed; continuing")
                worked = False
            if not worked and not done:
                self._wake.wait(self.poll_interval)
        self._flush(done)

    def _step(self, done: list[_Done], *, probe: bool) -> tuple[list[_Done], bool]:
        """Ack ``done``, claim the next event and process it.

        The ack of a finished event rides on the next claim's transaction
        (one commit per event). Returns the events now waiting for their
        ack and whether an event was claimed.
        """
        acked, claimed = _queue.ack_and_claim(
            self._database(),
            done=[(d.item.id, d.item.attempts) for d in done],
            limit=1,
            lease=self.lease,
            now=self._clock(),
            kinds=self._kinds(),
            probe=probe,
        )
        self._acked(done, acked)
        finished = []
        for item in claimed:
            reason = self._process(item)
            if reason is not None:
                finished.append(_Done(item, reason))
        return finished, bool(claimed)

    def _flush(self, done: list[_Done]) -> None:
        if not done:
            return
        try:
            acked = _queue.ack_many(
                self._database(),
                [(d.item.id, d.item.attempts) for d in done],
                now=self._clock(),
            )
        except StorageError as exc:
            log.warning(
                "acks of %d webhook event(s) not written (%s); they will run"
                " again once their leases expire",
                len(done),
                exc,
            )
            return
        self._acked(done, acked)

    def _acked(self, done: list[_Done], acked: int) -> None:
        if acked < len(done):
            log.warning(
                "%d of %d webhook event(s) finished after their lease expired"
                " and was claimed again; they may have been handled twice",
                len(done) - acked,
                len(done),
            )
        for d in done:
            item = d.item
            self._emit(item.integration, item.event, "processed", d.reason, item.id)

    def _maybe_purge(self) -> None:
        if self.retention is None and self.dead_retention is None:
            return
        now = time.monotonic()
        with self._lock:
            due = now >= self._next_purge
            if due:
                self._next_purge = now + self.purge_interval
        if due:
            self.apply_retention()

    def apply_retention(self) -> dict[str, int]:
        """Purge done and dead events past ``retention``/``dead_retention``.

        Workers call it every ``purge_interval`` seconds; call it yourself
        from a cron job when no workers run. Returns how many of each were
        purged; a storage error is logged and counts as nothing purged.
        """
        try:
            purged = _queue.apply_retention(
                self._database(),
                done=self.retention,
                dead=self.dead_retention,
                now=self._clock(),
            )
        except StorageError as exc:
            log.warning("retention purge failed: %s", exc)
            return {_queue.DONE: 0, _queue.DEAD: 0}
        if any(purged.values()):
            log.info("retention purge: %s", purged)
        return purged

    def _beat(self, stop: threading.Event, interval: float) -> None:
        """Extend the leases of running handlers until ``stop`` is set."""
        while not stop.wait(interval):
            with self._lock:
                running = list(self._inflight.values())
            for item in running:
                try:
                    kept = _queue.extend_lease(
                        self._database(),
                        item.id,
                        attempt=item.attempts,
                        lease=self.lease,
                        now=self._clock(),
                    )
                except StorageError as exc:
                    log.warning("lease of event %d not extended: %s", item.id, exc)
                    continue
                if not kept:
                    log.warning("event %d lost its lease while running", item.id)

    def _process(self, item: _queue.ClaimedEvent) -> str | None:
        """Run the handlers; a reason (maybe empty) when the event is done."""
        if self.heartbeat is None:
            return self._run_handlers(item)
        with self._lock:
            self._inflight[item.id] = item
        try:
            return self._run_handlers(item)
        finally:
            with self._lock:
                self._inflight.pop(item.id, None)

    def _run_handlers(self, item: _queue.ClaimedEvent) -> str | None:
        try:
            if item.kind == _queue.OUTBOX:
                if self._outbox is None:  # claimed by kind filter; defensive
                    raise RetryLater(self.lease, "no outbox sender here")
                self._outbox(item)
                return ""
            handlers = self.handlers_for(item.integration, item.event)
            if not handlers:
                log.debug("no handler for %s/%s; done", item.integration, item.event)
                return "no_handler"
            delivery = self._delivery(item)
            for handler in handlers:
                handler(delivery)
        except PermanentHandlerError as exc:
            self._failed(item, exc, retry_in=None)
        except RetryLater as exc:
            self._failed(item, exc, retry_in=exc.delay, counts=exc.counts)
        except Exception as exc:
            self._failed(item, exc, retry_in=self._retry_delay(item.attempts))
        else:
            return ""
        return None

    def _failed(
        self,
        item: _queue.ClaimedEvent,
        exc: Exception,
        *,
        retry_in: float | None,
        counts: bool = True,
    ) -> None:
        detail = "".join(traceback.format_exception(exc))
        error = f"attempt {item.attempts}/{item.max_attempts}\n{detail}"
        try:
            status = _queue.fail(
                self._database(),
                item.id,
                error=error,
                retry_in=retry_in,
                now=self._clock(),
                attempt=item.attempts,
                counts=counts,
            )
        except StorageError as exc2:
            # Not a handler failure: the event stays leased and comes back
            # when the lease ends, with this attempt counted.
            log.warning("failure of event %d not recorded: %s", item.id, exc2)
            return
        summary = _summary(exc)
        if status == "lost":
            log.warning("webhook event %d failed after its lease expired", item.id)
        elif status == "dead":
            log.warning(
                "webhook %s/%s event %d dead after attempt %d/%d: %s",
                item.integration,
                item.event,
                item.id,
                item.attempts,
                item.max_attempts,
                summary,
            )
            permanent = isinstance(exc, PermanentHandlerError)
            reason = f"permanent: {type(exc).__name__}" if permanent else summary
            self._emit(item.integration, item.event, "dead", reason, item.id)
        else:
            log.warning(
                "webhook %s/%s event %d attempt %d/%d failed, retry in %.1fs: %s",
                item.integration,
                item.event,
                item.id,
                item.attempts,
                item.max_attempts,
                retry_in or 0.0,
                summary,
            )
            self._emit(item.integration, item.event, "retried", summary, item.id)

    def _retry_delay(self, attempt: int) -> float | None:
        if self.retry.strategy == "none":
            return None
        return backoff_delay(self.retry, attempt)

    def _delivery(self, item: _queue.ClaimedEvent) -> Delivery:
        headers = Headers(item.headers)
        return Delivery(
            id=item.id,
            integration=item.integration,
            event=item.event,
            delivery_id=item.delivery_id,
            payload=self._payload(item.integration, headers, item.body),
            headers=headers,
            attempts=item.attempts,
            max_attempts=item.max_attempts,
            body=item.body,
            lease_until=item.lease_until,
            _extend=lambda seconds: _queue.extend_lease(
                self._database(),
                item.id,
                attempt=item.attempts,
                lease=seconds,
                now=self._clock(),
            ),
        )

    def _payload(self, integration: str, headers: Headers, body: bytes) -> Any:
        content_type = headers.get("Content-Type", "")
        try:
            _, provider = self._resolve(integration)
            return provider.parse_webhook(headers, body, content_type).payload
        except Exception as exc:
            # The integration may not be configured in this process (a
            # separate worker process); fall back to plain decoding.
            log.debug("payload of %s decoded generically: %r", integration, exc)
            return decode_body(body, content_type)

    # -- queue views -------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """Stored events per integration and status."""
        return _queue.counts(self._database())

    def replay(
        self, event_ids: Sequence[int] | None = None, *, status: str | None = "dead"
    ) -> int:
        """Queue stored events again as fresh deliveries; returns how many.

        See :func:`revo_sdk._queue.replay`.
        """
        count = _queue.replay(
            self._database(), event_ids, status=status, now=self._clock()
        )
        if count:
            self._wake.set()
        return count

    def _emit(
        self,
        integration: str,
        event: str,
        stage: str,
        reason: str,
        event_id: int | None,
    ) -> None:
        record = WebhookRecord(
            integration, event, stage, reason, self._clock(), event_id
        )
        try:
            self._notify(record)
        except Exception:
            log.exception("webhook observer failed on %s record", stage)


def decode_body(body: bytes, content_type: str) -> Any:
    """Decode a JSON or form body; ``None`` if it is neither.

    A form holding a single ``payload`` field of JSON (as GitHub and Slack
    send) decodes to that JSON; other forms to a dict of their first values.
    """
    try:
        if _media_type(content_type) == FORM_TYPE:
            fields = urllib.parse.parse_qs(body.decode("utf-8"))
            if set(fields) == {"payload"}:
                return json.loads(fields["payload"][0])
            return {name: values[0] for name, values in fields.items()}
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _supported_type(content_type: str) -> bool:
    media = _media_type(content_type)
    return media in ("", FORM_TYPE, "application/json", "text/json") or (
        media.startswith("application/") and media.endswith("+json")
    )


def _summary(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
