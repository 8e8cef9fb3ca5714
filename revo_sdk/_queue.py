"""Durable queue operations on a :class:`~revo_sdk._db.Database`.

Plain functions with no state of their own beyond a per-database commit
group, so the manager's workers, the outbox, the command line and tests all
use the same code. A message (an incoming webhook, or an outgoing call of
the outbox: its ``kind``) moves through these statuses::

    pending --claim--> processing --ack--> done
       ^                   |
       +------fail---------+--(attempts used up, or permanent)--> dead

A claim is a lease: the row stays ``processing`` until ``lease_until`` and
nobody else may take it before then; :func:`extend_lease` moves that time on
for a long handler. A worker that dies mid-handler simply lets its lease run
out and the message is claimed again. Attempts are counted when a message
is claimed, not when it fails, so a message whose handler kills the process
every time still reaches ``dead`` instead of looping for ever. Nothing is
reset when a process opens the file.

Durability. :func:`enqueue` returns only after its transaction committed
with the database's ``synchronous`` setting (``FULL`` by default): an
acknowledged delivery survives a power cut. Concurrent callers share one
commit (group commit: the first caller commits for everyone who queued
behind it while it waited for the lock), while a lone caller commits at
once with no hand-off to another thread. Claims, acks, failures and lease
extensions commit with ``synchronous=NORMAL``: they survive a crash of the
process, and a power cut can only undo the last of them, which makes a
message run once more -- never lost.

Ordering. A message stored with an ``ordering_key`` is claimed only when no
other message with the same key is processing and no older one with that key
is pending: one in flight per key, oldest first (a message waiting for its
retry holds back the later ones of its key).

Deduplication. ``(integration, dedup_key)`` is unique among stored rows, and
:func:`purge` keeps the keys of the done rows it deletes in a small table
until :data:`DEDUP_TTL` after they were received, so a late redelivery is
still recognised.

Contention. Every write is one short ``BEGIN IMMEDIATE`` transaction with
the database's busy timeout; a ``database is locked`` that still gets
through is retried a bounded number of times (counted in :func:`stats`)
before it is reported as :class:`~revo_sdk.StorageError`.

Thread safety: the functions may be called from any thread; the database
gives each thread its own connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._db import Database
from ._exceptions import StorageError

log = logging.getLogger(__name__)

PENDING = "pending"
PROCESSING = "processing"
DONE = "done"
DEAD = "dead"
STATUSES = (PENDING, PROCESSING, DONE, DEAD)

WEBHOOK = "webhook"
OUTBOX = "outbox"
KINDS = (WEBHOOK, OUTBOX)

#: Longest ``first_error``/``last_error`` kept, in characters; the tail of a
#: traceback is the informative part, so the start is what gets cut.
MAX_ERROR_CHARS = 8000

#: Seconds a delivery's dedup key is remembered after it was received, even
#: once its done row was purged (GitHub redelivers up to 3 days later; Slack
#: within an hour).
DEDUP_TTL = 7 * 86400.0

#: Most messages one group commit writes in one transaction.
MAX_GROUP = 256

#: Extra transactions a leader commits for callers that queued while it
#: committed, before it hands the lead to one of them.
LEADER_ROUNDS = 2

#: Retries of an operation that met ``database is locked`` despite the busy
#: timeout, and the first pause between them (doubling, with jitter).
BUSY_RETRIES = 8
BUSY_PAUSE = 0.01

#: Rows deleted per transaction by :func:`purge`, so a large purge never
#: holds the write lock for long.
PURGE_CHUNK = 500

#: Header names shown as ``[redacted]`` by :func:`get_event`.
REDACTED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie"}
)
#: Any header whose name contains one of these is redacted too (signatures,
#: tokens, API keys).
REDACTED_NAME_PARTS = ("signature", "token", "secret", "api-key", "apikey")

T = TypeVar("T")


@dataclass(frozen=True)
class ClaimedEvent:
    """A message leased to the caller until ``lease_until``.

    ``attempts`` already counts this attempt (1 on the first try); pass it to
    :func:`ack`, :func:`fail` and :func:`extend_lease` so a worker whose lease
    ran out cannot overwrite the result of the worker that claimed the
    message after it.
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
    kind: str = WEBHOOK
    ordering_key: str | None = None


