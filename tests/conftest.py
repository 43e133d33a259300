"""Fixtures: a real PostgreSQL database per session, and a clean slate per test."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import asyncpg
import pytest

from proxy.db.migrations import migrate
from tests.support.database import create_database, drop_database, server_dsn
from tests.support.factories import GatewayTestServer, RecordingSink
from tests.support.fake_ollama import create_fake_ollama


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = server_dsn(tmp_path_factory.mktemp("pg"))
    dsn = create_database(server)
    yield dsn
    drop_database(server, dsn)


@pytest.fixture
def fresh_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database of its own, no schema: for tests of the migrations themselves."""
    server = server_dsn(tmp_path_factory.getbasetemp() / "pg")
    dsn = create_database(server)
    yield dsn
    drop_database(server, dsn)


@pytest.fixture
async def db(database_url: str) -> asyncpg.Connection:
    """A connection to the test database, emptied of rows first (the schema stays)."""
    conn = await asyncpg.connect(database_url)
    await migrate(conn)  # tests that use the database without starting an app still get the schema
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
    )
    if tables:
        names = ", ".join(f'"{t["tablename"]}"' for t in tables)
        await conn.execute(f"TRUNCATE {names}")
    yield conn
    await conn.close()


@pytest.fixture
async def aiohttp_server():
    """pytest-aiohttp's factory, serving gateways with the gateway's own runner (HEADER_READ_TIMEOUT)
    when given `header_read_timeout`, as `serve` does."""
    servers = []

    async def start(app, *, host="127.0.0.1", port=None, **options):
        server = GatewayTestServer(app, host=host, port=port)
        await server.start_server(**options)
        servers.append(server)
        return server

    yield start
    while servers:
        await servers.pop().close()


@pytest.fixture
async def fake(aiohttp_server):
    """A fake Ollama on a real port."""
    return await aiohttp_server(create_fake_ollama())


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session
