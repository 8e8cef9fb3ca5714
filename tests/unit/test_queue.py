"""Storage operations of the durable webhook queue, on real SQLite files."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from revo_sdk import _queue as queue
from revo_sdk._db import Database

T0 = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "queue.db")
    yield database
    database.close()


def put(db: Database, key: str, *, integration: str = "github", **kw: Any) -> int:
    options: dict[str, Any] = {
        "event": "push",
        "headers": {"X-Test": "1"},
        "body": b'{"n": 1}',
        "max_attempts": 3,
        "now": T0,
    }
    options.update(kw)
    event_id, created = queue.enqueue(
        db,
        integration=integration,
        delivery_id=key,
        dedup_key=key,
        **options,
    )
    assert created
    return event_id


def status_of(db: Database, event_id: int) -> str:
    return str(
        db.query("SELECT status FROM webhook_events WHERE id = ?", (event_id,))[0][0]
    )


def test_enqueue_new_delivery_stored_pending(db: Database) -> None:
    """A first delivery is stored as pending, with its headers and body."""
    event_id = put(db, "d1", headers={"X-A": "b"}, body=b"hello")

    [row] = queue.list_events(db)
    assert (row["id"], row["status"], row["attempts"]) == (event_id, "pending", 0)
    shown = queue.get_event(db, event_id)
    assert shown is not None
    assert shown["headers"] == {"X-A": "b"}
    assert (shown["body"], shown["body_size"]) == ("hello", 5)


@pytest.mark.parametrize("status", ["pending", "processing", "done"])
def test_enqueue_duplicate_of_live_event_stored_once(db: Database, status: str) -> None:
    """A redelivery of a pending, processing or done event changes nothing."""
    event_id = put(db, "d1", body=b"first")
    db.connection().execute(
        "UPDATE webhook_events SET status = ? WHERE id = ?", (status, event_id)
    )

    again = queue.enqueue(
        db,
        integration="github",
        event="push",
        delivery_id="d1",
        dedup_key="d1",
        headers={},
        body=b"second",
        max_attempts=3,
        now=T0 + 5,
    )

    assert again == (event_id, False)
    assert status_of(db, event_id) == status
    shown = queue.get_event(db, event_id)
    assert shown is not None
    assert shown["body"] == "first"


def test_enqueue_same_key_other_integration_is_separate(db: Database) -> None:
    """Deduplication is per integration."""
    first = put(db, "d1", integration="github")
    second = put(db, "d1", integration="jira")
    assert first != second


def test_enqueue_dead_event_accepted_as_new_attempt(db: Database) -> None:
    """A redelivery of a dead event resets it to pending with the new body."""
    event_id = put(db, "d1", body=b"old", max_attempts=1)
    [claimed] = queue.claim(db, limit=1, lease=30, now=T0)
    assert queue.fail(db, event_id, error="boom", retry_in=1, now=T0) == "dead"

    again = queue.enqueue(
        db,
        integration="github",
        event="push",
        delivery_id="d1-again",
        dedup_key="d1",
        headers={"X-New": "1"},
        body=b"new",
        max_attempts=4,
        now=T0 + 10,
    )

    assert again == (event_id, True)
    [row] = queue.list_events(db)
    assert (row["status"], row["attempts"], row["max_attempts"]) == ("pending", 0, 4)
    assert row["delivery_id"] == "d1-again"
    [claimed] = queue.claim(db, limit=1, lease=30, now=T0 + 10)
    assert (claimed.body, claimed.headers) == (b"new", {"X-New": "1"})


def test_enqueue_visible_to_another_connection_on_return(tmp_path: Path) -> None:
    """When enqueue returns, the row is committed: a fresh Database sees it."""
    writer = Database(tmp_path / "q.db")
    reader = Database(tmp_path / "q.db")
    try:
        event_id = put(writer, "d1")
        assert status_of(reader, event_id) == "pending"
    finally:
        writer.close()
        reader.close()


def test_claim_leases_event_and_counts_attempt(db: Database) -> None:
    """A claim makes the event processing until now + lease, attempt 1."""
    event_id = put(db, "d1", headers={"H": "v"}, body=b"b")

    [claimed] = queue.claim(db, limit=5, lease=30, now=T0 + 1)

    assert (claimed.id, claimed.attempts, claimed.max_attempts) == (event_id, 1, 3)
    assert (claimed.headers, claimed.body) == ({"H": "v"}, b"b")
    assert claimed.lease_until == T0 + 31
    [row] = queue.list_events(db)
    assert (row["status"], row["lease_until"], row["attempts"]) == (
        "processing",
        T0 + 31,
        1,
    )


def test_claim_never_takes_unexpired_lease(db: Database) -> None:
    """While its lease runs, an event is invisible to other claims."""
    put(db, "d1")
    queue.claim(db, limit=1, lease=30, now=T0)
    assert queue.claim(db, limit=1, lease=30, now=T0 + 29.999) == []


def test_claim_takes_expired_lease_again(db: Database) -> None:
    """An expired lease is reclaimed, with one more attempt counted."""
    event_id = put(db, "d1")
    queue.claim(db, limit=1, lease=30, now=T0)

    [again] = queue.claim(db, limit=1, lease=30, now=T0 + 30)

    assert (again.id, again.attempts) == (event_id, 2)


def test_claim_expired_final_attempt_goes_dead(db: Database) -> None:
    """An event whose last attempt lost its worker is dead, not retried."""
    event_id = put(db, "d1", max_attempts=1)
    queue.claim(db, limit=1, lease=30, now=T0)

    assert queue.claim(db, limit=1, lease=30, now=T0 + 31) == []

    [row] = queue.list_events(db)
    assert row["status"] == "dead"
    assert "lease expired" in row["last_error"]
    assert row["id"] == event_id


def test_claim_waits_for_available_at(db: Database) -> None:
    """An event retried later is not due before its time."""
    event_id = put(db, "d1")
    queue.claim(db, limit=1, lease=30, now=T0)
    queue.fail(db, event_id, error="x", retry_in=10, now=T0)

    assert queue.claim(db, limit=1, lease=30, now=T0 + 9) == []
    assert [c.id for c in queue.claim(db, limit=1, lease=30, now=T0 + 10)] == [event_id]


def test_claim_oldest_due_first_within_limit(db: Database) -> None:
    """Claims take the earliest due events first, at most ``limit``."""
    ids = [put(db, f"d{n}", now=T0 + n) for n in range(5)]
    claimed = queue.claim(db, limit=3, lease=30, now=T0 + 10)
    assert [c.id for c in claimed] == ids[:3]


def test_claim_filters_integrations(db: Database) -> None:
    """Only the named integrations are claimed when a filter is given."""
    put(db, "a", integration="github")
    jira = put(db, "b", integration="jira")

    claimed = queue.claim(db, limit=5, lease=30, now=T0, integrations=["jira"])

    assert [c.id for c in claimed] == [jira]
    assert queue.claim(db, limit=5, lease=30, now=T0, integrations=[]) == []


def test_claim_concurrent_threads_never_share_an_event(tmp_path: Path) -> None:
    """Threads claiming at once each get distinct events, all of them once."""
    db = Database(tmp_path / "q.db", synchronous="OFF")
    ids = {put(db, f"d{n}") for n in range(120)}
    taken: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(200):  # bounded; stops early once the queue is empty
            got = queue.claim(db, limit=3, lease=60, now=T0)
            if not got:
                return
            with lock:
                taken.extend(c.id for c in got)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    db.close()

    assert sorted(taken) == sorted(ids)


def test_ack_marks_done(db: Database) -> None:
    """An acknowledged event is done and no longer claimable."""
    event_id = put(db, "d1")
    [claimed] = queue.claim(db, limit=1, lease=30, now=T0)

    assert queue.ack(db, event_id, now=T0 + 1, attempt=claimed.attempts)

    assert status_of(db, event_id) == "done"
    assert queue.claim(db, limit=1, lease=30, now=T0 + 100) == []


def test_ack_from_superseded_claim_is_ignored(db: Database) -> None:
    """A worker whose lease expired and was reclaimed cannot ack."""
    event_id = put(db, "d1")
    [first] = queue.claim(db, limit=1, lease=30, now=T0)
    [second] = queue.claim(db, limit=1, lease=30, now=T0 + 31)

    assert not queue.ack(db, event_id, now=T0 + 32, attempt=first.attempts)
    assert queue.fail(db, event_id, error="x", retry_in=1, now=T0 + 32, attempt=1) == (
        "lost"
    )
    assert status_of(db, event_id) == "processing"
    assert queue.ack(db, event_id, now=T0 + 33, attempt=second.attempts)


def test_fail_retries_until_max_attempts_then_dead(db: Database) -> None:
    """Failures go back to pending until the last attempt, which is dead."""
    event_id = put(db, "d1", max_attempts=3)
    now = T0
    results = []
    for _ in range(3):
        queue.claim(db, limit=1, lease=30, now=now)
        results.append(queue.fail(db, event_id, error="boom", retry_in=5, now=now))
        now += 5

    assert results == ["pending", "pending", "dead"]
    [row] = queue.list_events(db)
    assert (row["attempts"], row["last_error"]) == (3, "boom")


def test_fail_without_retry_is_dead_at_once(db: Database) -> None:
    """``retry_in=None`` marks a permanent failure."""
    event_id = put(db, "d1", max_attempts=5)
    queue.claim(db, limit=1, lease=30, now=T0)
    assert queue.fail(db, event_id, error="no", retry_in=None, now=T0) == "dead"


def test_fail_keeps_tail_of_long_error(db: Database) -> None:
    """A long error is cut from the start so its last line survives."""
    event_id = put(db, "d1")
    queue.claim(db, limit=1, lease=30, now=T0)
    error = "x" * 50_000 + "\nValueError: the end"

    queue.fail(db, event_id, error=error, retry_in=1, now=T0)

    [row] = queue.list_events(db)
    assert len(row["last_error"]) == queue.MAX_ERROR_CHARS
    assert row["last_error"].endswith("ValueError: the end")


def test_list_events_filters_newest_first(db: Database) -> None:
    """Listing filters by integration, status and event, newest first."""
    a = put(db, "a", event="push")
    b = put(db, "b", event="issues")
    c = put(db, "c", integration="jira", event="push")

    assert [r["id"] for r in queue.list_events(db, integration="github")] == [b, a]
    assert [r["id"] for r in queue.list_events(db, event="push")] == [c, a]
    assert [r["id"] for r in queue.list_events(db, limit=1)] == [c]
    assert [r["id"] for r in queue.list_events(db, status="done")] == []
    assert "body" not in queue.list_events(db)[0]


def test_get_event_redacts_signatures_and_credentials(db: Database) -> None:
    """Signature and credential headers are hidden when an event is shown."""
    event_id = put(
        db,
        "d1",
        headers={
            "X-Hub-Signature-256": "sha256=abc",
            "Authorization": "Bearer t",
            "X-GitHub-Event": "push",
        },
    )
    shown = queue.get_event(db, event_id)
    assert shown is not None
    assert shown["headers"] == {
        "X-Hub-Signature-256": "[redacted]",
        "Authorization": "[redacted]",
        "X-GitHub-Event": "push",
    }
    assert queue.get_event(db, event_id + 100) is None


def test_replay_dead_events_back_to_pending(db: Database) -> None:
    """Replay resets dead events to pending with their attempts cleared."""
    dead = put(db, "d1", max_attempts=1)
    alive = put(db, "d2")
    queue.claim(db, limit=1, lease=30, now=T0)
    queue.fail(db, dead, error="x", retry_in=None, now=T0)

    assert queue.replay(db, now=T0 + 1) == 1
    assert status_of(db, dead) == "pending"
    assert queue.replay(db, [alive], now=T0 + 1) == 0
    assert queue.replay(db, [alive], status=None, now=T0 + 1) == 1
    with pytest.raises(ValueError, match="leased"):
        queue.replay(db, status="processing", now=T0)


def test_replay_never_touches_processing_events(db: Database) -> None:
    """Replaying with no status filter leaves leased events alone."""
    event_id = put(db, "d1")
    queue.claim(db, limit=1, lease=30, now=T0)
    assert queue.replay(db, [event_id], status=None, now=T0) == 0
    assert status_of(db, event_id) == "processing"


def test_purge_deletes_old_done_events_and_payloads(db: Database) -> None:
    """Purge removes done events older than the cutoff, with their payloads."""
    old = put(db, "old", now=T0)
    new = put(db, "new", now=T0)
    queue.claim(db, limit=2, lease=300, now=T0)
    queue.ack(db, old, now=T0)
    queue.ack(db, new, now=T0 + 100)
    put(db, "pending", now=T0)

    assert queue.purge(db, older_than=50, now=T0 + 100) == 1

    assert queue.get_event(db, old) is None
    payloads = db.query("SELECT event_id FROM webhook_payloads")
    assert old not in {row[0] for row in payloads}
    assert queue.purge(db, status=None, now=T0 + 100) == 2


def test_counts_by_integration_and_status(db: Database) -> None:
    """Counts group events per integration and status."""
    put(db, "a")
    put(db, "b")
    put(db, "c", integration="jira")
    queue.claim(db, limit=1, lease=30, now=T0, integrations=["jira"])

    assert queue.counts(db) == {"github": {"pending": 2}, "jira": {"processing": 1}}


def test_storage_failure_surfaces_as_storage_error(tmp_path: Path) -> None:
    """SQLite errors inside an operation become StorageError."""
    from revo_sdk import StorageError

    db = Database(tmp_path / "q.db")
    db.connection().execute("DROP TABLE webhook_payloads")
    with pytest.raises(StorageError):
        put(db, "d1")
    db.close()


# -- leases, errors, ordering, dedup, replay, retention ----------------------


def test_extend_lease_keeps_claim_from_others(db: Database) -> None:
    """An extended lease is not reclaimed at its original expiry."""
    event_id = put(db, "d1")
    [held] = queue.claim(db, limit=1, lease=30, now=T0)

    assert queue.extend_lease(db, event_id, attempt=1, lease=60, now=T0 + 20)

    assert queue.claim(db, limit=1, lease=30, now=T0 + 79) == []
    [again] = queue.claim(db, limit=1, lease=30, now=T0 + 80)
    assert (again.id, again.attempts) == (held.id, 2)


def test_extend_lease_after_takeover_refused(db: Database) -> None:
    """A worker whose lease was taken over cannot extend the new holder's lease."""
    event_id = put(db, "d1")
    queue.claim(db, limit=1, lease=30, now=T0)
    queue.claim(db, limit=1, lease=30, now=T0 + 30)

    assert not queue.extend_lease(db, event_id, attempt=1, lease=600, now=T0 + 31)
    assert queue.list_events(db)[0]["lease_until"] == T0 + 60