@dataclass(frozen=True)
class Message:
    """One message to store with :func:`enqueue_many`."""

    integration: str
    event: str
    delivery_id: str
    dedup_key: str
    headers: Mapping[str, str]
    body: bytes
    max_attempts: int
    kind: str = WEBHOOK
    ordering_key: str | None = None


# -- counters -----------------------------------------------------------------


class _Counters:
    """Process-wide operation counters; increments take a lock (rare paths)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, int] = {
            "busy_retries": 0,
            "busy_failures": 0,
            "group_commits": 0,
            "group_messages": 0,
        }

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.values[name] += n

    def add_group(self, size: int) -> None:
        with self._lock:
            self.values["group_commits"] += 1
            self.values["group_messages"] += size


_counters = _Counters()


def stats() -> dict[str, int]:
    """Counters of this process since start-up.

    ``busy_retries``: operations retried after ``database is locked``;
    ``busy_failures``: operations that stayed locked through every retry and
    were reported as :class:`~revo_sdk.StorageError`; ``group_commits`` and
    ``group_messages``: enqueue transactions and the messages they stored
    (their ratio is the mean group size).
    """
    with _counters._lock:
        return dict(_counters.values)


# -- helpers ------------------------------------------------------------------


@contextlib.contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    # Database.write() reports BEGIN and COMMIT failures itself; statements
    # inside the transaction (disk full, I/O error) raise sqlite3 errors.
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"{what} failed: {exc}") from exc


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _retrying(what: str, operation: Callable[[], T]) -> T:
    """Run ``operation``, retrying a bounded number of times while locked."""
    pause = BUSY_PAUSE
    for attempt in range(BUSY_RETRIES + 1):
        try:
            with _storage_errors(what):
                return operation()
        except StorageError as exc:
            if not _is_busy(exc) or attempt == BUSY_RETRIES:
                if _is_busy(exc):
                    _counters.add("busy_failures")
                raise
            _counters.add("busy_retries")
            log.info("%s: database busy, retry %d: %s", what, attempt + 1, exc)
        time.sleep(pause * (0.5 + random.random()))  # jitter, not security
        pause = min(pause * 2, 1.0)
    raise AssertionError("unreachable")  # pragma: no cover


_modes = threading.local()


@contextlib.contextmanager
def _write(db: Database, *, relaxed: bool = False) -> Iterator[sqlite3.Connection]:
    """``db.write()``, with ``synchronous=NORMAL`` for this commit if relaxed.

    In WAL mode a NORMAL commit is not synced to disk at once; the next
    FULL commit (or checkpoint) of any connection syncs it along. Each
    thread's connection remembers its mode, so a worker thread that only
    claims and acks switches once, not per transaction.
    """
    conn = db.connection()
    wanted = "NORMAL" if relaxed and db.synchronous in ("FULL", "EXTRA") else None
    wanted = wanted or db.synchronous
    current: dict[int, tuple[sqlite3.Connection, str]] = _modes.__dict__.setdefault(
        "by_conn", {}
    )
    known = current.get(id(conn))
    if known is None or known[0] is not conn or known[1] != wanted:
        conn.execute(f"PRAGMA synchronous = {wanted}")
        if len(current) >= 8:  # closed databases' connections: forget them
            current.clear()
        current[id(conn)] = (conn, wanted)
    with db.write() as txn:
        yield txn


def _id_list(ids: Collection[int] | Collection[str] | None) -> str | None:
    # Lists are passed as one JSON parameter and unpacked with json_each(),
    # so every statement here is a fixed string.
    return None if ids is None else json.dumps(list(ids))


def _clip(error: str) -> str:
    if len(error) > MAX_ERROR_CHARS:
        return "...\n" + error[-(MAX_ERROR_CHARS - 4) :]
    return error


# -- enqueue with group commit ------------------------------------------------


class _Waiter:
    __slots__ = ("error", "event", "lead", "message", "result")

    def __init__(self, message: Message, now: float) -> None:
        self.message = (message, now)
        self.result: tuple[int, bool] | None = None
        self.error: BaseException | None = None
        self.lead = False
        self.event: threading.Event | None = None

    def promoted(self) -> bool:
        """Whether the previous leader handed the commit over to this caller."""
        return self.lead


class _CommitGroup:
    """Leader/follower group commit for one database.

    The first caller to arrive while nobody commits becomes the leader and
    commits at once; callers arriving meanwhile queue up and wait. When the
    leader's transaction is done it answers the callers it carried, commits
    whoever queued meanwhile (at most :data:`LEADER_ROUNDS` more
    transactions, so its own caller is not held for long), then makes the
    first caller still queued the next leader. A lone caller therefore never
    waits for another thread, and under load one sync serves many callers.

    Thread safety: all state is guarded by ``_lock``, which is never held
    across SQLite calls.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._busy = False

    def submit(self, db: Database, message: Message, now: float) -> tuple[int, bool]:
        me = _Waiter(message, now)
        with self._lock:
            if self._busy:
                me.event = threading.Event()
                self._queue.append(me)
            else:
                self._busy = True
                me.lead = True
        if not me.lead:
            assert me.event is not None
            me.event.wait()
            if not me.promoted():
                return _outcome(me)
            with self._lock:
                self._queue.remove(me)

        batch = [me]
        try:
            with self._lock:
                batch += self._queue[: MAX_GROUP - 1]
                del self._queue[: MAX_GROUP - 1]
            _commit_batch(db, batch)
            # Callers that queued meanwhile: commit them too, a bounded
            # number of rounds, instead of waking one of them to do it.
            for _ in range(LEADER_ROUNDS):
                self._release(batch[1:])
                with self._lock:
                    batch = [me, *self._queue[:MAX_GROUP]]
                    del self._queue[:MAX_GROUP]
                if len(batch) == 1:
                    break
                _commit_batch(db, batch[1:])
        except BaseException as exc:  # never leave a follower waiting
            for waiter in batch:
                if waiter.result is None and waiter.error is None:
                    waiter.error = exc
            raise
        finally:
            self._release(batch[1:])
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
                else:
                    successor.lead = True
            if successor is not None:
                assert successor.event is not None
                successor.event.set()
        return _outcome(me)

    @staticmethod
    def _release(waiters: list[_Waiter]) -> None:
        for waiter in waiters:
            assert waiter.event is not None
            waiter.event.set()


