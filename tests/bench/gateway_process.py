"""The gateway as users run it: `python -m proxy serve` against a fresh database on a real PostgreSQL."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import asyncpg
from yarl import URL

from tests.bench.processes import REPO, Service, python, start, wait_listening

BASE_DATABASE_URL = (
    os.environ.get("BENCH_DATABASE_URL")
    or os.environ.get("TEST_DATABASE_URL")
    or "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE = f"ogw_bench_{os.getpid()}"  # per run: others may be benchmarking too
USER_KEY = "bench-user-key-0123456789abcdefghij"
ADMIN_KEY = "bench-admin-key-0123456789abcdefghij"
SECRET = "bench-secret-" + "x" * 40
HUGE = 10_000_000  # the API's maximum rate_limit and burst: the limiter runs but never refuses


def database_url(name: str = DATABASE) -> str:
    return str(URL(BASE_DATABASE_URL).with_path("/" + name))


async def fresh_database(name: str = DATABASE) -> str:
    conn = await asyncpg.connect(BASE_DATABASE_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(name)


async def drop_database(name: str = DATABASE) -> None:
    conn = await asyncpg.connect(BASE_DATABASE_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def start_gateway(
    name: str,
    tmp: Path,
    port: int,
    upstream: str,
    dsn: str,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    tree: Path | None = None,
    launcher: Sequence[str] = (),
    preamble: str = "",
    start_timeout: float = 60,
) -> Service:
    """`serve` with auth, limits (a huge rate_limit and burst) and the usage log on; defaults otherwise.

    `tree`: another checkout's `proxy` package to serve, e.g. main's, to compare side by side.
    `launcher`: a command the gateway runs under, and `preamble` Python code run in its process before
    `serve` (valgrind and the writer's batching, for tests/bench/instructions.py)."""
    args = ["serve"] + (["--workers", str(workers)] if workers > 1 else [])
    argv = (
        python("proxy", *args)
        if tree is None and not preamble
        else [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(tree or REPO)!r})\n{preamble}\n"
            f"from proxy.cli.main import main; sys.exit(main({args!r}))",
        ]
    )
    service = start(
        name,
        [*launcher, *argv],
        tmp,
        port,
        env={
            "DATABASE_URL": dsn,
            "SECRET_KEY": SECRET,
            "OLLAMA_BASE_URL": upstream,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_DATA_DIR": str(tmp / f"{name}-data"),
            "DEMO_USER_KEY": USER_KEY,
            "DEMO_ADMIN_KEY": ADMIN_KEY,
            "DEFAULT_RATE_LIMIT": str(HUGE),
            **(env or {}),
        },
    )
    await wait_listening(service, start_timeout)
    await _raise_burst(service.url)
    return service


async def _raise_burst(url: str) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/keys", headers=admin) as response:
            listing = await response.json()
        keys = listing["keys"] if isinstance(listing, dict) else listing
        user = next(k for k in keys if k["name"] == "demo-user")
        async with session.patch(
            f"{url}/api/keys/{user['id']}", headers=admin, data=json.dumps({"burst": HUGE, "rate_limit": HUGE})
        ) as response:
            assert response.status == 200, await response.text()


async def logged_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM request_log WHERE endpoint NOT LIKE '/api/keys%'")
    finally:
        await conn.close()
