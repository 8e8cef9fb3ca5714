"""Hot-path cost of recording metrics, side by side in one run.

Measures, per call on the calling thread: ``Metrics.record_attempt`` and
``Metrics.record_event`` (revo-sdk, flusher writing to a SQLite file in a
temporary folder; and without a database, where recording is only an
append), and, when prometheus-client is installed, a labelled
``Counter.inc`` plus ``Histogram.observe`` (what an attempt costs when
recorded straight into prometheus-client). Prints nanoseconds per call and
the ratios. Run: ``python benchmarks/bench_metrics_record.py [calls]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from revo_sdk._db import Database
from revo_sdk._metrics import Metrics
from revo_sdk._records import AttemptRecord

REPEATS = 5


def per_call_ns(func: Callable[[], None], calls: int) -> float:
    """Median over REPEATS runs of the nanoseconds one call takes."""
    runs = []
    for _ in range(REPEATS):
        started = time.perf_counter_ns()
        for _ in range(calls):
            func()
        runs.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(runs)


def main(calls: int) -> None:
    record = AttemptRecord(
        "github", "GET", "/repos/{owner}/{repo}", 200, "ok", "", 0.05, 1, time.time()
    )
    results: dict[str, float] = {}
    memory_only = Metrics(None)
    results["revo record_attempt, no flusher"] = per_call_ns(
        lambda: memory_only.record_attempt(record), calls
    )
    memory_only.close()
    results["empty lambda (loop overhead)"] = per_call_ns(lambda: None, calls)
    with tempfile.TemporaryDirectory() as folder:
        db = Database(Path(folder) / "bench.db", synchronous="NORMAL")
        metrics = Metrics(lambda: db, flush_interval=0.5)
        results["revo record_attempt"] = per_call_ns(
            lambda: metrics.record_attempt(record), calls
        )
        results["revo record_event"] = per_call_ns(
            lambda: metrics.record_event("github", "cache_hit", "/r", 1.0), calls
        )
        started = time.perf_counter()
        metrics.close()
        closing = time.perf_counter() - started
        db.close()

    try:
        from prometheus_client import CollectorRegistry, Counter, Histogram
    except ImportError:
        print("prometheus-client not installed: skipping its comparison")
    else:
        registry = CollectorRegistry()
        counter = Counter(
            "c", "c", ["integration", "route", "outcome"], registry=registry
        )
        histogram = Histogram("h", "h", ["integration", "route"], registry=registry)

        def prometheus_attempt() -> None:
            counter.labels("github", "/repos/{owner}/{repo}", "ok").inc()
            histogram.labels("github", "/repos/{owner}/{repo}").observe(0.05)

        results["prometheus_client inc+observe"] = per_call_ns(
            prometheus_attempt, calls
        )

    base = results["revo record_attempt"]
    print("the flusher thread shares the GIL: its SQLite writes show up here")
    print(f"{calls} calls per run, median of {REPEATS} runs")
    for name, ns in results.items():
        print(f"  {name:<32} {ns:8.0f} ns/call   x{ns / base:5.2f}")
    print(f"  close() wrote the remaining rows in {closing:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