def _outcome(waiter: _Waiter) -> tuple[int, bool]:
    error = waiter.error
    if isinstance(error, StorageError):
        # A fresh instance per caller: one exception raised in several
        # threads would share (and garble) its traceback.
        raise StorageError(str(error)) from error
    if error is not None:
        raise error
    assert waiter.result is not None
    return waiter.result


def _commit_batch(db: Database, batch: list[_Waiter]) -> None:
    def one_transaction(group: list[_Waiter]) -> None:
        with _write(db) as conn:
            results = [_insert(conn, *w.message) for w in group]
        for waiter, result in zip(group, results, strict=True):
            waiter.result = result
        _counters.add_group(len(group))

    try:
        _retrying("enqueue", lambda: one_transaction(batch))
        return
    except StorageError as exc:
        if len(batch) == 1:
            batch[0].error = exc
            return
    # One bad message must not fail the others: store them one by one.
    for waiter in batch:
        try:
            _retrying("enqueue", lambda w=waiter: one_transaction([w]))  # type: ignore[misc]  # default binds the loop variable
        except StorageError as exc:
            waiter.error = exc


_groups: weakref.WeakKeyDictionary[Database, _CommitGroup] = weakref.WeakKeyDictionary()
_groups_lock = threading.Lock()


def _group(db: Database) -> _CommitGroup:
    group = _groups.get(db)
    if group is None:
        with _groups_lock:
            group = _groups.setdefault(db, _CommitGroup())
    return group


