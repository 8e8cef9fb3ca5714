"""Per-call cost of the revo-sdk pipeline against the usual alternatives.

Every contender makes the same GET against the bench emulator (started in a
process of its own on 127.0.0.1, faults off), so this process's CPU time is
spent on the client side only. Contenders:

- ``urllib3``: a bare ``PoolManager`` (the floor everything is compared to);
- ``urllib3 (one pool)``: a bare ``HTTPConnectionPool`` for the one origin,
  which is what revo-sdk's transport uses, so the tighter floor;
- ``requests``: a ``requests.Session`` as most code uses it;
- ``requests (no env)``: the same with ``trust_env = False``;
- ``requests+tenacity``, ``requests+pybreaker``, ``requests+tenacity+pybreaker``:
  a session wrapped in the popular retry and breaker libraries, when they are
  installed (skipped otherwise);
- ``requests+tenacity+pybreaker+pyrate+cachetools``: the stack one would
  assemble by hand (cache lookup that misses, rate limiter, breaker, retry);
- ``revo-sdk``: ``client.<name>.get(..., cache=False)`` with every layer on
  (retry, breaker, limiter, bulkhead, metrics);
- ``revo-sdk (cache miss)``: the same on a cached route whose every URL is
  new, so the cache is consulted, misses, and stores the answer;
- ``revo-sdk (cache hit)``: the same call answered from the response cache.

Contenders run interleaved for several rounds; the median round is printed
with each round's ratio to urllib3 beside it, which shows a noisy machine.

A second table prices each layer on its own, without a network, at one
thread and at ``--threads`` (4 by default): revo-sdk's limiter, breaker,
metrics recording and response building, the whole success-path
bookkeeping (the pipeline over a transport that answers at once), and the
same jobs done by pybreaker, pyrate-limiter and tenacity when installed.
Run::

    python benchmarks/bench_pipeline.py --calls 3000 --rounds 3 [--threads 4] [--json]
"""

from __future__ import annotations

import argparse
import itertools
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
    AttemptRecord,
    BreakerPolicy,
    BulkheadPolicy,
    Client,
    IntegrationConfig,
    LimiterPolicy,
)
from revo_sdk._bench.emulator import EmulatorProcess
from revo_sdk._breaker import CircuitBreaker
from revo_sdk._db import Database
from revo_sdk._limiter import Limiter
from revo_sdk._metrics import Metrics
from revo_sdk._pipeline import Integration
from revo_sdk._transport import to_response
from revo_sdk_plugins.jira import JiraProvider

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

    # The tighter floor: one connection pool, as revo-sdk's transport uses for
    # its own origin (no URL parsing to pick a pool on every call).
    direct = urllib3.connection_from_url(base, maxsize=threads, retries=False)

    def raw_pool() -> int:
        response = direct.urlopen("GET", UNCACHED, headers=HEADERS)
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

    fresh = itertools.count()

    def cache_miss() -> int:
        # A new URL on a cached route each time: lookup, miss, store.
        return int(client.jira.get(CACHED, params={"n": next(fresh)}).status_code)

    found: dict[str, Call] = {
        "urllib3": raw,
        "urllib3 (one pool)": raw_pool,
        "requests": with_session(session),
        "requests (no env)": with_session(plain),
    }
    found.update(_wrapped(with_session(plain)))
    found.update(_assembled(plain, base))
    found["revo-sdk"] = pipeline
    found["revo-sdk (cache miss)"] = cache_miss
    found["revo-sdk (cache hit)"] = cache_hit
    return found


