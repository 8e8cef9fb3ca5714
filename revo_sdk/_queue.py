"""Durable webhook queue operations on a :class:`~revo_sdk._db.Database`.

Plain functions with no state of their own, so the manager's workers, the
command line and tests all use the same code. An event moves through these
statuses::

    pending --claim--> processing --ack--> done
       ^                   |
       +------fail---------+--(attempts used up, or permanent)--> dead

A claim is a lease: the row stays ``processing`` until ``lease_until`` and
nobody else may take it before then. A worker that dies mid-handler simply
lets its lease run out and the event is claimed again. Attempts are counted
when an event is claimed, not when it fails, so an event whose handler kills
the process every time still reaches ``dead`` instead of looping for ever.

Every function that changes rows runs one ``BEGIN IMMEDIATE`` transaction
and returns only after it committed. SQLite errors surface as
:class:`~revo_sdk.StorageError`.

Thread safety: the functions may be called from any thread; the database
gives each thread its own connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._db import Database
from ._exceptions import StorageError

log = logging.getLogger(__name__)

PENDING = "pending"
PROCESSING = "processing"
DONE = "done"
DEAD = "dead"
STATUSES = (PENDING, PROCESSING, DONE, DEAD)

#: Longest ``last_error`` kept, in characters; the tail of a traceback is
#: the informative part, so the start is what gets cut.
MAX_ERROR_CHARS = 8000

#: Header names shown as ``[redacted]`` by :func:`get_event`.
REDACTED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie"}
)
#: Any header whose name contains one of these is redacted too (signatures,
#: tokens, API keys).
REDACTED_NAME_PARTS = ("signature", "token", "secret", "api-key", "apikey")


@dataclass(frozen=True)
class ClaimedEvent:
    """An event leased to the caller until ``lease_until``.

    ``attempts`` already counts this attempt (1 on the first try); pass it to
    :func:`ack` and :func:`fail` so a worker whose lease ran out cannot
    overwrite the result of the worker that claimed the event after it.
    """

    id: int
    integration: str
    event: str
    delivery_id: str
    attempts: int
    max_attempts: int
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    lease_until: float = 0.0


@contextlib.contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    # Database.write() reports BEGIN and COMMIT failures itself; statements
    # inside the transaction (disk full, I/O error) raise sqlite3 errors.
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"{what} failed: {exc}") from exc


def enqueue(
    db: Database,
    *,
    integration: str,
    event: str,
    delivery_id: str,
    dedup_key: str,
    headers: Mapping[str, str],
    body: bytes,
    max_attempts: int,
    now: float,
) -> tuple[int, bool]:
    """Store one delivery durably; returns ``(event_id, created)``.

    A delivery whose ``(integration, dedup_key)`` is already stored as
    pending, processing or done is a duplicate: nothing changes and
    ``created`` is false. One stored as dead is accepted again as a new
    attempt: it goes back to pending with its attempts reset and the new
    headers and body. Returns only after the transaction committed.

    :raises StorageError: the store could not commit the delivery.
    """
    headers_json = json.dumps(dict(headers), separators=(",", ":"))
    with _storage_errors("enqueue"), db.write() as conn:
        cur = conn.execute(
            "INSERT OR IGNORE INTO webhook_events (integration, event, delivery_id,"
            " dedup_key, status, attempts, max_attempts, available_at, received_at,"
            " updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
            (integration, event, delivery_id, dedup_key, max_attempts, now, now, now),
        )
        if cur.rowcount == 1:
            event_id = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT OR REPLACE INTO webhook_payloads VALUES (?, ?, ?)",
                (event_id, headers_json, body),
            )
            return event_id, True

        row = conn.execute(
            "SELECT id, status FROM webhook_events"
            " WHERE integration = ? AND dedup_key = ?",
            (integration, dedup_key),
        ).fetchone()
        event_id = int(row[0])
        if row[1] != DEAD:
            return event_id, False

        conn.execute(
            "UPDATE webhook_events SET status = 'pending', attempts = 0,"
            " max_attempts = ?, event = ?, delivery_id = ?, available_at = ?,"
            " lease_until = NULL, received_at = ?, updated_at = ? WHERE id = ?",
            (max_attempts, event, delivery_id, now, now, now, event_id),
        )
        conn.execute(
            "INSERT OR REPLACE INTO webhook_payloads VALUES (?, ?, ?)",
            (event_id, headers_json, body),
        )
        return event_id, True


def _id_list(ids: Collection[int] | Collection[str] | None) -> str | None:
    # Lists are passed as one JSON parameter and unpacked with json_each(),
    # so every statement here is a fixed string.
    return None if ids is None else json.dumps(list(ids))


_CLAIM_EXPIRED = (
    "SELECT id, attempts, max_attempts FROM webhook_events"
    " WHERE status = 'processing' AND lease_until <= ?2"
    " AND (?1 IS NULL OR integration IN (SELECT value FROM json_each(?1)))"
    " LIMIT ?3"
)
# Walks the (status, available_at) index in order: no sort of the backlog.
_CLAIM_PENDING = (
    "SELECT id FROM webhook_events"
    " WHERE status = 'pending' AND available_at <= ?2"
    " AND (?1 IS NULL OR integration IN (SELECT value FROM json_each(?1)))"
    " ORDER BY available_at LIMIT ?3"
)


def claim(
    db: Database,
    *,
    limit: int,
    lease: float,
    now: float,
    integrations: Collection[str] | None = None,
) -> list[ClaimedEvent]:
    """Lease up to ``limit`` due events to the caller, oldest due first.

    Due means pending with ``available_at <= now``, or processing with an
    expired lease (``lease_until <= now``: its worker is presumed lost). An
    unexpired lease is never taken. Each claimed row becomes processing with
    ``lease_until = now + lease`` and one more attempt counted, in a single
    short transaction. An expired lease that had already used its last
    attempt is not handed out again: it goes to dead, because its handler
    apparently takes the worker down with it.

    A read-only look comes first, so idle polling never takes the write lock.

    :param integrations: claim only events of these integrations.
    """
    if limit < 1 or (integrations is not None and not integrations):
        return []
    names = _id_list(integrations)
    with _storage_errors("claim"):
        if not (
            db.query(_CLAIM_PENDING, (names, now, 1))
            or db.query(_CLAIM_EXPIRED, (names, now, 1))
        ):
            return []
        with db.write() as conn:
            expired = conn.execute(_CLAIM_EXPIRED, (names, now, limit)).fetchall()
            lost = [r[0] for r in expired if r[1] >= r[2]]
            taken = [r[0] for r in expired if r[1] < r[2]]
            if len(taken) < limit:
                rows = conn.execute(_CLAIM_PENDING, (names, now, limit - len(taken)))
                taken.extend(r[0] for r in rows)
            if lost:
                _mark_lost(conn, lost, now)
            if taken:
                conn.execute(
                    "UPDATE webhook_events SET status = 'processing',"
                    " lease_until = ?, attempts = attempts + 1, updated_at = ?"
                    " WHERE id IN (SELECT value FROM json_each(?))",
                    (now + lease, now, _id_list(taken)),
                )
        if not taken:
            return []
        # Payloads are read after the commit: the write lock is held only for
        # the small rows, and a leased row's payload does not change.
        return _load_claimed(db, taken, now + lease)


def _mark_lost(conn: sqlite3.Connection, ids: list[int], now: float) -> None:
    conn.execute(
        "UPDATE webhook_events SET status = 'dead', lease_until = NULL,"
        " updated_at = ?, last_error = 'lease expired during the final attempt"
        " (the worker stopped or crashed while handling the event)'"
        " WHERE id IN (SELECT value FROM json_each(?))",
        (now, _id_list(ids)),
    )
    log.warning("webhook events %s dead: lease expired on their final attempt", ids)


def _load_claimed(
    db: Database, ids: list[int], lease_until: float
) -> list[ClaimedEvent]:
    rows = db.query(
        "SELECT e.id, e.integration, e.event, e.delivery_id, e.attempts,"
        " e.max_attempts, p.headers, p.body FROM webhook_events e"
        " LEFT JOIN webhook_payloads p ON p.event_id = e.id"
        " WHERE e.id IN (SELECT value FROM json_each(?))"
        " ORDER BY e.available_at, e.id",
        (_id_list(ids),),
    )
    return [
        ClaimedEvent(
            id=row["id"],
            integration=row["integration"],
            event=row["event"],
            delivery_id=row["delivery_id"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            headers=json.loads(row["headers"]) if row["headers"] else {},
            body=bytes(row["body"] or b""),
            lease_until=lease_until,
        )
        for row in rows
    ]


def ack(db: Database, event_id: int, *, now: float, attempt: int | None = None) -> bool:
    """Mark a processing event done; returns whether it was still ours.

    :param attempt: the ``attempts`` value of the claim. When given, the
        event is only updated if no later claim took it over (the lease ran
        out and another worker claimed it).
    """
    with _storage_errors("ack"), db.write() as conn:
        cur = conn.execute(
            "UPDATE webhook_events SET status = 'done', lease_until = NULL,"
            " updated_at = ? WHERE id = ? AND status = 'processing'"
            " AND (?3 IS NULL OR attempts = ?3)",
            (now, event_id, attempt),
        )
        return cur.rowcount == 1


def fail(
    db: Database,
    event_id: int,
    *,
    error: str,
    retry_in: float | None,
    now: float,
    attempt: int | None = None,
) -> str:
    """Record a failed attempt; returns the new status.

    The event goes back to pending, due ``retry_in`` seconds from ``now``,
    unless ``retry_in`` is ``None`` (a permanent failure) or the attempt was
    its last, in which case it is dead. ``error`` is kept, shortened to its
    last :data:`MAX_ERROR_CHARS` characters. Returns ``"pending"`` or
    ``"dead"``, or ``"lost"`` when the event was no longer leased to this
    ``attempt`` (see :func:`ack`) and nothing changed.
    """
    if len(error) > MAX_ERROR_CHARS:
        error = "...\n" + error[-(MAX_ERROR_CHARS - 4) :]
    with _storage_errors("fail"), db.write() as conn:
        row = conn.execute(
            "SELECT attempts, max_attempts FROM webhook_events"
            " WHERE id = ? AND status = 'processing'"
            " AND (?2 IS NULL OR attempts = ?2)",
            (event_id, attempt),
        ).fetchone()
        if row is None:
            return "lost"
        dead = retry_in is None or row[0] >= row[1]
        status = DEAD if dead else PENDING
        conn.execute(
            "UPDATE webhook_events SET status = ?, available_at = ?,"
            " lease_until = NULL, updated_at = ?, last_error = ? WHERE id = ?",
            (status, now + (retry_in or 0.0), now, error, event_id),
        )
        return status


def list_events(
    db: Database,
    *,
    integration: str | None = None,
    status: str | None = None,
    event: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest events matching every filter given, without payloads."""
    with _storage_errors("list"):
        rows = db.query(
            "SELECT * FROM webhook_events"
            " WHERE (?1 IS NULL OR integration = ?1)"
            " AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR event = ?3)"
            " ORDER BY id DESC LIMIT ?4",
            (integration, status, event, max(0, limit)),
        )
    return [dict(row) for row in rows]