def _insert(conn: sqlite3.Connection, message: Message, now: float) -> tuple[int, bool]:
    headers_json = json.dumps(dict(message.headers), separators=(",", ":"))
    remembered = conn.execute(
        "SELECT event_id FROM webhook_dedup"
        " WHERE integration = ? AND dedup_key = ? AND expires_at > ?",
        (message.integration, message.dedup_key, now),
    ).fetchone()
    if remembered is not None:
        return int(remembered[0]), False

    cur = conn.execute(
        "INSERT OR IGNORE INTO webhook_events (integration, event, delivery_id,"
        " dedup_key, status, attempts, max_attempts, available_at, received_at,"
        " updated_at, kind, ordering_key)"
        " VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?)",
        (
            message.integration,
            message.event,
            message.delivery_id,
            message.dedup_key,
            message.max_attempts,
            now,
            now,
            now,
            message.kind,
            message.ordering_key,
        ),
    )
    if cur.rowcount == 1:
        event_id = int(cur.lastrowid or 0)
        conn.execute(
            "INSERT OR REPLACE INTO webhook_payloads VALUES (?, ?, ?)",
            (event_id, headers_json, message.body),
        )
        return event_id, True

    row = conn.execute(
        "SELECT id, status FROM webhook_events WHERE integration = ? AND dedup_key = ?",
        (message.integration, message.dedup_key),
    ).fetchone()
    event_id = int(row[0])
    if row[1] != DEAD:
        return event_id, False

    conn.execute(
        "UPDATE webhook_events SET status = 'pending', attempts = 0,"
        " max_attempts = ?, event = ?, delivery_id = ?, available_at = ?,"
        " lease_until = NULL, received_at = ?, updated_at = ?, ordering_key = ?"
        " WHERE id = ?",
        (
            message.max_attempts,
            message.event,
            message.delivery_id,
            now,
            now,
            now,
            message.ordering_key,
            event_id,
        ),
    )
    conn.execute(
        "INSERT OR REPLACE INTO webhook_payloads VALUES (?, ?, ?)",
        (event_id, headers_json, message.body),
    )
    return event_id, True


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
    kind: str = WEBHOOK,
    ordering_key: str | None = None,
) -> tuple[int, bool]:
    """Store one message durably; returns ``(event_id, created)``.

    A message whose ``(integration, dedup_key)`` is stored as pending,
    processing or done, or was done and purged less than :data:`DEDUP_TTL`
    ago, is a duplicate: nothing changes and ``created`` is false. One
    stored as dead is accepted again as a new attempt: it goes back to
    pending with its attempts reset and the new headers and body. Returns
    only after the transaction committed; concurrent callers share one
    commit (see the module docstring).

    :param kind: ``"webhook"`` or ``"outbox"``.
    :param ordering_key: at most one message with this key in flight.
    :raises StorageError: the store could not commit the message.
    """
    message = Message(
        integration=integration,
        event=event,
        delivery_id=delivery_id,
        dedup_key=dedup_key,
        headers=headers,
        body=body,
        max_attempts=max_attempts,
        kind=kind,
        ordering_key=ordering_key,
    )
    return _group(db).submit(db, message, now)


def enqueue_many(
    db: Database, messages: Sequence[Message], *, now: float
) -> list[tuple[int, bool]]:
    """Store several messages in one transaction; same rules as :func:`enqueue`."""
    if not messages:
        return []

    def run() -> list[tuple[int, bool]]:
        with _write(db) as conn:
            return [_insert(conn, m, now) for m in messages]

    return _retrying("enqueue", run)


# -- claims -------------------------------------------------------------------

_FILTERS = (
    " AND (?1 IS NULL OR integration IN (SELECT value FROM json_each(?1)))"
    " AND (?4 IS NULL OR kind IN (SELECT value FROM json_each(?4)))"
)
_CLAIM_EXPIRED = (
    "SELECT id, attempts, max_attempts, ordering_key FROM webhook_events"  # noqa: S608  # constant fragments only
    " WHERE status = 'processing' AND lease_until <= ?2" + _FILTERS + " LIMIT ?3"
)
# Walks the (status, available_at) index in order: no sort of the backlog.
# A keyed message waits while another of its key is processing, or an older
# one of its key is pending.
_CLAIM_PENDING = (
    "SELECT id, ordering_key FROM webhook_events e"  # noqa: S608  # constant fragments only
    " WHERE status = 'pending' AND available_at <= ?2" + _FILTERS + " AND"
    " (ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_events o"
    " WHERE o.ordering_key = e.ordering_key AND (o.status = 'processing'"
    " OR (o.status = 'pending' AND o.id < e.id))))"
    " ORDER BY available_at LIMIT ?3"
)
_ANY_DUE = (
    "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE status = 'pending'"  # noqa: S608  # constant fragments only
    " AND available_at <= ?2" + _FILTERS + ") OR EXISTS (SELECT 1"
    " FROM webhook_events WHERE status = 'processing' AND lease_until <= ?2"
    + _FILTERS
    + ")"
)


