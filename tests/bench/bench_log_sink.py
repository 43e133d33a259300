"""Gateway requests/s with the usage log writer as its sink vs a debug-log stand-in, as a ratio.

run: TEST_DATABASE_URL=postgresql://... PYTHONPATH=. python tests/bench/bench_log_sink.py

The target is GET /health: its handler touches nothing, so the difference between the two runs is
the sink alone (enqueue on the request path, plus the writer's batches sharing the event loop and
the CPUs). The gateway runs in this process; the load comes from a separate process (50 clients).
Also reported: the gateway process's CPU time per request (warm-up and measured burst, plus the
writer's last flush), which a busy shared machine disturbs far less than requests/s. PostgreSQL's own
CPU is not in it. A scratch database is created and dropped. For the writer's rows/s see bench_log_writer.py.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from proxy.app import create_app
from proxy.request_log.record import RECORD_SINK, RequestRecord
from proxy.settings import Settings
from tests.support.database import create_database, drop_database, server_dsn

log = logging.getLogger(__name__)

REQUESTS = 20_000
CLIENTS = 50
ROUNDS = 5


class LoggingSink:
    """The cheapest sink that still does something with each record: a debug log call."""

    def enqueue(self, record: RequestRecord) -> None:
        log.debug("request %s %s %s -> %s", record.id, record.method, record.endpoint, record.status_code)


def load(url: str, results: multiprocessing.Queue) -> None:
    async def run() -> float:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as http:

            async def burst() -> float:
                numbers = iter(range(REQUESTS))

                async def client() -> None:
                    for _ in numbers:
                        async with http.get(url) as r:
                            await r.read()

                start = time.perf_counter()
                await asyncio.gather(*(client() for _ in range(CLIENTS)))
                return REQUESTS / (time.perf_counter() - start)

            await burst()  # warm-up: connections, caches
            return await burst()

    results.put(asyncio.run(run()))


async def requests_per_second(settings: Settings, writer: bool) -> tuple[float, float]:
    app = create_app(settings, sink=None if writer else LoggingSink())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    results: multiprocessing.Queue = multiprocessing.Queue()
    client = multiprocessing.Process(target=load, args=(f"http://127.0.0.1:{port}/health", results))
    cpu = time.process_time()
    client.start()
    rate = await asyncio.to_thread(results.get)
    client.join()
    if writer:
        sink = app[RECORD_SINK]
        while not sink.idle:  # every row written before the next round starts
            await asyncio.sleep(0.01)
    cpu_us = (time.process_time() - cpu) / (2 * REQUESTS) * 1e6
    await runner.cleanup()
    return rate, cpu_us


async def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    server = server_dsn(scratch)
    dsn = await asyncio.to_thread(create_database, server)
    try:
        conn = await asyncpg.connect(dsn)
        version = await conn.fetchval("SHOW server_version")
        await conn.close()
        settings = Settings(
            database_url=dsn,
            secret_key="bench-" + "x" * 40,
            data_dir=scratch,
            demo_admin_key="bench-admin-key-0123456789",
        )
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both alike
            for writer in (False, True):
                runs[writer].append(await requests_per_second(settings, writer))
        rates = {w: [rate for rate, _ in r] for w, r in runs.items()}
        cpu = {w: statistics.median(us for _, us in r) for w, r in runs.items()}
        logging_rate, writer_rate = statistics.median(rates[False]), statistics.median(rates[True])
        print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.platform()}; {os.cpu_count()} CPUs; "
            f"Python {sys.version.split()[0]}; PostgreSQL {version} on the same machine"
        )
        print(f"GET /health, {CLIENTS} clients, median of {ROUNDS} rounds of {REQUESTS:,} requests:")
        print(
            f"  LoggingSink      {logging_rate:8,.0f} req/s, {cpu[False]:5.1f} µs CPU/request   "
            f"{sorted(round(r) for r in rates[False])}"
        )
        print(
            f"  RequestLogWriter {writer_rate:8,.0f} req/s, {cpu[True]:5.1f} µs CPU/request   "
            f"{sorted(round(r) for r in rates[True])}"
        )
        print(
            f"  ratio writer / LoggingSink: {writer_rate / logging_rate:.2f} req/s, "
            f"{cpu[True] / cpu[False]:.2f} CPU per request"
        )
    finally:
        await asyncio.to_thread(drop_database, server, dsn)


if __name__ == "__main__":
    asyncio.run(main())