def _assembled(session: requests.Session, base: str) -> dict[str, Call]:
    """requests + tenacity + pybreaker + pyrate-limiter + cachetools, by hand."""
    try:
        import cachetools
        import pybreaker
        import pyrate_limiter
        import tenacity
    except ImportError as exc:
        print(f"{exc.name} not installed: hand-built stack skipped", file=sys.stderr)
        return {}
    cache: Any = cachetools.TTLCache(maxsize=1024, ttl=60)
    lock = threading.Lock()
    limiter = pyrate_limiter.Limiter(
        pyrate_limiter.Rate(1_000_000, pyrate_limiter.Duration.SECOND)
    )
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    fresh = itertools.count()

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(4),
        wait=tenacity.wait_random_exponential(multiplier=0.02, max=1.0),
        retry=tenacity.retry_if_exception_type(requests.RequestException),
        reraise=True,
    )
    def fetch(url: str) -> requests.Response:
        limiter.try_acquire("bench", blocking=False)
        response: requests.Response = breaker.call(
            session.get, url, headers=HEADERS, timeout=(10, 30)
        )
        return response

    def call() -> int:
        url = f"{base}{UNCACHED}?n={next(fresh)}"
        with lock:  # cachetools caches are not thread-safe on their own
            hit = cache.get(url)
        if hit is not None:
            return int(hit.status_code)
        response = fetch(url)
        with lock:
            cache[url] = response
        return int(response.status_code)

    return {"requests+tenacity+pybreaker+pyrate+cachetools": call}


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
    rows: dict[str, dict[str, Any]] = {}
    floor_runs = samples["urllib3"]
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        rows[name] = {
            "calls_per_s": round(calls / wall, 1),
            "us_per_call": round(wall / calls * 1e6, 1),
            "cpu_us_per_call": round(cpu / calls * 1e6, 1),
            # Each round against urllib3's own run in the same round.
            "round_ratios": [
                round(floor[0] / run[0], 3)
                for run, floor in zip(runs, floor_runs, strict=True)
            ],
        }
    floor_row = rows["urllib3"]
    for row in rows.values():
        row["rate_vs_urllib3"] = round(row["calls_per_s"] / floor_row["calls_per_s"], 3)
        row["extra_cpu_us"] = round(
            row["cpu_us_per_call"] - floor_row["cpu_us_per_call"], 1
        )
    return {"calls": calls, "threads": threads, "results": rows}


# -- the price of each layer, without a network -------------------------------


def _stub_integration(metrics: Metrics) -> Integration:
    """A Jira integration whose transport answers at once with a fixed 200."""
    raw = urllib3.HTTPResponse(
        body=b'{"ok": true}',
        headers={"Content-Type": "application/json", "Server": "stub"},
        status=200,
        preload_content=True,
    )
    prepared = to_response(raw, "http://127.0.0.1:9/x", 0.0)
    integration = Integration(
        IntegrationConfig(
            name="jira",
            base_url="http://127.0.0.1:9",
            token="bench-token",  # noqa: S106 - fake, nothing is sent
            limiter=LimiterPolicy(rate=1e9, burst=1_000_000),
        ),
        JiraProvider(),
        observe=metrics.record_attempt,
    )

    def send(method: str, url: str, **_: Any) -> requests.Response:
        return prepared

    integration.transport.send = send  # type: ignore[method-assign]  # a stub
    return integration


def layer_jobs(metrics: Metrics) -> dict[str, Callable[[], object]]:
    """Name -> one operation of a layer (or of an alternative to it)."""
    limiter = Limiter(LimiterPolicy(rate=1e9, burst=1_000_000))
    breaker = CircuitBreaker(BreakerPolicy())
    integration = _stub_integration(metrics)
    record = AttemptRecord(
        "jira", "GET", "/x", 200, "ok", "ok", 0.001, 1, time.time(), 0.0
    )
    raw = urllib3.HTTPResponse(
        body=b"{}",
        headers={"Content-Type": "application/json", "Server": "stub", "X-A": "1"},
        status=200,
        preload_content=True,
    )

    fresh = itertools.count()

    def breaker_job() -> None:
        breaker.record(breaker.acquire(), True)

    jobs: dict[str, Callable[[], object]] = {
        "revo limiter.acquire": limiter.acquire,
        "revo breaker acquire+record": breaker_job,
        "revo metrics record_attempt": lambda: metrics.record_attempt(record),
        "revo to_response": lambda: to_response(raw, "http://h/x", 0.0),
        "revo bookkeeping (stub transport)": lambda: integration.request(
            "GET", UNCACHED, cache=False
        ),
        "revo bookkeeping, cache miss + store": lambda: integration.request(
            "GET", CACHED, params={"n": next(fresh)}
        ),
    }
    try:
        import pybreaker

        other = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
        jobs["pybreaker call"] = lambda: other.call(int)
    except ImportError:
        print("pybreaker not installed: skipped", file=sys.stderr)
    try:
        import pyrate_limiter

        rate = pyrate_limiter.Rate(10_000_000, pyrate_limiter.Duration.SECOND)
        paced = pyrate_limiter.Limiter(rate)
        jobs["pyrate-limiter try_acquire"] = lambda: paced.try_acquire(
            "bench", blocking=False
        )
    except ImportError:
        print("pyrate-limiter not installed: skipped", file=sys.stderr)
    try:
        import tenacity

        retrying = tenacity.retry(stop=tenacity.stop_after_attempt(4), reraise=True)
        jobs["tenacity retry wrapper"] = retrying(int)
    except ImportError:
        print("tenacity not installed: skipped", file=sys.stderr)
    return jobs


