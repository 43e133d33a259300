"""The key cache against a real PostgreSQL: no query for junk, no stale store after a revoke, shared lookups."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from proxy.keys.cache import UNKNOWN_LOOKUP_BURST, UNKNOWN_LOOKUPS_PER_SECOND, KeyCache
from proxy.keys.events import KeyEventListener
from proxy.keys.format import generate_key, has_key_format
from proxy.keys.store import KeyStore
from tests.support.factories import SECRET


class GatedStore(KeyStore):
    """The real store, with a gate to hold its lookups mid-flight, a count of them, and events for
    a lookup that has read its row (`at_gate`) and one that has answered (`answered`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, SECRET)
        self.lookups = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.at_gate = asyncio.Event()
        self.answered = asyncio.Event()

    async def find_by_digest(self, digest: bytes):
        self.lookups += 1
        record = await super().find_by_digest(digest)
        self.at_gate.set()
        await self.gate.wait()
        self.answered.set()  # the caller goes on in this same step: it has the record when a waiter wakes
        return record


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(database_url, db):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield GatedStore(pool)
    await pool.close()


async def test_junk_and_mistyped_keys_never_query(store):
    new = await store.create(name="k", role="user", rate_limit=10)
    cache = KeyCache(store, ttl=30, operator_keys=["operator-chosen-key-1234"])
    for junk in (
        "random-junk-credential",
        new.key[:-1],
        new.key[:-1] + ("A" if new.key[-1] != "A" else "B"),
        "x" * 5000,
    ):
        assert await cache.lookup(junk) is None
    assert store.lookups == 0
    assert await cache.lookup("operator-chosen-key-1234") is None  # configured, so asked (and unknown)
    assert (await cache.lookup(new.key)).id == new.record.id
    assert store.lookups == 2


async def test_a_revoke_during_a_lookup_is_not_undone_by_it(store):
    new = await store.create(name="k", role="user", rate_limit=10)
    cache = KeyCache(store, ttl=30)
    store.gate.clear()
    first = asyncio.create_task(cache.lookup(new.key))
    await store.at_gate.wait()  # the query has read the active row and waits at the gate
    await store.revoke(new.record.id)
    cache.invalidate(new.record.id)
    store.gate.set()
    await first
    record = await cache.lookup(new.key)
    assert record is not None and not record.is_active


async def test_one_query_for_many_waiters_and_a_leaving_client_cancels_only_itself(store):
    new = await store.create(name="k", role="user", rate_limit=10)
    cache = KeyCache(store, ttl=30)
    store.gate.clear()
    waiters = [asyncio.create_task(cache.lookup(new.key)) for _ in range(5)]
    await store.at_gate.wait()  # a database round trip later: every waiter has joined the one query
    waiters[0].cancel()
    store.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(r.id == new.record.id for r in results[1:])
    assert store.lookups == 1


async def test_a_known_key_past_its_ttl_answers_at_once_and_refreshes_behind(store):
    new = await store.create(name="k", role="user", rate_limit=10)
    clock = Clock()
    cache = KeyCache(store, ttl=30, clock=clock)
    await cache.lookup(new.key)
    clock.now += 31
    store.gate.clear()  # the database is now slow
    store.answered.clear()
    record = await asyncio.wait_for(cache.lookup(new.key), 5)
    assert record.id == new.record.id and store.lookups == 2  # answered from memory; refresh under way
    assert not store.answered.is_set()
    store.gate.set()
    await store.answered.wait()
    await cache.lookup(new.key)
    assert store.lookups == 2  # fresh again after the refresh


async def test_a_flood_of_distinct_forged_keys_costs_at_most_the_budget(store):
    real = await store.create(name="real", role="user", rate_limit=10)
    clock = Clock()
    cache = KeyCache(store, ttl=30, clock=clock)
    await cache.load_known()
    forged = [generate_key() for _ in range(2_000)]  # well-formed, checksum and all
    assert all(has_key_format(key) for key in forged)
    assert [await cache.lookup(key) for key in forged] == [None] * 2_000
    assert store.lookups == UNKNOWN_LOOKUP_BURST  # the clock stands still: the burst, then nothing
    assert cache.unknown_refused == 2_000 - UNKNOWN_LOOKUP_BURST
    clock.now += 1
    assert [await cache.lookup(key) for key in forged[:100]] == [None] * 100
    assert store.lookups == UNKNOWN_LOOKUP_BURST + UNKNOWN_LOOKUPS_PER_SECOND
    # Keys that exist are known and answered whatever the budget: right after the flood,
    assert (await cache.lookup(real.key)).id == real.record.id
    # and a key created now (here, or announced by NOTIFY: both call learn) works at once.
    new = await store.create(name="new", role="user", rate_limit=10)
    cache.learn(store.digest(new.key))
    assert (await cache.lookup(new.key)).id == new.record.id


async def test_without_the_digest_set_every_key_is_looked_up_within_the_budget(store):
    """The listener down and the set not (yet) loaded: slower to learn new keys, never unbounded."""
    keys = [await store.create(name=f"k{i}", role="user", rate_limit=10) for i in range(3)]
    cache = KeyCache(store, ttl=30, clock=Clock())
    for new in keys:
        assert (await cache.lookup(new.key)).id == new.record.id
    for key in [generate_key() for _ in range(500)]:
        await cache.lookup(key)
    assert store.lookups == UNKNOWN_LOOKUP_BURST
    for new in keys:  # known from their first lookup on: no budget needed
        assert (await cache.lookup(new.key)).id == new.record.id


async def test_a_key_created_on_another_host_works_amid_a_flood_once_notified(store, database_url):
    cache = KeyCache(store, ttl=30, clock=Clock())
    listener = KeyEventListener(database_url, cache, store)
    listening = asyncio.create_task(listener.run())
    try:
        for key in [generate_key() for _ in range(UNKNOWN_LOOKUP_BURST + 50)]:
            await cache.lookup(key)  # the budget is spent, and the clock stands still
        before = store.lookups
        # Created as another host or the CLI would: straight into the database, this cache not told.
        new = await store.create(name="elsewhere", role="user", rate_limit=10)
        async with asyncio.timeout(10):  # polling with a deadline, until the NOTIFY has arrived
            while (record := await cache.lookup(new.key)) is None:
                await asyncio.sleep(0.01)
        assert record.id == new.record.id
        assert store.lookups == before + 1  # the key's own row, and nothing for the refused polls
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
