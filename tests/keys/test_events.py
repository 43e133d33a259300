"""The key change listener: a key revoked or deleted by any writer is reported, an edited one is not."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest

from proxy.keys.cache import KeyCache
from proxy.keys.events import KeyEventListener
from proxy.keys.store import KeyStore
from tests.support.factories import SECRET


@pytest.fixture
async def store(database_url, db):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield KeyStore(pool, SECRET)
    await pool.close()


async def test_revoked_and_deleted_keys_are_reported_as_retired_and_edited_ones_are_not(store, database_url, db):
    retired: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    cache = KeyCache(store, ttl=30)
    listener = KeyEventListener(database_url, cache, store, on_retired=retired.put_nowait)
    edited, revoked, deleted, probe = [
        (await store.create(name=n, role="user", rate_limit=10)).record.id
        for n in ("edited", "revoked", "deleted", "probe")
    ]
    await store.revoke(probe)
    listening = asyncio.create_task(listener.run())
    try:
        async with asyncio.timeout(10):  # until the listener hears: each change of the revoked probe is reported
            while retired.empty():
                await db.execute("UPDATE api_keys SET name = name || '.' WHERE id = $1", probe)
                await asyncio.sleep(0.05)
        # As the CLI or another gateway would: straight into the database, this process not told.
        await db.execute("UPDATE api_keys SET name = 'renamed', rate_limit = 20 WHERE id = $1", edited)
        await db.execute("UPDATE api_keys SET is_active = false WHERE id = $1", revoked)
        await db.execute("DELETE FROM api_keys WHERE id = $1", deleted)
        reported: set[uuid.UUID] = set()
        async with asyncio.timeout(10):
            while not {revoked, deleted} <= reported:
                reported.add(await retired.get())
        assert edited not in reported
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