def test_fail_keeps_first_and_last_error(db: Database) -> None:
    """Dead letters keep the first failure beside the last one."""
    event_id = put(db, "d1", max_attempts=2)
    queue.claim(db, limit=1, lease=30, now=T0)
    queue.fail(db, event_id, error="first boom", retry_in=0, now=T0)
    queue.claim(db, limit=1, lease=30, now=T0)
    assert queue.fail(db, event_id, error="second boom", retry_in=0, now=T0) == "dead"

    [row] = queue.list_events(db)
    assert (row["first_error"], row["last_error"]) == ("first boom", "second boom")


def test_ack_and_claim_acks_previous_and_claims_next(db: Database) -> None:
    """One call acks the finished message and leases the next one."""
    first = put(db, "d1")
    second = put(db, "d2", now=T0 + 1)
    [held] = queue.claim(db, limit=1, lease=30, now=T0 + 1)

    acked, [nxt] = queue.ack_and_claim(
        db, done=[(held.id, held.attempts)], limit=1, lease=30, now=T0 + 2
    )

    assert (acked, held.id, nxt.id) == (1, first, second)
    assert status_of(db, first) == "done"


def test_ordering_key_one_in_flight_oldest_first(db: Database) -> None:
    """Messages sharing a key are claimed one at a time, in order."""
    a1 = put(db, "a1", ordering_key="repo-a")
    a2 = put(db, "a2", ordering_key="repo-a", now=T0 + 1)
    b1 = put(db, "b1", ordering_key="repo-b", now=T0 + 2)

    claimed = queue.claim(db, limit=10, lease=30, now=T0 + 5)
    assert {c.id for c in claimed} == {a1, b1}
    assert queue.claim(db, limit=10, lease=30, now=T0 + 5) == []
    queue.ack(db, b1, now=T0 + 5)

    queue.fail(db, a1, error="x", retry_in=100, now=T0 + 6)
    assert queue.claim(db, limit=10, lease=30, now=T0 + 7) == []  # a1 first

    [retried] = queue.claim(db, limit=10, lease=30, now=T0 + 106)
    assert retried.id == a1
    queue.ack(db, a1, now=T0 + 107)
    assert [c.id for c in queue.claim(db, limit=10, lease=30, now=T0 + 107)] == [a2]


