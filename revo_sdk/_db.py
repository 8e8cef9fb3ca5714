"""The SQLite file that holds everything that must outlive the process.

One file, in WAL mode, shared by every thread of a process and by several
processes on one host. Each thread gets its own connection (SQLite
connections are thread-bound); writes run in ``BEGIN IMMEDIATE`` transactions
with a busy timeout, and the schema evolves through numbered migrations.

Thread safety: a :class:`Database` may be shared by any number of threads.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ._exceptions import StorageError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


def _m001_webhooks(conn: sqlite3.Connection) -> None:
    # Claims scan webhook_events only; payloads live in their own table so a
    # large body never slows the claim query down.
    _run_script(
        conn,
        """
        CREATE TABLE webhook_events (
            id INTEGER PRIMARY KEY,
            integration TEXT NOT NULL,
            event TEXT NOT NULL,
            delivery_id TEXT NOT NULL,
            dedup_key TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            available_at REAL NOT NULL,
            lease_until REAL,
            received_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            last_error TEXT
        );
        CREATE UNIQUE INDEX webhook_events_dedup
            ON webhook_events (integration, dedup_key);
        CREATE INDEX webhook_events_ready
            ON webhook_events (status, available_at);
        CREATE TABLE webhook_payloads (
            event_id INTEGER PRIMARY KEY,
            headers TEXT NOT NULL,
            body BLOB NOT NULL
        );
        """,
    )


def _m002_metrics(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE metric_attempts (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            integration TEXT NOT NULL,
            method TEXT NOT NULL,
            route TEXT NOT NULL,
            status INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL,
            latency_ms REAL NOT NULL,
            attempt INTEGER NOT NULL,
            rate_limit_wait_ms REAL NOT NULL DEFAULT 0
        );
        CREATE INDEX metric_attempts_ts ON metric_attempts (integration, ts);
        CREATE TABLE metric_events (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            integration TEXT NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            value REAL NOT NULL DEFAULT 0
        );
        CREATE INDEX metric_events_ts ON metric_events (integration, ts);
        """,
    )


def _m010_monitoring(conn: sqlite3.Connection) -> None:
    # Rollups of metric_attempts/metric_events (per minute, then per hour),
    # health probe results and alert history; see revo_sdk/_rollup.py.
    _run_script(
        conn,
        """
        CREATE TABLE metric_rollups (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            resolution INTEGER NOT NULL,
            integration TEXT NOT NULL,
            method TEXT NOT NULL,
            route TEXT NOT NULL,
            outcome TEXT NOT NULL,
            retry INTEGER NOT NULL,
            n INTEGER NOT NULL,
            latency_n INTEGER NOT NULL,
            latency_sum_ms REAL NOT NULL,
            latency_hist TEXT NOT NULL,
            waits INTEGER NOT NULL,
            wait_ms REAL NOT NULL
        );
        CREATE INDEX metric_rollups_ts ON metric_rollups (resolution, ts);
        CREATE TABLE metric_event_rollups (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            resolution INTEGER NOT NULL,
            integration TEXT NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL,
            n INTEGER NOT NULL,
            value REAL NOT NULL,
            last_value REAL NOT NULL,
            last_ts REAL NOT NULL
        );
        CREATE INDEX metric_event_rollups_ts ON metric_event_rollups (resolution, ts);
        CREATE TABLE health_checks (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            integration TEXT NOT NULL,
            ok INTEGER NOT NULL,
            status INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            error TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX health_checks_ts ON health_checks (integration, ts);
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL,
            integration TEXT NOT NULL,
            severity TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            threshold REAL NOT NULL,
            message TEXT NOT NULL,
            fired_at REAL NOT NULL,
            resolved_at REAL,
            resolved_value REAL
        );
        CREATE INDEX alerts_open ON alerts (resolved_at, rule, integration);
        """,
    )


def _m003_queue_semantics(conn: sqlite3.Connection) -> None:
    # first_error: dead letters keep the first failure beside the last one.
    # kind: "webhook" or "outbox" (outgoing calls share the queue machinery).
    # ordering_key: at most one event per key in flight, oldest first.
    _run_script(
        conn,
        """
        ALTER TABLE webhook_events ADD COLUMN first_error TEXT;
        ALTER TABLE webhook_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
        ALTER TABLE webhook_events ADD COLUMN ordering_key TEXT;
        CREATE INDEX webhook_events_ordering
            ON webhook_events (ordering_key, status, id)
            WHERE ordering_key IS NOT NULL
        """,
    )


