"""GET /api/usage's queries over a month of a busy gateway's rollups; run:
PYTHONPATH=. python -m tests.bench.bench_usage_series [--requests 10000000] [--keys 200]

The endpoint reads only rollups, so the cost of a chart depends on how many rollup rows the range holds
(periods × the key, model and node combinations it reads), not on the raw rows. This builds the rollups
that `--requests` requests spread over 30 days would leave (every key on 2 of 8 models, on 2 nodes, in
every hour) straight into a scratch database: usage_hourly and usage_daily by COPY, the coarser ones
(sql/010) from those by the function the migration fills them with. Then it times fetch_series for the
console's ranges, median of 5, after one warm-up. TEST_DATABASE_URL or the local PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from proxy.db.migrations import migrate
from proxy.request_log import latency_histogram
from proxy.request_log.rollup_tables import WRITE_ORDER
from proxy.request_log.usage_series import SeriesQuery, fetch_series
from tests.support.database import create_database, drop_database

DAYS = 30
MODELS = [f"model-{i}" for i in range(8)]
NODES = ["node-a", "node-b"]
ROUNDS = 5


def _histogram(requests: int, rng: random.Random) -> list[int]:
    """`requests` spread over a dozen buckets around 1-30 s, as generations take."""
    counts = latency_histogram.empty()
    centre = rng.randint(30, 45)
    for i in range(requests):
        counts[centre + (i * 7919) % 13 - 6] += 1
    return counts


def _rows(requests: int, keys: list[uuid.UUID], end: datetime) -> tuple[list[tuple], list[tuple]]:
    rng = random.Random(18)
    combos = [(key, model, node) for key in keys for model in rng.sample(MODELS, 2) for node in NODES]
    hours = DAYS * 24
    per_row = max(1, requests // (hours * len(combos)))
    hourly, daily = [], {}
    for h in range(hours):
        start = end - timedelta(hours=hours - h)
        for key, model, node in combos:
            latency, ttfb = _histogram(per_row, rng), _histogram(per_row, rng)
            row = (start, key, model, node, per_row, per_row // 50, per_row * 300, per_row * 200, per_row * 4000.0)
            hourly.append((*row, latency, ttfb))
            day = daily.setdefault(
                (start.date(), key, model, node),
                [0, 0, 0, 0, 0.0, latency_histogram.empty(), latency_histogram.empty()],
            )
            for i, value in enumerate(row[4:]):
                day[i] += value
            latency_histogram.add_into(day[5], latency)
            latency_histogram.add_into(day[6], ttfb)
    return hourly, [(*k, *v) for k, v in daily.items()]


COLUMNS = ("api_key_id", "model", "node", "requests", "errors", "prompt_tokens", "completion_tokens",
           "response_time_sum", "latency_histogram", "ttfb_histogram")  # fmt: skip


async def bench(dsn: str, requests: int, key_count: int) -> None:
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    keys = [uuid.uuid4() for _ in range(key_count)]
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    started = time.perf_counter()
    hourly, daily = _rows(requests, keys, end)
    await conn.copy_records_to_table("usage_hourly", records=hourly, columns=("hour", *COLUMNS))
    await conn.copy_records_to_table("usage_daily", records=daily, columns=("day", *COLUMNS))
    regrouping = time.perf_counter()
    await conn.execute("SELECT usage_rollups_regroup()")
    regrouped = time.perf_counter() - regrouping
    for table in WRITE_ORDER:
        await conn.execute(f"VACUUM ANALYZE {table.name}")
    total = await conn.fetchval("SELECT sum(requests) FROM usage_daily")
    counts = {table.name: await conn.fetchval(f"SELECT count(*) FROM {table.name}") for table in WRITE_ORDER}
    print(
        f"{total:,} requests in rollups ({time.perf_counter() - started:.0f} s to build, of which "
        f"{regrouped:.0f} s usage_rollups_regroup); {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, PostgreSQL {conn.get_server_version().major}"
    )
    print("rows: " + ", ".join(f"{name} {count:,}" for name, count in counts.items()))
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    cases = {
        "last day, hourly, all keys": SeriesQuery(end - timedelta(days=1), end, "hour"),
        "last 7 days, hourly, all keys": SeriesQuery(end - timedelta(days=7), end, "hour", "key"),
        "last 30 days, daily, all keys": SeriesQuery(end - timedelta(days=30), end, "day", "key"),
        "last 30 days, daily, one key": SeriesQuery(end - timedelta(days=30), end, "day", "model", keys[0]),
        "last hour (2 clock hours), all keys": SeriesQuery(end - timedelta(hours=2), end, "hour"),
        "last 7 days, daily, all keys": SeriesQuery(end - timedelta(days=7), end, "day", "node"),
    }
    for name, query in cases.items():
        await fetch_series(pool, query)  # warm-up: plans and pages cached, as on a gateway in use
        times = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            body = await fetch_series(pool, query)
            times.append(time.perf_counter() - start)
        print(f"{name:34s} median {statistics.median(times) * 1000:7.1f} ms, worst {max(times) * 1000:7.1f} ms "
              f"({body['totals']['requests']:,} requests)")  # fmt: skip
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=200)
    args = parser.parse_args()
    server = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = create_database(server)
    try:
        asyncio.run(bench(dsn, args.requests, args.keys))
    finally:
        drop_database(server, dsn)


if __name__ == "__main__":
    main()