def test_purged_done_key_still_deduplicates(db: Database) -> None:
    """A redelivery after its done row was purged is still a duplicate for 7 days."""
    event_id = put(db, "d1")
    queue.claim(db, limit=1, lease=30, now=T0)
    queue.ack(db, event_id, now=T0)
    assert queue.purge(db, status="done", now=T0 + 10) == 1

    again = queue.enqueue(
        db,
        integration="github",
        event="push",
        delivery_id="d1",
        dedup_key="d1",
        headers={},
        body=b"again",
        max_attempts=3,
        now=T0 + queue.DEDUP_TTL - 1,
    )
    assert again == (event_id, False)
    assert queue.list_events(db) == []

    queue.purge(db, status="done", now=T0 + queue.DEDUP_TTL)  # forgets the key
    assert put(db, "d1", now=T0 + queue.DEDUP_TTL + 1) != 0


def test_replay_filters_limit_and_rate(db: Database) -> None:
    """Replay by filter takes the oldest matches and spreads them over time."""
    ids = [put(db, f"d{n}", max_attempts=1, now=T0 + n) for n in range(4)]
    jira = put(db, "j", integration="jira", max_attempts=1, now=T0 + 5)
    for _ in [*ids, jira]:
        [held] = queue.claim(db, limit=1, lease=30, now=T0 + 10)
        queue.fail(db, held.id, error="x", retry_in=None, now=T0 + 10)

    replayed = queue.replay(db, integration="github", limit=3, rate=2.0, now=T0 + 20)

    assert replayed == 3
    due = {r["id"]: r["available_at"] for r in queue.list_events(db, status="pending")}
    assert due == {ids[0]: T0 + 20, ids[1]: T0 + 20.5, ids[2]: T0 + 21}
    assert status_of(db, jira) == "dead"