def get_event(db: Database, event_id: int) -> dict[str, Any] | None:
    """One event with its headers (secrets redacted) and body.

    ``body`` is the text decoded as UTF-8 (undecodable bytes replaced) and
    ``body_size`` its length in bytes; ``None`` if there is no such event.
    """
    with _storage_errors("get"):
        rows = db.query("SELECT * FROM webhook_events WHERE id = ?", (event_id,))
        if not rows:
            return None
        payload = db.query(
            "SELECT headers, body FROM webhook_payloads WHERE event_id = ?",
            (event_id,),
        )
    result = dict(rows[0])
    headers: dict[str, str] = json.loads(payload[0]["headers"]) if payload else {}
    body = bytes(payload[0]["body"]) if payload else b""
    result["headers"] = redact_headers(headers)
    result["body"] = body.decode("utf-8", errors="replace")
    result["body_size"] = len(body)
    return result


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credential and signature values hidden."""
    return {
        name: "[redacted]" if _is_sensitive(name) else value
        for name, value in headers.items()
    }


def _is_sensitive(name: str) -> bool:
    lower = name.lower()
    return lower in REDACTED_HEADERS or any(p in lower for p in REDACTED_NAME_PARTS)


def replay(
    db: Database,
    event_ids: Sequence[int] | None = None,
    *,
    status: str | None = DEAD,
    now: float,
) -> int:
    """Send events back to pending as fresh deliveries; returns how many.

    Replayed events get their attempts reset and are due at ``now``.

    :param event_ids: the events to replay; ``None`` for every event with
        ``status``.
    :param status: replay only events in this status; ``None`` allows dead,
        done and pending ones. Processing events are never replayed: a
        worker holds them.
    """
    if status == PROCESSING:
        raise ValueError("processing events are leased to a worker; not replayed")
    with _storage_errors("replay"), db.write() as conn:
        cur = conn.execute(
            "UPDATE webhook_events SET status = 'pending', attempts = 0,"
            " available_at = ?3, lease_until = NULL, updated_at = ?3"
            " WHERE (CASE WHEN ?1 IS NULL THEN status != 'processing'"
            " ELSE status = ?1 END)"
            " AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))",
            (status, _id_list(event_ids), now),
        )
        return cur.rowcount


def purge(
    db: Database,
    *,
    status: str | None = DONE,
    older_than: float | None = None,
    now: float,
) -> int:
    """Delete events and their payloads; returns how many events.

    :param status: delete only events in this status; ``None`` for every
        status except processing (a worker holds those).
    :param older_than: only events last updated at least this many seconds
        before ``now``; ``None`` for any age.
    """
    if status == PROCESSING:
        raise ValueError("processing events are leased to a worker; not purged")
    cutoff = None if older_than is None else now - older_than
    with _storage_errors("purge"), db.write() as conn:
        conn.execute(
            "DELETE FROM webhook_payloads WHERE event_id IN"
            " (SELECT id FROM webhook_events"
            " WHERE (CASE WHEN ?1 IS NULL THEN status != 'processing'"
            " ELSE status = ?1 END) AND (?2 IS NULL OR updated_at <= ?2))",
            (status, cutoff),
        )
        cur = conn.execute(
            "DELETE FROM webhook_events"
            " WHERE (CASE WHEN ?1 IS NULL THEN status != 'processing'"
            " ELSE status = ?1 END) AND (?2 IS NULL OR updated_at <= ?2)",
            (status, cutoff),
        )
        return cur.rowcount


def counts(db: Database) -> dict[str, dict[str, int]]:
    """Events per integration and status: ``{"github": {"done": 3, ...}}``."""
    with _storage_errors("counts"):
        rows = db.query(
            "SELECT integration, status, COUNT(*) FROM webhook_events"
            " GROUP BY integration, status"
        )
    result: dict[str, dict[str, int]] = {}
    for integration, status, n in rows:
        result.setdefault(integration, {})[status] = n
    return result
