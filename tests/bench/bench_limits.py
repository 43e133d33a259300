"""µs per KeyLimiter.admit + release; run: PYTHONPATH=. python tests/bench/bench_limits.py"""

from __future__ import annotations

import os
import platform
import statistics
import time
import uuid

from proxy.limits import KeyLimiter

ITERATIONS = 200_000
ROUNDS = 5
# The clock advances 1 ms per request, so at 3.6M/hour the bucket never empties and every call
# takes the allowed path, which is the one that builds the most headers.
STEP = 0.001

CASES = {
    "rate only": dict(rate_per_hour=3_600_000, burst=100, max_concurrent=None, tokens_per_day=None),
    "rate + concurrency + tokens": dict(rate_per_hour=3_600_000, burst=100, max_concurrent=4, tokens_per_day=10**12),
    "no limits": dict(rate_per_hour=None, burst=None, max_concurrent=None, tokens_per_day=None),
}


def run(limits: dict, keys: list[uuid.UUID]) -> float:
    limiter = KeyLimiter()
    admit, release = limiter.admit, limiter.release
    now = time.time()
    count = len(keys)
    start = time.perf_counter_ns()
    for i in range(ITERATIONS):
        key_id = keys[i % count]
        if admit(key_id, now=now + i * STEP, **limits).allowed:
            release(key_id)
    return (time.perf_counter_ns() - start) / ITERATIONS / 1000


def rejected_run(keys: list[uuid.UUID]) -> float:
    limiter = KeyLimiter()
    now = time.time()
    for key_id in keys:
        limiter.charge(key_id, 100, now)
    count = len(keys)
    start = time.perf_counter_ns()
    for i in range(ITERATIONS):
        limiter.admit(keys[i % count], rate_per_hour=3600, burst=5, max_concurrent=None, tokens_per_day=100, now=now)
    return (time.perf_counter_ns() - start) / ITERATIONS / 1000


def main() -> None:
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python {platform.python_version()}, "
        f"{platform.machine()} x{os.cpu_count()} ({platform.processor() or platform.platform()})"
    )
    print(f"{ITERATIONS} admit+release per round, best / median of {ROUNDS} rounds, µs per call")
    for n_keys in (1, 1000):
        keys = [uuid.uuid4() for _ in range(n_keys)]
        for name, limits in CASES.items():
            samples = [run(limits, keys) for _ in range(ROUNDS)]
            print(f"  {name:<28} {n_keys:>5} keys: {min(samples):.2f} / {statistics.median(samples):.2f}")
        samples = [rejected_run(keys) for _ in range(ROUNDS)]
        name = "rejected (token quota)"
        print(f"  {name:<28} {n_keys:>5} keys: {min(samples):.2f} / {statistics.median(samples):.2f}")


if __name__ == "__main__":
    main()