def test_apply_retention_purges_by_status_and_age(db: Database) -> None:
    """Retention deletes done and dead rows past their own ages only."""
    done_id = put(db, "done", max_attempts=1)
    dead_id = put(db, "dead", max_attempts=1, now=T0 + 1)
    [first] = queue.claim(db, limit=1, lease=30, now=T0 + 2)
    queue.ack(db, first.id, now=T0 + 2)
    [second] = queue.claim(db, limit=1, lease=30, now=T0 + 2)
    queue.fail(db, second.id, error="x", retry_in=None, now=T0 + 2)
    assert {first.id, second.id} == {done_id, dead_id}

    assert queue.apply_retention(db, done=100, dead=1000, now=T0 + 50) == {
        "done": 0,
        "dead": 0,
    }
    assert queue.apply_retention(db, done=100, dead=1000, now=T0 + 200) == {
        "done": 1,
        "dead": 0,
    }
    assert [r["id"] for r in queue.list_events(db)] == [dead_id]


def test_enqueue_concurrent_callers_share_commits(tmp_path: Path) -> None:
    """Many threads enqueueing at once all get committed, distinct rows."""
    db = Database(tmp_path / "group.db")
    before = queue.stats()
    results: list[tuple[int, bool]] = []
    lock = threading.Lock()

    def produce(n: int) -> None:
        for i in range(50):
            result = queue.enqueue(
                db,
                integration="g",
                event="e",
                delivery_id=f"{n}-{i}",
                dedup_key=f"{n}-{i}",
                headers={},
                body=b"x",
                max_attempts=1,
                now=T0,
            )
            with lock:
                results.append(result)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    after = queue.stats()
    try:
        assert len({event_id for event_id, _ in results}) == 400
        assert all(created for _, created in results)
        assert queue.counts(db) == {"g": {"pending": 400}}
        commits = after["group_commits"] - before["group_commits"]
        stored = after["group_messages"] - before["group_messages"]
        assert stored == 400
        assert commits <= 400
    finally:
        db.close()


