"""The PostgreSQL the tests use: TEST_DATABASE_URL when set, else the embedded server."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg

from proxy.db.embedded import start_embedded_postgres


def server_dsn(scratch: Path) -> str:
    """A DSN of a server where the tests may create and drop databases."""
    return os.environ.get("TEST_DATABASE_URL") or start_embedded_postgres(scratch / "embedded")


def _with_database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_database(server: str) -> str:
    """A fresh, empty database for one test session; returns its DSN."""
    name = f"ogw_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    return _with_database(server, name)


def drop_database(server: str, dsn: str) -> None:
    name = dsn.partition("?")[0].rsplit("/", 1)[1]
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
