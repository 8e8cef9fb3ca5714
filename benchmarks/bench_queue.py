"""The durable queue against persist-queue, litequeue and huey, side by side.

Run it from the repository root::

    python benchmarks/bench_queue.py            # backlogs of 1,000 and 100,000
    python benchmarks/bench_queue.py --quick    # backlogs of 1,000 and 10,000

What is measured, with 10 KB payloads, on files in a temporary folder on the
same disk as the working directory:

- **enqueue, 1 producer**: messages a second one thread stores, each call
  returning only after its commit (revo-sdk: ``synchronous=FULL``, WAL);
- **enqueue, 8 producers**: the same from 8 threads at once (revo-sdk's group
  commit lets them share syncs);
- **claim + ack at a backlog of N**: messages a second one consumer leases
  and acknowledges while N messages wait behind them. revo-sdk is measured
  the way its workers run (one message per claim, the ack riding on the next
  claim's transaction) and with claims of 32.

The fsync floor line measures one 10 KB append plus ``fsync`` on the same
disk: a per-message durable commit cannot beat it, so the enqueue rates are
also shown as a share of it. Comparison packages that are not installed are
skipped with a message. The machine is noisy: run it twice.

:func:`queue_benchmark` is the small entry point ``revo-sdk bench`` can call.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from revo_sdk._bench.queue import (
    BATCH,
    PAYLOAD,
    PRODUCERS,
    _timed_threads,
    queue_benchmark,
)

# -- revo-sdk ------------------------------------------------------------------


# -- the alternatives ----------------------------------------------------------


def _persist_queue(folder: Path) -> Any:
    import persistqueue  # type: ignore[import-untyped]  # optional, untyped

    return persistqueue.SQLiteAckQueue(
        str(folder), multithreading=True, auto_commit=True
    )


def _persist_enqueue(folder: Path, n: int, producers: int) -> float:
    q = _persist_queue(folder)
    per = max(1, n // producers)
    rate = (
        per
        * producers
        / _timed_threads(lambda _: [q.put(PAYLOAD) for _ in range(per)], producers)
    )
    q.close() if hasattr(q, "close") else None
    return rate


def _persist_claim_ack(folder: Path, backlog: int, m: int) -> float:
    q = _persist_queue(folder)
    for _ in range(backlog):
        q.put(PAYLOAD)
    started = time.perf_counter()
    for _ in range(m):
        item = q.get(raw=True)
        q.ack(id=item["pqid"])
    return m / (time.perf_counter() - started)


def _litequeue(path: Path) -> Any:
    from litequeue import LiteQueue  # type: ignore[import-untyped]  # optional

    return LiteQueue(str(path))


def _lite_enqueue(path: Path, n: int, producers: int) -> float:
    per = max(1, n // producers)
    local = threading.local()

    def produce(_: int) -> None:
        q = getattr(local, "q", None) or _litequeue(path)
        local.q = q
        for _ in range(per):
            q.put(PAYLOAD.decode())

    _litequeue(path)  # create the table before the race
    return per * producers / _timed_threads(produce, producers)


def _lite_claim_ack(path: Path, backlog: int, m: int) -> float:
    q = _litequeue(path)
    for _ in range(backlog):
        q.put(PAYLOAD.decode())
    started = time.perf_counter()
    for _ in range(m):
        message = q.pop()
        q.done(message.message_id)
    return m / (time.perf_counter() - started)


def _huey(path: Path) -> Any:
    from huey.storage import SqliteStorage  # type: ignore[import-untyped]  # optional

    return SqliteStorage(name="bench", filename=str(path))


def _huey_enqueue(path: Path, n: int, producers: int) -> float:
    storage = _huey(path)
    per = max(1, n // producers)
    return (
        per
        * producers
        / _timed_threads(
            lambda _: [storage.enqueue(PAYLOAD) for _ in range(per)], producers
        )
    )


def _huey_claim_ack(path: Path, backlog: int, m: int) -> float:
    # huey deletes a task as it dequeues it: there is no ack (at most once).
    storage = _huey(path)
    for _ in range(backlog):
        storage.enqueue(PAYLOAD)
    started = time.perf_counter()
    for _ in range(m):
        storage.dequeue()
    return m / (time.perf_counter() - started)


# -- helpers -------------------------------------------------------------------


# -- entry points --------------------------------------------------------------


def _alternatives(
    root: Path, n: int, backlogs: tuple[int, ...], m: int
) -> dict[str, dict[str, Any]]:
    makers: dict[str, tuple[Callable[..., float], Callable[..., float]]] = {
        "persist-queue": (_persist_enqueue, _persist_claim_ack),
        "litequeue": (_lite_enqueue, _lite_claim_ack),
        "huey (no ack)": (_huey_enqueue, _huey_claim_ack),
    }
    found: dict[str, dict[str, Any]] = {}
    for name, (enqueue, claim_ack) in makers.items():
        try:
            slot = root / name.split()[0]
            slot.mkdir()
            row: dict[str, Any] = {
                "enqueue_1": enqueue(slot / "e1", n, 1),
                "enqueue_8": enqueue(slot / "e8", n, PRODUCERS),
                "claim_ack": {},
            }
            for backlog in backlogs:
                row["claim_ack"][backlog] = claim_ack(slot / f"c{backlog}", backlog, m)
            found[name] = row
        except ImportError as exc:
            print(f"skipping {name}: not installed ({exc.name})", file=sys.stderr)
        finally:
            shutil.rmtree(root / name.split()[0], ignore_errors=True)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="backlogs 1k and 10k")
    parser.add_argument("-n", type=int, default=2000, help="messages per phase")
    parser.add_argument(
        "--others-claims",
        type=int,
        default=500,
        help="messages the alternatives claim per backlog (they are slow)",
    )
    args = parser.parse_args(argv)
    backlogs = (1_000, 10_000) if args.quick else (1_000, 100_000)
    other_backlogs = (1_000, 10_000)  # building 100k in them takes minutes

    here = Path.cwd()
    ours = queue_benchmark(here, args.n, backlogs)
    root = Path(tempfile.mkdtemp(prefix="revo-qbench-others-", dir=here))
    try:
        others = _alternatives(root, args.n, other_backlogs, args.others_claims)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    floor = ours["fsync_floor"]
    print(f"10 KB append + fsync on this disk: {floor:,.0f}/s (per-commit ceiling)")
    print()
    print(f"{'enqueue (msg/s)':<24}{'1 producer':>14}{'8 producers':>14}")
    print(
        f"{'revo-sdk (FULL)':<24}{ours['enqueue_1']:>14,.0f}{ours['enqueue_8']:>14,.0f}"
    )
    print(f"{'revo-sdk (NORMAL)':<24}{ours['enqueue_1_normal']:>14,.0f}")
    for name, row in others.items():
        ratio1 = ours["enqueue_1"] / row["enqueue_1"]
        ratio8 = ours["enqueue_8"] / row["enqueue_8"]
        print(
            f"{name:<24}{row['enqueue_1']:>14,.0f}{row['enqueue_8']:>14,.0f}"
            f"   revo-sdk x{ratio1:.2f} / x{ratio8:.2f}"
        )
    print(
        f"revo-sdk vs the fsync ceiling: 1 producer {ours['enqueue_1'] / floor:.2f},"
        f" 8 producers {ours['enqueue_8'] / floor:.2f}"
    )
    print()
    print("claim + ack (msg/s) by backlog")
    for backlog, rates in ours["claim_ack"].items():
        print(
            f"  revo-sdk   backlog {backlog:>7,}: one per claim {rates['one']:>8,.0f}"
            f"   claims of {BATCH} {rates['batch32']:>8,.0f}"
        )
    for name, row in others.items():
        for backlog, rate in row["claim_ack"].items():
            mine = ours["claim_ack"].get(backlog, {}).get("one")
            versus = f"   revo-sdk x{mine / rate:.1f}" if mine else ""
            print(f"  {name:<10} backlog {backlog:>7,}: {rate:>8,.0f}{versus}")
    flat = list(ours["claim_ack"].values())
    if len(flat) > 1:
        print(
            f"revo-sdk flatness (largest / smallest backlog, one per claim):"
            f" {flat[-1]['one'] / flat[0]['one']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