# -- model-based check ------------------------------------------------------


class QueueMachine(RuleBasedStateMachine):
    """Random enqueue/claim/ack/fail/replay sequences against a plain model."""

    tokens = Bundle("tokens")

    @initialize()
    def open_db(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="revo-queue-")
        self.db = Database(Path(self.dir) / "q.db", synchronous="OFF")
        self.now = T0
        self.model: dict[str, dict[str, Any]] = {}
        self.ids: dict[str, int] = {}

    def teardown(self) -> None:
        if hasattr(self, "db"):
            self.db.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(key=st.sampled_from("abcde"), max_attempts=st.integers(1, 3))
    def enqueue(self, key: str, max_attempts: int) -> None:
        event_id, created = queue.enqueue(
            self.db,
            integration="i",
            event="e",
            delivery_id=key,
            dedup_key=key,
            headers={},
            body=key.encode(),
            max_attempts=max_attempts,
            now=self.now,
        )
        known = self.model.get(key)
        expect_created = known is None or known["status"] == "dead"
        assert created == expect_created
        if created:
            self.model[key] = {
                "status": "pending",
                "attempts": 0,
                "max": max_attempts,
                "available": self.now,
                "lease": None,
            }
        self.ids.setdefault(key, event_id)
        assert self.ids[key] == event_id

    @rule(target=tokens, lease=st.sampled_from([5.0, 20.0]))
    def claim(self, lease: float) -> list[tuple[str, int]]:
        claimed = queue.claim(self.db, limit=100, lease=lease, now=self.now)
        expected = set()
        for key, m in self.model.items():
            expired = m["status"] == "processing" and m["lease"] <= self.now
            due = m["status"] == "pending" and m["available"] <= self.now
            if expired and m["attempts"] >= m["max"]:
                m.update(status="dead", lease=None)
            elif expired or due:
                expected.add(key)
                m.update(status="processing", lease=self.now + lease)
                m["attempts"] += 1
        by_id = {v: k for k, v in self.ids.items()}
        assert {by_id[c.id] for c in claimed} == expected
        return [(by_id[c.id], c.attempts) for c in claimed]

    @rule(held=tokens, retry=st.sampled_from([None, 0.0, 3.0]), ok=st.booleans())
    def finish(
        self, held: list[tuple[str, int]], retry: float | None, ok: bool
    ) -> None:
        for key, attempt in held:
            m = self.model[key]
            ours = m["status"] == "processing" and m["attempts"] == attempt
            if ok:
                done = queue.ack(self.db, self.ids[key], now=self.now, attempt=attempt)
                assert done == ours
                if ours:
                    m.update(status="done", lease=None)
                continue
            status = queue.fail(
                self.db,
                self.ids[key],
                error="e",
                retry_in=retry,
                now=self.now,
                attempt=attempt,
            )
            if not ours:
                assert status == "lost"
                continue
            dead = retry is None or m["attempts"] >= m["max"]
            assert status == ("dead" if dead else "pending")
            m.update(status=status, lease=None, available=self.now + (retry or 0))

    @rule(seconds=st.sampled_from([1.0, 4.0, 25.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def replay_dead(self) -> None:
        count = queue.replay(self.db, now=self.now)
        dead = [m for m in self.model.values() if m["status"] == "dead"]
        assert count == len(dead)
        for m in dead:
            m.update(status="pending", attempts=0, available=self.now)

    @invariant()
    def rows_match_model(self) -> None:
        if not hasattr(self, "db"):
            return
        rows = self.db.query("SELECT dedup_key, status, attempts FROM webhook_events")
        actual = {r[0]: (r[1], r[2]) for r in rows}
        assert actual == {
            k: (m["status"], m["attempts"]) for k, m in self.model.items()
        }


QueueMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None, database=None
)
test_queue_matches_model = QueueMachine.TestCase


def test_fail_without_counting_gives_the_attempt_back(db: Database) -> None:
    """A refusal before the work was tried never uses up the last attempt."""
    event_id = put(db, "r1", max_attempts=1)
    [item] = queue.claim(db, limit=1, lease=30, now=T0)
    status = queue.fail(
        db, event_id, error="breaker open", retry_in=5, now=T0, counts=False
    )
    assert status == "pending"
    [row] = queue.list_events(db)
    assert row["attempts"] == item.attempts - 1
    [again] = queue.claim(db, limit=1, lease=30, now=T0 + 5)
    assert queue.fail(db, again.id, error="500", retry_in=5, now=T0 + 5) == "dead"