def claim(
    db: Database,
    *,
    limit: int,
    lease: float,
    now: float,
    integrations: Collection[str] | None = None,
    kinds: Collection[str] | None = None,
) -> list[ClaimedEvent]:
    """Lease up to ``limit`` due messages to the caller, oldest due first.

    Due means pending with ``available_at <= now`` (and, for a keyed
    message, its turn: see the module docstring), or processing with an
    expired lease (``lease_until <= now``: its worker is presumed lost). An
    unexpired lease is never taken. Each claimed row becomes processing with
    ``lease_until = now + lease`` and one more attempt counted, in a single
    short transaction. An expired lease that had already used its last
    attempt is not handed out again: it goes to dead, because its handler
    apparently takes the worker down with it.

    A read-only look comes first, so idle polling never takes the write lock.

    :param integrations: claim only messages of these integrations.
    :param kinds: claim only messages of these kinds (``None``: any).
    """
    return ack_and_claim(
        db,
        done=(),
        limit=limit,
        lease=lease,
        now=now,
        integrations=integrations,
        kinds=kinds,
    )[1]


def ack_and_claim(
    db: Database,
    *,
    done: Sequence[tuple[int, int | None]],
    limit: int,
    lease: float,
    now: float,
    integrations: Collection[str] | None = None,
    kinds: Collection[str] | None = None,
    probe: bool = True,
) -> tuple[int, list[ClaimedEvent]]:
    """Ack ``done`` and claim the next messages in one transaction.

    What a worker loop calls: the ack of the message it just finished rides
    on the claim of the next one, so a cycle costs one commit. Returns
    ``(acked, claimed)``: how many of ``done`` were still ours (see
    :func:`ack_many`) and what :func:`claim` would return.

    :param probe: look for due messages with a read first (skipped when
        there is something to ack); pass false when the last call found
        work, to save the read while a backlog lasts.
    """
    no_claim = limit < 1 or (integrations is not None and not integrations)
    no_claim = no_claim or (kinds is not None and not kinds)
    names = _id_list(integrations)
    kind_list = _id_list(kinds)
    if not done:
        if no_claim:
            return 0, []
        params = (names, now, 1, kind_list)
        if probe and not _retrying("claim", lambda: db.query(_ANY_DUE, params)[0][0]):
            return 0, []
    return _retrying(
        "claim",
        lambda: _take(
            db, done, names, kind_list, 0 if no_claim else limit, lease=lease, now=now
        ),
    )


def _take(
    db: Database,
    done: Sequence[tuple[int, int | None]],
    names: str | None,
    kind_list: str | None,
    limit: int,
    *,
    lease: float,
    now: float,
) -> tuple[int, list[ClaimedEvent]]:
    with _write(db, relaxed=True) as conn:
        acked = _ack_rows(conn, done, now)
        if limit < 1:
            return acked, []
        expired = conn.execute(
            _CLAIM_EXPIRED, (names, now, limit, kind_list)
        ).fetchall()
        lost = [r[0] for r in expired if r[1] >= r[2]]
        taken = [r[0] for r in expired if r[1] < r[2]]
        keys = {r[3] for r in expired if r[3] is not None}
        if len(taken) < limit:
            rows = conn.execute(
                _CLAIM_PENDING, (names, now, limit - len(taken), kind_list)
            )
            for event_id, key in rows:
                if key is not None:
                    if key in keys:
                        continue
                    keys.add(key)
                taken.append(event_id)
        if lost:
            _mark_lost(conn, lost, now)
        if not taken:
            return acked, []
        conn.execute(
            "UPDATE webhook_events SET status = 'processing',"
            " lease_until = ?, attempts = attempts + 1, updated_at = ?"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (now + lease, now, _id_list(taken)),
        )
        # Read inside the transaction: the pages were just touched, and the
        # payloads are small next to the cost of a separate read.
        return acked, _load_claimed(conn, taken, now + lease)


