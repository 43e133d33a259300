"""The asyncpg connection pool, as an application cleanup context."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import asyncpg
from aiohttp import web

from proxy.db.errors import DATABASE_ERRORS
from proxy.db.failure import connection_failure
from proxy.db.migrations import migrate
from proxy.state import POOL, SETTINGS


@contextlib.contextmanager
def explained_connect(dsn: str, setting: str = "DATABASE_URL") -> Iterator[None]:
    """Connecting to `dsn` fails with DatabaseUnavailable: one line naming the server and `setting`."""
    try:
        yield
    except (*DATABASE_ERRORS, ValueError) as exc:  # ValueError: a DSN asyncpg cannot parse
        raise connection_failure(exc, dsn, setting) from None


async def create_pool(dsn: str) -> asyncpg.Pool:
    with explained_connect(dsn):
        return await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=10,
            # A dead database must fail a query, not hang it: the request path never waits on it,
            # but the admin API and the log writer do.
            command_timeout=30,
            timeout=10,
        )


async def pool_context(app: web.Application) -> AsyncIterator[None]:
    """Open the pool and bring the schema up to date before the app serves anything."""
    settings = app[SETTINGS]
    assert settings.database_url, "the CLI resolves the embedded database before building the app"
    pool = await create_pool(settings.database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    except BaseException:
        await pool.close()  # the start fails: its connections must not outlive it
        raise
    app[POOL] = pool
    yield
    await pool.close()
