"""The shared limiter against a real PostgreSQL: several limiters stand for several gateway processes."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from proxy.errors import GatewayError
from proxy.ledger.limiter import CLOSED, LEDGER, LOCAL, SharedLimiter
from proxy.ledger.store import LedgerStore
from proxy.limits.lease_size import LEASE_SECONDS
from proxy.values.utc_day import utc_day_at
from tests.support.fake_clock import FakeClock


@pytest.fixture
async def pool(database_url, db):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
def clock():
    return FakeClock()


async def new_key(db, **limits) -> uuid.UUID:
    key_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO api_keys (id, key_hash, prefix, name, role, rate_limit, burst, max_concurrent, tokens_per_day) "
        "VALUES ($1, $2, 'olg_test', 'ledger', 'user', $3, $4, $5, $6)",
        key_id,
        uuid.uuid4().bytes * 2,
        limits.get("rate_limit", 1_000_000),  # every key has a rate; the tests pass their own limits
        limits.get("burst"),
        limits.get("max_concurrent"),
        limits.get("tokens_per_day"),
    )
    return key_id


async def processes(pool, clock, count: int, **options) -> list[SharedLimiter]:
    limiters = []
    for _ in range(count):
        store = LedgerStore(pool)
        await store.register()
        limiter = SharedLimiter(store, clock=clock, **options)
        limiter.ledger_back(count, len(limiters))
        limiters.append(limiter)
    return limiters


async def admit(limiter: SharedLimiter, key_id, limits):
    return limiter.try_admit(key_id, *limits) or await limiter.admit(key_id, *limits)


@pytest.mark.parametrize("count", [2, 5])
async def test_a_burst_of_10_admits_10_of_400_spread_over_processes(pool, db, clock, count):
    key_id = await new_key(db, rate_limit=1, burst=10)
    limiters = await processes(pool, clock, count)
    limits = (1, 10, None, None)
    results = await asyncio.gather(*(admit(limiters[i % count], key_id, limits) for i in range(400)))
    assert sum(a.allowed for a in results) == 10
    refused = [a for a in results if not a.allowed]
    assert {a.reason for a in refused} == {"rate"}
    assert all(a.retry_after >= 1 and a.headers["Retry-After"] == str(a.retry_after) for a in refused)


async def test_a_refill_is_shared_too(pool, db, clock):
    key_id = await new_key(db, rate_limit=3600, burst=4)  # one token a second
    a, b = await processes(pool, clock, 2)
    limits = (3600, 4, None, None)
    assert sum([(await admit(x, key_id, limits)).allowed for x in (a, b) * 4]) == 4
    clock.advance(1)
    assert [(await admit(x, key_id, limits)).allowed for x in (a, b)] == [True, False]


async def test_max_concurrent_3_over_two_processes_and_slots_come_back_on_release(pool, db, clock):
    key_id = await new_key(db, max_concurrent=3)
    a, b = await processes(pool, clock, 2)
    limits = (None, None, 3, None)
    held = await asyncio.gather(*(admit(x, key_id, limits) for x in (a, b) * 5))
    allowed = [(x, adm) for x, adm in zip((a, b) * 5, held, strict=True) if adm.allowed]
    assert len(allowed) == 3
    assert {adm.reason for adm in held if not adm.allowed} == {"concurrency"}
    for x, adm in allowed:
        x.release(key_id, adm)
    await asyncio.gather(a.settled(), b.settled())
    await asyncio.sleep(0.15)  # past the brief memory of b's refusals
    assert await db.fetchval("SELECT coalesce(sum(slots), 0) FROM limit_slots WHERE api_key_id = $1", key_id) == 0
    again = await asyncio.gather(*(admit(b, key_id, limits) for _ in range(3)))
    assert all(adm.allowed for adm in again)


async def test_a_generous_limit_leases_in_batches_so_few_admissions_ask_the_ledger(pool, db, clock):
    key_id = await new_key(db, rate_limit=3_600_000, burst=20_000, max_concurrent=1000)
    (limiter,) = await processes(pool, clock, 1)
    limits = (3_600_000, 20_000, 1000, None)
    for _ in range(2000):
        adm = await admit(limiter, key_id, limits)
        assert adm.allowed
        limiter.release(key_id, adm)
    counters = limiter.counters
    assert counters.local_admissions + counters.ledger_admissions == 2000
    assert counters.ledger_admissions / 2000 < 0.05
    assert counters.leases < 0.05 * 2000


async def test_unspent_rate_tokens_go_back_when_their_lease_expires(pool, db, clock):
    key_id = await new_key(db, rate_limit=1, burst=1000)
    (limiter,) = await processes(pool, clock, 1)
    for _ in range(10):
        assert (await admit(limiter, key_id, (1, 1000, None, None))).allowed
    level = "SELECT amount FROM limit_ledger WHERE api_key_id = $1 AND kind = 'rate'"
    leased = 1000 - await db.fetchval(level, key_id)
    assert leased > 10  # the lease grew past what was spent
    clock.advance(LEASE_SECONDS)
    limiter.expire()
    await limiter.settled()
    assert 1000 - await db.fetchval(level, key_id) == pytest.approx(10, abs=0.01)


async def test_a_dead_process_slots_are_reclaimed_by_the_sweeper(pool, db, clock):
    key_id = await new_key(db, max_concurrent=2)
    dead, alive = await processes(pool, clock, 2)
    limits = (None, None, 2, None)
    assert all([(await admit(dead, key_id, limits)).allowed for _ in range(2)])
    assert not (await admit(alive, key_id, limits)).allowed
    # The dead one stops beating; the sweeper takes what it held once its heartbeat is too old.
    await db.execute(
        "UPDATE limit_holders SET heartbeat_at = clock_timestamp() - interval '1 minute' WHERE holder = $1",
        dead.store.holder,
    )
    assert await alive.store.sweep() == [(dead.store.host, dead.store.pid)]
    await asyncio.sleep(0.15)  # past the brief memory of the last refusal
    assert (await admit(alive, key_id, limits)).allowed


async def test_one_sweeper_at_a_time(pool, db, clock):
    a, b = await processes(pool, clock, 2)
    async with pool.acquire() as conn, conn.transaction():
        await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", 0x6C65646765720001)
        assert await a.store.sweep() is None


async def test_a_process_taken_for_dead_registers_again_with_the_slots_it_uses(pool, db, clock):
    key_id = await new_key(db, max_concurrent=2)
    (limiter,) = await processes(pool, clock, 1)
    adm = await admit(limiter, key_id, (None, None, 2, None))
    await db.execute("DELETE FROM limit_holders")  # as a sweep would, after a long pause
    assert (await admit(limiter, key_id, (None, None, 2, None))).allowed  # the lease re-registers
    held = "SELECT coalesce(sum(slots), 0) FROM limit_slots WHERE api_key_id = $1"
    assert await db.fetchval(held, key_id) == 2  # the one in use was restored, the new one added
    limiter.release(key_id, adm)


async def test_daily_tokens_over_processes_pass_the_quota_by_at_most_one_settlement(pool, db, clock):
    key_id = await new_key(db, tokens_per_day=1000)
    limiters = await processes(pool, clock, 3)
    limits = (None, None, None, 1000)
    used = 0

    async def one(limiter: SharedLimiter, actual: int) -> None:
        nonlocal used
        adm = await admit(limiter, key_id, limits)
        if not adm.allowed:
            return
        try:
            reserved = await limiter.reserve_tokens(key_id, 1000, 40)
        except GatewayError as exc:
            assert exc.status == 429
            return
        await asyncio.sleep(0)
        used += actual
        limiter.settle(key_id, reserved, actual, adm)

    # Most use fewer tokens than they reserved; some more (an estimate that was too low).
    await asyncio.gather(*(one(limiters[i % 3], 60 if i % 50 == 0 else 25) for i in range(200)))
    assert 1000 - 3 * 40 <= used <= 1000 + 20
    for limiter in limiters:
        await limiter.settled()
    charged = await db.fetchval("SELECT amount FROM limit_ledger WHERE api_key_id = $1 AND kind = 'tokens'", key_id)
    assert charged >= used - 3 * 40  # allowances not yet given back count as used, never the other way


async def test_a_key_first_seen_today_starts_from_the_usage_rollups(pool, db, clock):
    key_id = await new_key(db, tokens_per_day=100)
    day = utc_day_at(clock())
    await db.execute(
        "INSERT INTO usage_daily (day, api_key_id, model, requests, errors, prompt_tokens, completion_tokens, "
        "response_time_sum, latency_histogram) VALUES ($1, $2, 'm', 1, 0, 60, 30, 1, '{}')",
        day,
        key_id,
    )
    (limiter,) = await processes(pool, clock, 1)
    assert (await admit(limiter, key_id, (None, None, None, 100))).allowed
    with pytest.raises(GatewayError, match="10 of 100 tokens left today"):  # 90 of 100 were used before
        await limiter.reserve_tokens(key_id, 100, 11)
    assert await limiter.reserve_tokens(key_id, 100, 10) == 10


@pytest.mark.parametrize("rule", [LOCAL, CLOSED])
async def test_when_the_ledger_is_away(pool, db, clock, rule):
    key_id = await new_key(db, rate_limit=1, burst=10, max_concurrent=4)
    limiters = await processes(pool, clock, 2, when_down=rule)
    await pool.close()  # PostgreSQL is away for these processes
    limits = (1, 10, 4, None)
    if rule == CLOSED:
        with pytest.raises(GatewayError) as refused:
            await admit(limiters[0], key_id, limits)
        assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) >= 1
        assert limiters[0].mode == CLOSED
        return
    results = []
    for x in limiters * 20:
        results.append(await admit(x, key_id, limits))
        if results[-1].allowed:
            x.release(key_id, results[-1])
    assert all(x.mode == LOCAL for x in limiters)
    # Each process enforces its share: 10 split in two never lets more than 10 through.
    assert sum(a.allowed for a in results) == 10
    assert all(a.fallback for a in results if a.allowed)
    limiters[0].ledger_back(2, 0)
    assert limiters[0].mode == LEDGER
