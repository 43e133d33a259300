"""What admitting a request against its key's limits costs, side by side in one run:

- `per process`: the in-memory KeyLimiter alone (what each process did before the ledger, limits then
  multiplied by the number of processes; still the `local` fallback while PostgreSQL is away);
- `shared, steady`: the SharedLimiter with a generous limit, leases amortised over many admissions;
- `shared, exact`: a limit small next to the number of processes, so every admission leases one unit
  (one `limit_lease()` round trip) and every release gives its slot back.
Each case runs admit + release, with the share of admissions that touched PostgreSQL.

run: BENCH_DATABASE_URL=postgresql://… PYTHONPATH=. python tests/bench/bench_admission.py
(TEST_DATABASE_URL works too; a scratch database is created and dropped)
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
import uuid

import asyncpg

from proxy.db.migrations import migrate
from proxy.ledger.limiter import SharedLimiter
from proxy.ledger.store import LedgerStore
from proxy.limits import KeyLimiter
from tests.support.database import create_database, drop_database

ROUNDS = 5
STEADY = 20_000
EXACT = 1_000
GENEROUS = (36_000_000, 100_000, 1000, None)  # rate/hour, burst, max_concurrent, tokens/day
SMALL = (36_000_000, 4, 4, None)  # 4 < 4 × processes: one unit a lease


async def new_key(conn: asyncpg.Connection) -> uuid.UUID:
    key_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO api_keys (id, key_hash, prefix, name, role, rate_limit) "
        "VALUES ($1, $2, 'olg_bench', 'bench', 'user', 36000000)",
        key_id,
        uuid.uuid4().bytes * 2,
    )
    return key_id


def per_process(n: int) -> float:
    limiter = KeyLimiter()
    key_id = uuid.uuid4()
    rate, burst, concurrent, tokens = GENEROUS
    now = time.time()
    start = time.perf_counter_ns()
    for i in range(n):
        if limiter.admit(
            key_id,
            rate_per_hour=rate,
            burst=burst,
            max_concurrent=concurrent,
            tokens_per_day=tokens,
            now=now + i * 1e-4,
        ).allowed:
            limiter.release(key_id)
    return (time.perf_counter_ns() - start) / n / 1000


async def shared(pool: asyncpg.Pool, conn: asyncpg.Connection, limits: tuple, n: int, processes: int) -> tuple:
    store = LedgerStore(pool)
    await store.register()
    limiter = SharedLimiter(store)
    limiter.ledger_back(processes, 0)
    key_id = await new_key(conn)
    try_admit, admit, release = limiter.try_admit, limiter.admit, limiter.release
    start = time.perf_counter_ns()
    for _ in range(n):
        admission = try_admit(key_id, *limits) or await admit(key_id, *limits)
        assert admission.allowed, admission.message
        release(key_id, admission)
        if limiter._pools[key_id].returning:  # one-unit slots go back at once; wait as the next request would
            await limiter.settled()
    elapsed = (time.perf_counter_ns() - start) / n / 1000
    counters = limiter.counters
    await limiter.give_back_all()
    await store.leave()
    return elapsed, counters.ledger_admissions / n


def main() -> None:
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ["TEST_DATABASE_URL"]
    dsn = create_database(server)
    try:
        asyncio.run(measure(server, dsn))
    finally:
        drop_database(server, dsn)


async def measure(server: str, dsn: str) -> None:
    async with (
        asyncpg.create_pool(dsn, min_size=2, max_size=10) as pool,
        pool.acquire() as conn,
    ):
        await migrate(conn)
        print(
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python {platform.python_version()}, "
            f"{platform.machine()} x{os.cpu_count()}, PostgreSQL on {server.rsplit('@', 1)[-1]}"
        )
        print(f"admit + release, best / median of {ROUNDS} rounds, µs per admission; share that leased")
        rows = {
            "per process (KeyLimiter, not shared)": [(per_process(STEADY), 0.0) for _ in range(ROUNDS)],
            "shared, steady (generous limit)": [await shared(pool, conn, GENEROUS, STEADY, 5) for _ in range(ROUNDS)],
            "shared, exact (limit 4 over 5 processes)": [
                await shared(pool, conn, SMALL, EXACT, 5) for _ in range(ROUNDS)
            ],
        }
        base = min(t for t, _ in rows["per process (KeyLimiter, not shared)"])
        for name, samples in rows.items():
            times = [t for t, _ in samples]
            leased = statistics.median(share for _, share in samples)
            print(
                f"  {name:<42} {min(times):8.2f} / {statistics.median(times):8.2f}"
                f"   ×{min(times) / base:6.1f}   leased {leased:6.1%}"
            )


if __name__ == "__main__":
    main()