def _ack_rows(
    conn: sqlite3.Connection, items: Sequence[tuple[int, int | None]], now: float
) -> int:
    acked = 0
    for event_id, attempt in items:
        cur = conn.execute(
            "UPDATE webhook_events SET status = 'done', lease_until = NULL,"
            " updated_at = ? WHERE id = ? AND status = 'processing'"
            " AND (?3 IS NULL OR attempts = ?3)",
            (now, event_id, attempt),
        )
        acked += cur.rowcount
    return acked


_LOST_ERROR = (
    "lease expired during the final attempt"
    " (the worker stopped or crashed while handling the event)"
)


def _mark_lost(conn: sqlite3.Connection, ids: list[int], now: float) -> None:
    conn.execute(
        "UPDATE webhook_events SET status = 'dead', lease_until = NULL,"
        " updated_at = ?1, last_error = ?2, first_error = COALESCE(first_error, ?2)"
        " WHERE id IN (SELECT value FROM json_each(?3))",
        (now, _LOST_ERROR, _id_list(ids)),
    )
    log.warning("queue messages %s dead: lease expired on their final attempt", ids)


def _load_claimed(
    conn: sqlite3.Connection, ids: list[int], lease_until: float
) -> list[ClaimedEvent]:
    rows = conn.execute(
        "SELECT e.id, e.integration, e.event, e.delivery_id, e.attempts,"
        " e.max_attempts, p.headers, p.body, e.kind, e.ordering_key"
        " FROM webhook_events e LEFT JOIN webhook_payloads p ON p.event_id = e.id"
        " WHERE e.id IN (SELECT value FROM json_each(?))"
        " ORDER BY e.available_at, e.id",
        (_id_list(ids),),
    )
    return [
        ClaimedEvent(
            id=row[0],
            integration=row[1],
            event=row[2],
            delivery_id=row[3],
            attempts=row[4],
            max_attempts=row[5],
            headers=json.loads(row[6]) if row[6] else {},
            body=bytes(row[7] or b""),
            lease_until=lease_until,
            kind=row[8],
            ordering_key=row[9],
        )
        for row in rows
    ]


def extend_lease(
    db: Database, event_id: int, *, attempt: int, lease: float, now: float
) -> bool:
    """Move a held lease to ``now + lease``; returns whether it was still ours.

    A lease is never shortened. Returns false when another claim took the
    message over (its lease had run out), or it is no longer processing.
    """

    def run() -> bool:
        with _write(db, relaxed=True) as conn:
            cur = conn.execute(
                "UPDATE webhook_events SET lease_until = MAX(lease_until, ?1),"
                " updated_at = ?2 WHERE id = ?3 AND status = 'processing'"
                " AND attempts = ?4",
                (now + lease, now, event_id, attempt),
            )
            return cur.rowcount == 1

    return _retrying("extend lease", run)


def ack(db: Database, event_id: int, *, now: float, attempt: int | None = None) -> bool:
    """Mark a processing message done; returns whether it was still ours.

    :param attempt: the ``attempts`` value of the claim. When given, the
        message is only updated if no later claim took it over (the lease
        ran out and another worker claimed it).
    """
    return ack_many(db, [(event_id, attempt)], now=now) == 1


def ack_many(
    db: Database, items: Sequence[tuple[int, int | None]], *, now: float
) -> int:
    """Mark several processing messages done in one transaction.

    ``items`` holds ``(event_id, attempt)`` pairs as for :func:`ack`.
    Returns how many were still ours and are now done.
    """
    if not items:
        return 0

    def run() -> int:
        with _write(db, relaxed=True) as conn:
            return _ack_rows(conn, items, now)

    return _retrying("ack", run)


