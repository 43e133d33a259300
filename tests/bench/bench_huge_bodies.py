"""/health latency while ~95 MB JSON bodies are posted, for one or more source trees side by side.

run: PYTHONPATH=. python tests/bench/bench_huge_bodies.py [TREE ...]   (default: this checkout)
e.g. `... bench_huge_bodies.py /path/to/main .` compares a checkout of main with this one.
Each tree is served as `serve` runs it (its own process, a fresh database); Ollama is absent, so
every body is read and parsed, then answered 502 (or 400/413): the parse is what is measured.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.bench.gateway_process import (
    USER_KEY,
    drop_database,
    fresh_database,
    start_gateway,
)
from tests.support.ports import free_port

SIZE = 95 * 1024 * 1024
ROUNDS = 3  # bodies of each kind, one after another
PROBE_EVERY = 0.02


def keys_flood() -> bytes:
    parts, size, i = [b'{"model": "llama3.2"'], 20, 0
    while size < SIZE:
        part = b', "k%d": 0' % i
        parts.append(part)
        size += len(part)
        i += 1
    return b"".join(parts) + b"}"


def deep_arrays() -> bytes:
    # Nesting just under json's recursion limit, repeated: the parser must walk it all.
    unit = b"[" * 900 + b"]" * 900
    return b'{"model": "llama3.2", "a": [' + b",".join([unit] * (SIZE // (len(unit) + 1))) + b"]}"


async def _probe(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        async with session.get(url + "/health") as response:
            await response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(PROBE_EVERY)


async def measure(url: str, body: bytes) -> dict[str, float]:
    latencies: list[float] = []
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {USER_KEY}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as probe_session, aiohttp.ClientSession() as post_session:
        probe = asyncio.ensure_future(_probe(probe_session, url, stop, latencies))
        started = time.perf_counter()
        statuses = []
        for _ in range(ROUNDS):
            async with post_session.post(url + "/api/chat", data=body, headers=headers) as response:
                await response.read()
                statuses.append(response.status)
        elapsed = time.perf_counter() - started
        stop.set()
        await probe
    ordered = sorted(latencies)
    return {
        "statuses": statuses,
        "seconds per body": elapsed / ROUNDS,
        "probes": len(ordered),
        "p50 ms": statistics.median(ordered),
        "p99 ms": ordered[int(len(ordered) * 0.99) - 1],
        "max ms": ordered[-1],
    }


async def bench_tree(tree: Path, bodies: dict[str, bytes]) -> None:
    dsn = await fresh_database()
    with tempfile.TemporaryDirectory(prefix="ogw-bench-") as tmp:
        port = free_port()
        service = await start_gateway(
            "gateway",
            Path(tmp),
            port,
            "http://127.0.0.1:9",
            dsn,
            tree=tree,
            env={"MAX_JSON_BODY_SIZE": str(100 * 1024 * 1024), "LOG_LEVEL": "WARNING"},
        )
        try:
            for name, body in bodies.items():
                result = await measure(service.url, body)
                print(
                    f"{tree}  {name:12s}  "
                    + "  ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()),
                    flush=True,
                )
        finally:
            service.stop()
    await drop_database()


async def main(trees: list[Path]) -> None:
    bodies = {"keys flood": keys_flood(), "deep arrays": deep_arrays()}
    print(" ".join(f"{name}: {len(body) / 2**20:.0f} MiB" for name, body in bodies.items()))
    for tree in trees:
        await bench_tree(tree, bodies)


if __name__ == "__main__":
    asyncio.run(main([Path(arg).resolve() for arg in sys.argv[1:]] or [Path.cwd()]))