def layer_costs(ops: int, rounds: int, threads: int) -> dict[str, list[float]]:
    """Microseconds per operation of each layer job, one value per round.

    With several threads every thread runs ``ops`` operations at once and the
    figure is wall time over all operations, so lock contention shows.
    """
    with tempfile.TemporaryDirectory(prefix="revo-bench-") as scratch:
        # Metrics as a client keeps them: flushed to SQLite by their thread.
        database = Database(Path(scratch) / "layers.db")
        metrics = Metrics(lambda: database)
        try:
            jobs = layer_jobs(metrics)
            costs: dict[str, list[float]] = {name: [] for name in jobs}
            for _ in range(rounds):
                for name, job in jobs.items():
                    metrics.flush()  # no job pays for the previous one's rows
                    costs[name].append(_time_job(job, ops, threads))
        finally:
            metrics.close()
            database.close()
    return costs


def _time_job(job: Callable[[], object], ops: int, threads: int) -> float:
    def work() -> None:
        for _ in range(ops):
            job()

    for _ in range(min(ops, 1000)):  # warm up
        job()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(600)
    return (time.perf_counter() - started) / (ops * threads) * 1e6


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['calls']} calls per round, {report['threads']} thread(s); "
        "median round; ratio = calls/s relative to bare urllib3 "
        "(target for revo-sdk: >= 0.80)",
        "",
        f"{'contender':<48}{'calls/s':>9}{'us/call':>9}{'CPU us':>9}"
        f"{'+CPU us':>9}{'ratio':>7}  per round",
    ]
    for name, row in report["results"].items():
        rounds = " ".join(f"{r:.2f}" for r in row["round_ratios"])
        lines.append(
            f"{name:<48}{row['calls_per_s']:>9}{row['us_per_call']:>9}"
            f"{row['cpu_us_per_call']:>9}{row['extra_cpu_us']:>9}"
            f"{row['rate_vs_urllib3']:>7}  {rounds}"
        )
    layers = report.get("layers")
    if layers:
        counts = sorted(layers, key=int)
        lines += [
            "",
            "layer cost without a network, us per operation (median of rounds; "
            "targets: limiter <= 1, breaker <= 1.5, bookkeeping <= 15)",
            "",
            f"{'layer':<40}"
            + "".join(f"{f'{n} thread(s)':>16}" for n in counts)
            + "  rounds",
        ]
        for name in layers[counts[0]]:
            cells = "".join(
                f"{statistics.median(layers[n][name]):>16.2f}" for n in counts
            )
            spread = " / ".join(
                ",".join(f"{v:.2f}" for v in layers[n][name]) for n in counts
            )
            lines.append(f"{name:<40}{cells}  {spread}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--layer-threads",
        type=int,
        default=4,
        help="threads for the contended layer measurement (besides 1)",
    )
    parser.add_argument("--layer-ops", type=int, default=20_000)
    parser.add_argument("--no-layers", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rounds = max(1, args.rounds)
    report = run(max(1, args.calls), rounds, max(1, args.threads))
    if not args.no_layers:
        report["layers"] = {
            str(n): layer_costs(max(1, args.layer_ops), rounds, n)
            for n in sorted({1, max(1, args.layer_threads)})
        }
    print(json.dumps(report, indent=2) if args.json else table(report))


if __name__ == "__main__":
    main()