def fail(
    db: Database,
    event_id: int,
    *,
    error: str,
    retry_in: float | None,
    now: float,
    attempt: int | None = None,
    counts: bool = True,
) -> str:
    """Record a failed attempt; returns the new status.

    With ``counts=False`` the attempt taken at claim time is given back (the
    work was refused before it was tried), so the message can never die of
    refusals alone.

    The message goes back to pending, due ``retry_in`` seconds from ``now``,
    unless ``retry_in`` is ``None`` (a permanent failure) or the attempt was
    its last, in which case it is dead. ``error`` is kept as ``last_error``
    (and as ``first_error`` if it is the first), shortened to its last
    :data:`MAX_ERROR_CHARS` characters. Returns ``"pending"`` or
    ``"dead"``, or ``"lost"`` when the message was no longer leased to this
    ``attempt`` (see :func:`ack`) and nothing changed.
    """
    error = _clip(error)

    def run() -> str:
        with _write(db, relaxed=True) as conn:
            row = conn.execute(
                "SELECT attempts, max_attempts FROM webhook_events"
                " WHERE id = ? AND status = 'processing'"
                " AND (?2 IS NULL OR attempts = ?2)",
                (event_id, attempt),
            ).fetchone()
            if row is None:
                return "lost"
            refund = not counts and retry_in is not None and row[0] > 0
            dead = retry_in is None or (not refund and row[0] >= row[1])
            status = DEAD if dead else PENDING
            conn.execute(
                "UPDATE webhook_events SET status = ?1, available_at = ?2,"
                " lease_until = NULL, updated_at = ?3, last_error = ?4,"
                " first_error = COALESCE(first_error, ?4),"
                " attempts = attempts - ?6 WHERE id = ?5",
                (status, now + (retry_in or 0.0), now, error, event_id, int(refund)),
            )
            return status

    return _retrying("fail", run)


# -- views --------------------------------------------------------------------


_SELECT_FILTERED = (
    " WHERE (?1 IS NULL OR integration = ?1)"
    " AND (CASE WHEN ?2 IS NULL THEN 1 ELSE status = ?2 END)"
    " AND (?3 IS NULL OR event = ?3)"
    " AND (?4 IS NULL OR updated_at <= ?4)"
    " AND (?5 IS NULL OR kind = ?5)"
)


def list_events(
    db: Database,
    *,
    integration: str | None = None,
    status: str | None = None,
    event: str | None = None,
    kind: str | None = None,
    older_than: float | None = None,
    now: float | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest messages matching every filter given, without payloads.

    :param kind: ``"webhook"`` or ``"outbox"``; ``None`` for both.
    :param older_than: only messages last updated at least this many
        seconds before ``now`` (default: the current time).
    """
    cutoff = _cutoff(older_than, now)
    rows = _retrying(
        "list",
        lambda: db.query(
            "SELECT * FROM webhook_events"  # noqa: S608  # constant fragments only
            + _SELECT_FILTERED
            + " ORDER BY id DESC"
            " LIMIT ?6",
            (integration, status, event, cutoff, kind, max(0, limit)),
        ),
    )
    return [dict(row) for row in rows]


def _cutoff(older_than: float | None, now: float | None) -> float | None:
    if older_than is None:
        return None
    return (time.time() if now is None else now) - older_than


def get_event(db: Database, event_id: int) -> dict[str, Any] | None:
    """One message with its headers (secrets redacted) and body.

    ``body`` is the text decoded as UTF-8 (undecodable bytes replaced) and
    ``body_size`` its length in bytes; ``None`` if there is no such message.
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
    integration: str | None = None,
    event: str | None = None,
    kind: str | None = None,
    older_than: float | None = None,
    limit: int | None = None,
    rate: float | None = None,
) -> int:
    """Send messages back to pending as fresh deliveries; returns how many.

    Replayed messages get their attempts reset and are due at ``now``; the
    errors they met are kept. Every filter given must match.

    :param event_ids: the messages to replay; ``None`` for every message
        matching the filters.
    :param status: replay only messages in this status; ``None`` allows
        dead, done and pending ones. Processing messages are never
        replayed: a worker holds them.
    :param older_than: only messages last updated at least this many seconds
        before ``now``.
    :param limit: replay at most this many, oldest first.
    :param rate: spread the replayed messages out to at most this many per
        second (the n-th becomes due ``n / rate`` seconds after ``now``), so
        a bulk replay does not hit a handler or a provider all at once.
    """
    if status == PROCESSING:
        raise ValueError("processing messages are leased to a worker; not replayed")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0")
    cutoff = _cutoff(older_than, now)
    params = (integration, status, event, cutoff, kind, _id_list(event_ids))
    query = (
        "SELECT id FROM webhook_events"  # noqa: S608  # constant fragments only
        + _SELECT_FILTERED
        + " AND status != 'processing'"
        " AND (?6 IS NULL OR id IN (SELECT value FROM json_each(?6)))"
        " ORDER BY id LIMIT ?7"
    )

    def run() -> int:
        with _write(db) as conn:
            ids = [r[0] for r in conn.execute(query, (*params, limit or -1))]
            conn.executemany(
                "UPDATE webhook_events SET status = 'pending', attempts = 0,"
                " available_at = ?1, lease_until = NULL, updated_at = ?2"
                " WHERE id = ?3",
                [
                    (now + (n / rate if rate else 0.0), now, event_id)
                    for n, event_id in enumerate(ids)
                ],
            )
            return len(ids)

    return _retrying("replay", run)