def _m004_dedup_keys(conn: sqlite3.Connection) -> None:
    # Keys of purged done events, so a late redelivery is still a duplicate
    # for the dedup window even after its row is gone.
    _run_script(
        conn,
        """
        CREATE TABLE webhook_dedup (
            integration TEXT NOT NULL,
            dedup_key TEXT NOT NULL,
            event_id INTEGER NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (integration, dedup_key)
        ) WITHOUT ROWID;
        CREATE INDEX webhook_dedup_expiry ON webhook_dedup (expires_at)
        """,
    )


def _m011_one_firing_alert(conn: sqlite3.Connection) -> None:
    # Several processes may evaluate alerts on one file: at most one firing
    # row per rule and integration, so an edge is stored (and told) once.
    _run_script(
        conn,
        """
        UPDATE alerts SET resolved_at = fired_at
            WHERE resolved_at IS NULL AND id NOT IN (
                SELECT MAX(id) FROM alerts WHERE resolved_at IS NULL
                GROUP BY rule, integration);
        CREATE UNIQUE INDEX alerts_one_firing
            ON alerts (rule, integration) WHERE resolved_at IS NULL
        """,
    )


#: Append-only: never edit or reorder an applied migration, add a new one.
MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("m001_webhooks", _m001_webhooks),
    ("m002_metrics", _m002_metrics),
    ("m003_queue_semantics", _m003_queue_semantics),
    ("m004_dedup_keys", _m004_dedup_keys),
    ("m010_monitoring", _m010_monitoring),
    ("m011_one_firing_alert", _m011_one_firing_alert),
]


class Database:
    """A SQLite file with per-thread connections and migrations applied.

    :param path: the database file; created with its folder if missing.
    :param synchronous: SQLite's ``synchronous`` setting; ``FULL`` (the
        default) makes every commit durable across a power loss.
    """

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", readonly: bool = False
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.readonly = readonly
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        if readonly:
            self._check_readable()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._migrate()

    def _check_readable(self) -> None:
        """Refuse a file that is missing or not a revo-sdk database, without
        changing it (read-only mode never migrates or switches to WAL)."""
        if not self.path.is_file():
            raise StorageError(f"no database at {self.path}")
        conn = self._open()
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = '_revo_migrations'"
            ).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(
                f"{self.path} is not a readable SQLite file: {exc}"
            ) from exc
        finally:
            conn.close()
        if found is None:
            raise StorageError(f"{self.path} is not a revo-sdk database")

    def pending_migrations(self) -> list[str]:
        """Names of the migrations this code knows that the file lacks."""
        done = {row[0] for row in self.query("SELECT name FROM _revo_migrations")}
        return [name for name, _ in MIGRATIONS if name not in done]

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StorageError(f"database {self.path} is closed")
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            # Autocommit mode: transactions are begun explicitly below.
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro"
                if self.readonly
                else self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
                uri=self.readonly,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self.readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction, committed when the block ends.

        Taking the write lock up front means a transaction never fails half
        way with ``database is locked``; waiting for the lock is bounded by
        the busy timeout and retried a few times before it is reported.
        """
        conn = self.connection()
        for attempt in range(5):
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StorageError(str(exc)) from exc
                log.warning("database %s busy (attempt %d)", self.path, attempt + 1)
                time.sleep(0.05 * (attempt + 1))
        else:
            raise StorageError(f"database {self.path} stayed locked")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise StorageError(f"commit failed: {exc}") from exc

    def query(
        self, sql: str, params: tuple[object, ...] | dict[str, object] = ()
    ) -> list[sqlite3.Row]:
        """Run a read-only statement and return its rows (as ``sqlite3.Row``)."""
        conn = self.connection()
        cur = conn.execute(sql, params)
        cur.row_factory = sqlite3.Row
        return list(cur.fetchall())

    def _migrate(self) -> None:
        conn = self._open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS _revo_migrations "
                "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM _revo_migrations")}
            for name, migrate in MIGRATIONS:
                if name not in done:
                    log.info("applying migration %s to %s", name, self.path)
                    migrate(conn)
                    conn.execute(
                        "INSERT INTO _revo_migrations VALUES (?, ?)",
                        (name, time.time()),
                    )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise StorageError(f"cannot prepare database {self.path}: {exc}") from exc
        finally:
            conn.close()

    def close(self) -> None:
        """Close every connection this object opened."""
        self._closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would commit the migration's transaction first, so the
    # statements run one by one inside it. Migration scripts hold no string
    # literals with semicolons.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
