"""The durable queue measured alone, for ``revo-sdk bench`` and
``benchmarks/bench_queue.py`` (which adds persist-queue, litequeue and huey).

Rates are messages a second with 10 KB payloads; the fsync floor (one 10 KB
append plus ``fsync`` on the same disk) bounds what a per-message durable
commit can reach, so enqueue rates are best read as a share of it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _queue as queue
from .._db import Database

PAYLOAD = os.urandom(5 * 1024).hex().encode()  # 10 KB of text
PRODUCERS = 8
BATCH = 32


def _message(key: str) -> queue.Message:
    return queue.Message(
        integration="bench",
        event="push",
        delivery_id=key,
        dedup_key=key,
        headers={"Content-Type": "application/json"},
        body=PAYLOAD,
        max_attempts=5,
    )


def _revo_enqueue(
    path: Path, n: int, producers: int, synchronous: str = "FULL"
) -> float:
    db = Database(path, synchronous=synchronous)
    per = max(1, n // producers)

    def produce(p: int) -> None:
        for i in range(per):
            queue.enqueue(
                db,
                integration="bench",
                event="push",
                delivery_id=f"{p}-{i}",
                dedup_key=f"{p}-{i}",
                headers={"Content-Type": "application/json"},
                body=PAYLOAD,
                max_attempts=5,
                now=time.time(),
            )

    try:
        return per * producers / _timed_threads(produce, producers)
    finally:
        db.close()


def _revo_backlog(path: Path, backlog: int) -> Database:
    db = Database(path)
    for start in range(0, backlog, 1000):
        keys = range(start, min(backlog, start + 1000))
        queue.enqueue_many(db, [_message(f"b{k}") for k in keys], now=time.time())
    db.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


def _revo_claim_ack(db: Database, m: int, batch: int) -> float:
    started = time.perf_counter()
    handled = 0
    done: list[tuple[int, int | None]] = []
    while handled < m:
        _, claimed = queue.ack_and_claim(
            db,
            done=done,
            limit=min(batch, m - handled),
            lease=60,
            now=time.time(),
            probe=not done,
        )
        if not claimed:
            break
        handled += len(claimed)
        done = [(c.id, c.attempts) for c in claimed]
    queue.ack_many(db, done, now=time.time())
    return handled / (time.perf_counter() - started)


def _timed_threads(work: Callable[[int], object], count: int) -> float:
    if count == 1:
        started = time.perf_counter()
        work(0)
        return time.perf_counter() - started
    barrier = threading.Barrier(count + 1)

    def run(n: int) -> None:
        barrier.wait()
        work(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def fsync_floor(folder: Path, n: int = 300) -> float:
    """Appends of 10 KB plus ``fsync`` a second on ``folder``'s disk."""
    path = folder / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        started = time.perf_counter()
        for _ in range(n):
            os.write(fd, PAYLOAD)
            os.fsync(fd)
        return n / (time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()


def queue_benchmark(
    db_dir: str | os.PathLike[str],
    n: int = 2000,
    backlogs: tuple[int, ...] = (1_000, 100_000),
) -> dict[str, Any]:
    """Measure revo-sdk's queue alone; returns rates in messages a second.

    ``{"fsync_floor": f, "enqueue_1": a, "enqueue_8": b, "enqueue_1_normal":
    c (no sync per commit), "claim_ack":
    {backlog: {"one": d, "batch32": e}}}``. Files are made under ``db_dir``
    and removed. ``n`` messages are enqueued per measurement and at most
    ``n`` claimed per backlog; building a 100,000-message backlog writes
    about 1 GB and takes a few seconds.
    """
    root = Path(tempfile.mkdtemp(prefix="revo-qbench-", dir=db_dir))
    try:
        result: dict[str, Any] = {"fsync_floor": fsync_floor(root)}
        result["enqueue_1"] = _revo_enqueue(root / "e1.db", n, 1)
        result["enqueue_8"] = _revo_enqueue(root / "e8.db", n, PRODUCERS)
        # Without a sync per commit, as litequeue and persist-queue run.
        result["enqueue_1_normal"] = _revo_enqueue(root / "n1.db", n, 1, "NORMAL")
        result["claim_ack"] = {}
        for backlog in backlogs:
            path = root / f"c{backlog}.db"
            db = _revo_backlog(path, backlog + 2 * n + 200)
            try:
                _revo_claim_ack(db, min(n, 200), 1)  # warm the page cache
                result["claim_ack"][backlog] = {
                    "one": _revo_claim_ack(db, n, 1),
                    "batch32": _revo_claim_ack(db, n, BATCH),
                }
            finally:
                db.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)
