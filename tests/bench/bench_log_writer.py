"""Usage-log writer throughput: rows/s from RequestLogWriter.enqueue into PostgreSQL (COPY batches).

Run alone: python -m tests.bench.bench_log_writer [--records 50000] [--keys 10] [--models 1] [--nodes 0];
tests.bench.run calls measure(). The records go round the keys, models and nodes (0 nodes: none served,
as a refused request), so a batch of 1000 folds into up to keys × models × nodes rollup rows per table:
`--keys 200 --models 8 --nodes 2` is a busy gateway's mix. Uses a fresh database on BENCH_DATABASE_URL /
TEST_DATABASE_URL (default: the machine's PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from proxy.db.migrations import migrate
from proxy.request_log.journal import Journal
from proxy.request_log.partitions import maintain
from proxy.request_log.record import RequestRecord
from proxy.request_log.writer import MAX_QUEUED, RequestLogWriter
from tests.bench.gateway_process import drop_database, fresh_database

DATABASE = f"ogw_bench_writer_{os.getpid()}"


def _records(count: int, key_ids: list[uuid.UUID], models: int = 1, nodes: int = 0) -> list[RequestRecord]:
    now = datetime.now(UTC)
    model_names = ["llama3.2:latest"] + [f"model-{m}" for m in range(1, models)]
    node_names = [f"node-{n}" for n in range(nodes)] or [None]
    return [
        RequestRecord(
            id=uuid.uuid4(),
            created_at=now,
            endpoint="/api/chat",
            method="POST",
            client_ip="127.0.0.1",
            bytes_in=120,
            api_key_id=key_ids[i % len(key_ids)],
            # i // 7 and i // 3: not in step with the keys, so each key meets every model and node.
            model=model_names[i // 7 % len(model_names)],
            node=node_names[i // 3 % len(node_names)],
            status_code=200,
            prompt_tokens=26,
            completion_tokens=120,
            response_time=812.5,
            ttfb=35.25,
            bytes_out=14_000,
        )
        for i in range(count)
    ]


async def measure(records: int = 50_000, keys: int = 10, models: int = 1, nodes: int = 0) -> dict:
    dsn = await fresh_database(DATABASE)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        async with pool.acquire() as conn:
            await migrate(conn)
            key_ids = [
                await conn.fetchval(
                    "INSERT INTO api_keys (id, key_hash, prefix, name, role, rate_limit) "
                    "VALUES ($1, $2, 'olg_bench', 'bench', 'user', 1000) RETURNING id",
                    uuid.uuid4(),
                    uuid.uuid4().bytes * 2,
                )
                for _ in range(keys)
            ]
        await maintain(pool, 90)
        # Room for every record in memory: this measures the database path, not the disk journal.
        writer = RequestLogWriter(
            Journal(Path(tempfile.mkdtemp(prefix="ogw-bench-"))), max_queued=max(MAX_QUEUED, records)
        )
        batch = _records(records, key_ids, models, nodes)
        await writer.start(pool)
        started, cpu = time.perf_counter(), time.process_time()
        for record in batch:
            writer.enqueue(record)
        enqueue_us = (time.perf_counter() - started) / records * 1e6
        while writer.counters.written + writer.counters.replayed < records:
            await asyncio.sleep(0.01)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        await writer.stop()
        count = await pool.fetchval("SELECT count(*) FROM request_log")
        await pool.close()
        assert count == records, (count, records)
        return {
            "records": records,
            "seconds": round(seconds, 3),
            "rows_per_s": round(records / seconds),
            "enqueue_us": round(enqueue_us, 2),
            "gateway_cpu_us_per_row": round(cpu / records * 1e6, 1),
        }
    finally:
        await drop_database(DATABASE)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--models", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.records, args.keys, args.models, args.nodes))))
