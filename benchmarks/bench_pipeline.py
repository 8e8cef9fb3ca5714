"""Per-call cost of the revo-sdk pipeline against the usual alternatives.

Every contender makes the same GET against the bench emulator (started in a
process of its own on 127.0.0.1, faults off), so this process's CPU time is
spent on the client side only. Contenders:

- ``urllib3``: a bare ``PoolManager`` (the floor everything is compared to);
- ``requests``: a ``requests.Session`` as most code uses it;
- ``requests (no env)``: the same with ``trust_env = False``;
- ``requests+tenacity``, ``requests+pybreaker``, ``requests+tenacity+pybreaker``:
  a session wrapped in the popular retry and breaker libraries, when they are
  installed (skipped otherwise);
- ``revo-sdk``: ``client.<name>.get(..., cache=False)`` with every layer on
  (retry, breaker, limiter, bulkhead, metrics);
- ``revo-sdk (cache hit)``: the same call answered from the response cache.

Contenders run interleaved for several rounds and the median round is kept,
which evens out a noisy machine. Run::

    python benchmarks/bench_pipeline.py --calls 3000 --rounds 3 [--threads 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import urllib3

from revo_sdk import (
    BreakerPolicy,
    BulkheadPolicy,
    Client,
    IntegrationConfig,
    LimiterPolicy,
)
from revo_sdk._bench.emulator import EmulatorProcess

UNCACHED = "/rest/api/2/serverInfo"
CACHED = "/rest/api/2/project"  # the Jira provider caches project lists
HEADERS = {"Authorization": "Bearer bench-token", "Accept": "application/json"}

Call = Callable[[], int]


def contenders(base: str, client: Client, threads: int) -> dict[str, Call]:
    """Name -> a function making one call and returning its status."""
    pool = urllib3.PoolManager(maxsize=threads, retries=False)
    session = requests.Session()
    plain = requests.Session()
    plain.trust_env = False
    for s in (session, plain):
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=threads)
        s.mount("http://", adapter)

    def raw() -> int:
        response = pool.request("GET", base + UNCACHED, headers=HEADERS)
        _ = response.data
        return response.status

    def with_session(s: requests.Session) -> Call:
        def call() -> int:
            response = s.get(base + UNCACHED, headers=HEADERS, timeout=(10, 30))
            _ = response.content
            return response.status_code

        return call

    def pipeline() -> int:
        return int(client.jira.get(UNCACHED, cache=False).status_code)

    def cache_hit() -> int:
        return int(client.jira.get(CACHED).status_code)

    found: dict[str, Call] = {
        "urllib3": raw,
        "requests": with_session(session),
        "requests (no env)": with_session(plain),
    }
    found.update(_wrapped(with_session(plain)))
    found["revo-sdk"] = pipeline
    found["revo-sdk (cache hit)"] = cache_hit
    return found


def _wrapped(call: Call) -> dict[str, Call]:
    """``call`` wrapped in tenacity and pybreaker, for those installed."""
    result: dict[str, Call] = {}
    try:
        import tenacity
    except ImportError:
        print("tenacity not installed: skipped", file=sys.stderr)
        tenacity = None
    try:
        import pybreaker
    except ImportError:
        print("pybreaker not installed: skipped", file=sys.stderr)
        pybreaker = None

    if tenacity is not None:
        # Settings close to revo-sdk's defaults: 4 attempts, jittered backoff.
        retrying = tenacity.retry(
            stop=tenacity.stop_after_attempt(4),
            wait=tenacity.wait_random_exponential(multiplier=0.02, max=1.0),
            retry=tenacity.retry_if_exception_type(requests.RequestException),
            reraise=True,
        )
        result["requests+tenacity"] = retrying(call)
    if pybreaker is not None:
        breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

        def broken(fn: Call = call) -> int:
            return int(breaker.call(fn))

        result["requests+pybreaker"] = broken
        if tenacity is not None:
            result["requests+tenacity+pybreaker"] = retrying(broken)
    return result


def measure(call: Call, calls: int, threads: int) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` for ``calls`` calls from ``threads`` threads."""
    share = [
        calls // threads + (1 if n < calls % threads else 0) for n in range(threads)
    ]
    failures: list[int] = []

    def work(count: int) -> None:
        for _ in range(count):
            if call() >= 400:
                failures.append(1)

    workers = [threading.Thread(target=work, args=(n,)) for n in share]
    cpu, wall = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if failures:
        raise SystemExit(f"{len(failures)} calls failed; is the emulator healthy?")
    return wall, cpu


def run(calls: int, rounds: int, threads: int) -> dict[str, Any]:
    """Measure every contender ``rounds`` times; keep each one's median round."""
    with tempfile.TemporaryDirectory(prefix="revo-bench-") as scratch:
        emulator = EmulatorProcess(fault_rate=0.0)
        client = None
        try:
            emulator.start()
            client = Client(db_path=Path(scratch) / "bench.db")
            client.register(
                IntegrationConfig(
                    name="jira",
                    base_url=emulator.base_url,
                    token="bench-token",  # noqa: S106 - fake, for the local emulator
                    breaker=BreakerPolicy(),
                    limiter=LimiterPolicy(rate=1e6, burst=10_000),
                    bulkhead=BulkheadPolicy(max_concurrent=max(threads, 2)),
                )
            )
            named = contenders(emulator.base_url, client, threads)
            for call in named.values():  # warm up pools and caches
                measure(call, 200, threads)
            samples: dict[str, list[tuple[float, float]]] = {n: [] for n in named}
            for _ in range(rounds):
                for name, call in named.items():
                    samples[name].append(measure(call, calls, threads))
        finally:
            if client is not None:
                client.close()
            emulator.stop()
    return summarise(samples, calls, threads)


def summarise(
    samples: dict[str, list[tuple[float, float]]], calls: int, threads: int
) -> dict[str, Any]:
    rows = {}
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        rows[name] = {
            "calls_per_s": round(calls / wall, 1),
            "us_per_call": round(wall / calls * 1e6, 1),
            "cpu_us_per_call": round(cpu / calls * 1e6, 1),
        }
    floor = rows["urllib3"]
    for row in rows.values():
        row["rate_vs_urllib3"] = round(row["calls_per_s"] / floor["calls_per_s"], 3)
        row["extra_cpu_us"] = round(
            row["cpu_us_per_call"] - floor["cpu_us_per_call"], 1
        )
    return {"calls": calls, "threads": threads, "results": rows}


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['calls']} calls per round, {report['threads']} thread(s); "
        "median round; ratio = calls/s relative to bare urllib3",
        "",
        f"{'contender':<30}{'calls/s':>10}{'us/call':>10}{'CPU us':>10}"
        f"{'+CPU us':>10}{'ratio':>8}",
    ]
    for name, row in report["results"].items():
        lines.append(
            f"{name:<30}{row['calls_per_s']:>10}{row['us_per_call']:>10}"
            f"{row['cpu_us_per_call']:>10}{row['extra_cpu_us']:>10}"
            f"{row['rate_vs_urllib3']:>8}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(max(1, args.calls), max(1, args.rounds), max(1, args.threads))
    print(json.dumps(report, indent=2) if args.json else table(report))


if __name__ == "__main__":
    main()