def purge(
    db: Database,
    *,
    status: str | None = DONE,
    older_than: float | None = None,
    now: float,
    integration: str | None = None,
    kind: str | None = None,
) -> int:
    """Delete messages and their payloads; returns how many messages.

    Deletes in transactions of :data:`PURGE_CHUNK` rows, so other writers
    are never held up for long. The dedup keys of deleted done rows are
    kept (see :data:`DEDUP_TTL`), and expired remembered keys are dropped.

    :param status: delete only messages in this status; ``None`` for every
        status except processing (a worker holds those).
    :param older_than: only messages last updated at least this many
        seconds before ``now``; ``None`` for any age.
    """
    if status == PROCESSING:
        raise ValueError("processing messages are leased to a worker; not purged")
    cutoff = _cutoff(older_than, now)
    select = (
        "SELECT id, integration, dedup_key, status, received_at"  # noqa: S608  # constant fragments only
        " FROM webhook_events"
        + _SELECT_FILTERED
        + " AND status != 'processing' LIMIT ?6"
    )
    params = (integration, status, None, cutoff, kind, PURGE_CHUNK)

    def chunk() -> int:
        with _write(db) as conn:
            rows = conn.execute(select, params).fetchall()
            keep = [
                (r[1], r[2], r[0], r[4] + DEDUP_TTL)
                for r in rows
                if r[3] == DONE and r[4] + DEDUP_TTL > now
            ]
            conn.executemany(
                "INSERT OR REPLACE INTO webhook_dedup VALUES (?, ?, ?, ?)", keep
            )
            ids = _id_list([r[0] for r in rows])
            conn.execute(
                "DELETE FROM webhook_payloads"
                " WHERE event_id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            conn.execute(
                "DELETE FROM webhook_events"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            return len(rows)

    total = 0
    while True:
        deleted = _retrying("purge", chunk)
        total += deleted
        if deleted < PURGE_CHUNK:
            break

    def forget() -> None:
        with _write(db) as conn:
            conn.execute("DELETE FROM webhook_dedup WHERE expires_at <= ?", (now,))

    _retrying("purge", forget)
    return total


def apply_retention(
    db: Database,
    *,
    done: float | None,
    dead: float | None,
    now: float,
) -> dict[str, int]:
    """Purge done and dead messages older than their retention, in seconds.

    ``None`` keeps that status for ever. Returns ``{"done": n, "dead": m}``.
    """
    purged = {DONE: 0, DEAD: 0}
    for status, age in ((DONE, done), (DEAD, dead)):
        if age is not None:
            purged[status] = purge(db, status=status, older_than=age, now=now)
    return purged


def counts(db: Database, *, kind: str | None = None) -> dict[str, dict[str, int]]:
    """Messages per integration and status: ``{"github": {"done": 3, ...}}``.

    :param kind: count only ``"webhook"`` or ``"outbox"`` messages.
    """
    with _storage_errors("counts"):
        if kind is None:
            rows = db.query(
                "SELECT integration, status, COUNT(*) FROM webhook_events"
                " GROUP BY integration, status"
            )
        else:
            rows = db.query(
                "SELECT integration, status, COUNT(*) FROM webhook_events"
                " WHERE kind = ? GROUP BY integration, status",
                (kind,),
            )
    result: dict[str, dict[str, int]] = {}
    for integration, status, n in rows:
        result.setdefault(integration, {})[status] = n
    return result
