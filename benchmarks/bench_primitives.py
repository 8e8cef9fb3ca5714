"""Per-call cost of revo-sdk's breaker, limiter and retry budget, side by side.

Each contender is a tight loop of one primitive's success path, run by 1
thread and then by 4 threads sharing one instance; the cost is wall time per
call (elapsed time divided by the calls of all threads). Under the GIL four
threads cannot run Python faster than one, so a primitive that "does not
collapse" keeps about the same cost at 4 threads as at 1; a lock whose
holder gets switched out mid-section makes the others queue and the cost
balloons.

Contenders (optional packages are skipped with a message when missing):

- breaker: revo-sdk ``CircuitBreaker`` (``acquire`` + ``record`` in
  consecutive mode, and in failure-rate mode over a count and a time
  window) against ``pybreaker.CircuitBreaker.call`` of a no-op function;
- limiter: revo-sdk ``Limiter.acquire`` (token bucket and strict window
  mode) against ``pyrate_limiter.Limiter.try_acquire`` (non-blocking), each
  set so high that nothing ever waits;
- retry: revo-sdk ``RetryBudget.record_request`` and ``backoff_delay``, for
  reference (they run once per call and once per retry);
- all: what the pipeline does with these primitives on a successful call
  (budget record, breaker acquire and record with a duration, limiter
  acquire, quota observation).

Targets (issue 3): limiter acquire at most 1 us, breaker acquire + record at
most 1.5 us, neither collapsing at 4 threads. Run::

    python benchmarks/bench_primitives.py [--calls 200000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from revo_sdk import BreakerPolicy, LimiterPolicy, RetryPolicy
from revo_sdk._breaker import CircuitBreaker
from revo_sdk._limiter import Limiter
from revo_sdk._retry import RetryBudget, backoff_delay

Loop = Callable[[int], None]  # runs a primitive n times


def _noop() -> None:
    return None


def breaker_loop(policy: BreakerPolicy) -> Loop:
    breaker = CircuitBreaker(policy, integration="bench")

    def run(n: int) -> None:
        acquire, record = breaker.acquire, breaker.record
        for _ in range(n):
            trial = acquire()
            _noop()
            record(trial, True)

    return run


def breaker_duration_loop(policy: BreakerPolicy) -> Loop:
    breaker = CircuitBreaker(policy, integration="bench")

    def run(n: int) -> None:
        acquire, record = breaker.acquire, breaker.record
        for _ in range(n):
            trial = acquire()
            _noop()
            record(trial, True, duration=0.01)

    return run


def pybreaker_loop() -> Loop | None:
    try:
        import pybreaker
    except ImportError:
        print("pybreaker is not installed: skipped (pip install pybreaker)")
        return None
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    def run(n: int) -> None:
        call = breaker.call
        for _ in range(n):
            call(_noop)

    return run


def limiter_loop(policy: LimiterPolicy) -> Loop:
    limiter = Limiter(policy, integration="bench")

    def run(n: int) -> None:
        acquire = limiter.acquire
        for _ in range(n):
            acquire("default")

    return run


def pyrate_loop() -> Loop | None:
    try:
        import pyrate_limiter
    except ImportError:
        print("pyrate-limiter is not installed: skipped (pip install pyrate-limiter)")
        return None
    rate = pyrate_limiter.Rate(10**9, pyrate_limiter.Duration.SECOND)
    limiter = pyrate_limiter.Limiter(rate)

    def run(n: int) -> None:
        try_acquire = limiter.try_acquire
        for _ in range(n):
            try_acquire("bench", blocking=False)

    return run


def budget_loop() -> Loop:
    budget = RetryBudget()

    def run(n: int) -> None:
        record = budget.record_request
        for _ in range(n):
            record()

    return run


def backoff_loop() -> Loop:
    policy = RetryPolicy(max_delay=10.0)
    rng = random.Random(1)

    def run(n: int) -> None:
        for i in range(n):
            backoff_delay(policy, 1 + i % 20, rng)

    return run


def bookkeeping_loop() -> Loop:
    """What the pipeline does per successful call with these primitives."""
    breaker = CircuitBreaker(BreakerPolicy(slow_call_duration=30.0))
    limiter = Limiter(LimiterPolicy(rate=1e9, burst=10**9))
    budget = RetryBudget()

    def run(n: int) -> None:
        for _ in range(n):
            budget.record_request()
            trial = breaker.acquire()
            limiter.acquire("default")
            breaker.record(trial, True, duration=0.01)
            limiter.observe("default", 4000, 1e12, limit=5000)

    return run


def per_call_us(loop: Loop, calls: int, threads: int) -> tuple[float, float]:
    """Microseconds per call with ``threads`` threads sharing ``loop``: wall
    time over all calls, and CPU time (summed over the threads) per call.

    The CPU figure is steadier on a busy machine, since time other processes
    take is not counted; the wall figure also shows threads queueing."""
    each = calls // threads
    start = threading.Barrier(threads + 1)
    cpu: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait(timeout=30.0)
        began = time.thread_time()
        loop(each)
        spent = time.thread_time() - began
        with lock:
            cpu.append(spent)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    start.wait(timeout=30.0)
    began = time.perf_counter()
    for thread in pool:
        thread.join(timeout=600.0)
    wall = time.perf_counter() - began
    total = each * threads
    return wall / total * 1e6, sum(cpu) / total * 1e6


def contenders() -> dict[str, tuple[str, Loop | None]]:
    """Name -> (group, fresh loop or None when skipped)."""
    fast = LimiterPolicy(rate=1e9, burst=10**9)
    window = LimiterPolicy(window=1.0, limit=10**9)
    return {
        "revo breaker (consecutive)": ("breaker", breaker_loop(BreakerPolicy())),
        "revo breaker (slow-call check)": (
            "breaker",
            breaker_duration_loop(BreakerPolicy(slow_call_duration=5.0)),
        ),
        "revo breaker (rate, count window)": (
            "breaker",
            breaker_loop(BreakerPolicy(mode="rate")),
        ),
        "revo breaker (rate, time window)": (
            "breaker",
            breaker_loop(BreakerPolicy(mode="rate", window="time")),
        ),
        "pybreaker": ("breaker", pybreaker_loop()),
        "revo limiter (token bucket)": ("limiter", limiter_loop(fast)),
        "revo limiter (strict window)": ("limiter", limiter_loop(window)),
        "pyrate-limiter": ("limiter", pyrate_loop()),
        "revo retry budget record": ("retry", budget_loop()),
        "revo backoff_delay": ("retry", backoff_loop()),
        "revo budget+breaker+limiter+observe": ("all", bookkeeping_loop()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    results: dict[str, dict[int, list[float]]] = {}
    cpu: dict[str, dict[int, list[float]]] = {}
    groups: dict[str, str] = {}
    for _ in range(args.repeat):
        # Fresh instances each repetition; contenders interleave per round.
        for name, (group, loop) in contenders().items():
            if loop is None:
                continue
            groups[name] = group
            for threads in (1, 4):
                calls = args.calls // 10 if "pyrate" in name else args.calls
                wall_us, cpu_us = per_call_us(loop, calls, threads)
                results.setdefault(name, {}).setdefault(threads, []).append(wall_us)
                cpu.setdefault(name, {}).setdefault(threads, []).append(cpu_us)

    report: dict[str, Any] = {}
    for name, by_threads in results.items():
        one = statistics.median(by_threads[1])
        four = statistics.median(by_threads[4])
        report[name] = {
            "group": groups[name],
            "us_1_thread": by_threads[1],
            "us_4_threads": by_threads[4],
            "median_1": one,
            "median_4": four,
            "ratio_4_to_1": four / one,
            "cpu_us_1_thread": cpu[name][1],
            "cpu_us_4_threads": cpu[name][4],
            "cpu_median_1": statistics.median(cpu[name][1]),
            "cpu_median_4": statistics.median(cpu[name][4]),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return

    baselines = {"breaker": "pybreaker", "limiter": "pyrate-limiter"}
    print(
        f"{'contender':34} {'1 thread us':>12} {'4 threads us':>13} "
        f"{'4t/1t':>6} {'vs baseline 1t':>15} {'4t':>6} {'cpu 1t':>7} {'cpu 4t':>7}"
    )
    for name, row in report.items():
        base = report.get(baselines.get(row["group"], ""))
        vs1 = vs4 = "-"
        if base is not None and name != baselines.get(row["group"]):
            vs1 = f"{row['median_1'] / base['median_1']:.2f}x"
            vs4 = f"{row['median_4'] / base['median_4']:.2f}x"
        runs1 = "/".join(f"{v:.2f}" for v in row["us_1_thread"])
        runs4 = "/".join(f"{v:.2f}" for v in row["us_4_threads"])
        print(
            f"{name:34} {row['median_1']:12.3f} {row['median_4']:13.3f} "
            f"{row['ratio_4_to_1']:6.2f} {vs1:>15} {vs4:>6} "
            f"{row['cpu_median_1']:7.3f} {row['cpu_median_4']:7.3f}"
        )
        print(f"{'':34} runs 1t: {runs1}   4t: {runs4}")
    print(
        "\ntargets: limiter <= 1 us, breaker acquire+record <= 1.5 us, "
        "without collapsing at 4 threads (ratio 4t/1t near 1);\n"
        "'vs baseline' is cost relative to pybreaker / pyrate-limiter "
        "(below 1 = cheaper);\n'cpu' is CPU time per call summed over threads "
        "(steadier when other processes load the machine). Medians of --repeat runs."
    )


if __name__ == "__main__":
    main()
