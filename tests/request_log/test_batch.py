"""One batch into PostgreSQL: COPY via staging, idempotent under retries, rollups counted once."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import string
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from proxy.request_log.batch import to_row, write_batch
from proxy.request_log.commit import is_bad_record
from tests.support.records import make_record, migrated_pool


@pytest.fixture
async def pool(database_url):
    pool = await migrated_pool(database_url)
    yield pool
    await pool.close()


async def _key(db) -> uuid.UUID:
    key_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO api_keys (id, key_hash, prefix, name, role, rate_limit) "
        "VALUES ($1, $2, 'olg_test', 'batch', 'user', 10)",
        key_id,
        os.urandom(32),
    )
    return key_id


async def _daily(db) -> tuple[int, int, int]:
    return tuple(
        await db.fetchrow(
            "SELECT coalesce(sum(requests), 0)::int, coalesce(sum(prompt_tokens), 0)::int, "
            "coalesce(sum(errors), 0)::int FROM usage_daily"
        )
    )


async def test_a_retried_batch_inserts_and_counts_nothing_twice(pool, db):
    key_id = await _key(db)
    records = [make_record(api_key_id=key_id) for _ in range(100)]
    async with pool.acquire() as conn:
        assert await write_batch(conn, records) == 100
        # The commit went through but its acknowledgement was lost: the writer sends it again,
        # together with new records.
        fresh = [make_record(api_key_id=key_id, status_code=500) for _ in range(50)]
        assert await write_batch(conn, records[50:] + fresh) == 50
        assert await write_batch(conn, records) == 0
    assert await db.fetchval("SELECT count(*) FROM request_log") == 150
    assert await db.fetchval("SELECT count(DISTINCT id) FROM request_log") == 150
    assert await _daily(db) == (150, 150 * 11, 50)
    newest = max(r.created_at for r in records + fresh)
    assert await db.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key_id) == newest


async def test_concurrent_writers_of_overlapping_batches_count_each_row_once(pool, db):
    key_id = await _key(db)
    records = [make_record(api_key_id=key_id, model=f"m{i % 3}") for i in range(600)]

    async def write(part):
        async with pool.acquire() as conn:
            return await write_batch(conn, part)

    inserted = await asyncio.gather(write(records[:400]), write(records[200:]), write(records[100:500]))
    assert sum(inserted) == 600
    assert await db.fetchval("SELECT count(*) FROM request_log") == 600
    assert await _daily(db) == (600, 600 * 11, 0)
    histogram_total = await db.fetchval("SELECT sum(n) FROM usage_daily, unnest(latency_histogram) AS n")
    assert histogram_total == 600


async def test_numbers_and_addresses_postgresql_would_refuse_are_made_acceptable(pool, db):
    odd = make_record(client_ip="unix-socket", prompt_tokens=2**40, completion_tokens=-3, status_code=70000, model=None)
    scoped = make_record(client_ip="fe80::1%eth0", bytes_in=2**70)
    async with pool.acquire() as conn:
        assert await write_batch(conn, [odd, scoped]) == 2
    row = await db.fetchrow("SELECT * FROM request_log WHERE id = $1", odd.id)
    assert row["client_ip"] is None and row["prompt_tokens"] == 2**31 - 1 and row["completion_tokens"] == 0
    assert row["status_code"] == 2**15 - 1
    assert str(await db.fetchval("SELECT client_ip FROM request_log WHERE id = $1", scoped.id)) == "fe80::1"


# Incompressible, as a real name would be: PostgreSQL compresses an index entry before it checks the size.
LONG = "".join(random.Random(12).choices(string.ascii_letters + string.digits, k=10_000))
UNSTORABLE = {
    "model of 3,000 chars": {"model": LONG[:3_000]},  # past the usage_daily index row limit (54000)
    "model with NUL": {"model": "llama\x00"},  # 22021, refused by the server
    "model with a lone surrogate": {"model": "llama\ud800"},  # cannot even be encoded, client-side
    "endpoint with NUL": {"endpoint": "/api/\x00"},
    "error with a lone surrogate": {"error": "\udcff bad"},
}


@pytest.mark.parametrize("fields", UNSTORABLE.values(), ids=UNSTORABLE.keys())
async def test_text_that_skipped_make_storable_is_refused_as_a_bad_record(pool, db, fields):
    raw = make_record(**fields)
    async with pool.acquire() as conn:
        with pytest.raises(Exception) as refused:
            await write_batch(conn, [raw])
    assert is_bad_record(refused.value)
    raw.make_storable()  # what the timing middleware and the journal reader do
    async with pool.acquire() as conn:
        assert await write_batch(conn, [raw]) == 1
    assert await db.fetchval("SELECT count(*) FROM request_log WHERE id = $1", raw.id) == 1


async def test_rows_carry_every_column(pool, db):
    record = make_record(
        api_key_id=None,
        ttfb=3.5,
        bytes_in=10,
        bytes_out=20,
        usage_estimated=True,
        client_ip="10.1.2.3",
        created_at=datetime.now(UTC) - timedelta(days=400),
        node="gpu1",
        queue_ms=250.0,
    )
    async with pool.acquire() as conn:
        assert await write_batch(conn, [record]) == 1  # a day with no partition lands in DEFAULT
    row = dict(await db.fetchrow("SELECT * FROM request_log WHERE id = $1", record.id))
    assert row == {
        "id": record.id,
        "api_key_id": None,
        "endpoint": "/api/chat",
        "method": "POST",
        "model": "llama3.2",
        "status_code": 200,
        "prompt_tokens": 11,
        "completion_tokens": 5,
        "tokens_used": 16,
        "usage_estimated": True,
        "response_time": 42.0,
        "ttfb": 3.5,
        "bytes_in": 10,
        "bytes_out": 20,
        "client_ip": row["client_ip"],
        "error": None,
        "created_at": record.created_at,
        "node": "gpu1",
        "queue_ms": 250.0,
    }
    assert str(row["client_ip"]) == "10.1.2.3"
    assert len(to_row(record)) == 19


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 12, 2, 21, 53, 25, 999_999, tzinfo=UTC),
        datetime(2026, 12, 2, 21, 53, 25, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 58, 500_001, tzinfo=UTC),  # before the epoch, mid-second
        datetime.max.replace(tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
    ],
    ids=["last microsecond", "whole second", "before the epoch", "the last of 9999", "year 1", "not UTC"],
)
async def test_created_at_arrives_to_the_microsecond(pool, db, created_at):
    record = make_record(created_at=created_at)
    async with pool.acquire() as conn:
        assert await write_batch(conn, [record]) == 1
        assert await write_batch(conn, [record]) == 0  # and a retry finds it again
    assert await db.fetchval("SELECT created_at FROM request_log WHERE id = $1", record.id) == created_at


async def test_a_created_at_without_a_time_zone_is_a_bad_record(pool):
    async with pool.acquire() as conn:
        with pytest.raises(TypeError) as refused:
            await write_batch(conn, [make_record(created_at=datetime(2026, 12, 2, 12, 0))])
    assert is_bad_record(refused.value)


@pytest.mark.parametrize(
    ("given", "stored"),
    [("192.0.2.7", "192.0.2.7"), ("2001:db8::1", "2001:db8::1"), ("::ffff:192.0.2.7", "::ffff:192.0.2.7"),
     ("fe80::1%eth0", "fe80::1"), ("", None), ("unix-socket", None), ("1.2.3.4.5", None)],
)  # fmt: skip
async def test_client_addresses_are_stored_as_inet_or_not_at_all(pool, db, given, stored):
    record = make_record(client_ip=given)
    async with pool.acquire() as conn:
        assert await write_batch(conn, [record]) == 1
    value = await db.fetchval("SELECT client_ip FROM request_log WHERE id = $1", record.id)
    assert value == (None if stored is None else ipaddress.ip_address(stored))


async def test_a_batch_carrying_a_record_twice_counts_it_once(pool, db):
    records = [make_record() for _ in range(3)]
    async with pool.acquire() as conn:
        assert await write_batch(conn, [*records, records[1]]) == 3
    assert await db.fetchval("SELECT sum(requests) FROM usage_daily") == 3


async def test_histograms_add_element_wise_even_when_lengths_differ(pool):
    assert await pool.fetchval("SELECT usage_histogram_add('{1,2}'::bigint[], '{1,1,1}'::bigint[])") == [2, 3, 1]
    assert await pool.fetchval(
        "SELECT usage_histogram_sum(h) FROM (VALUES ('{1,0}'::bigint[]), ('{2,5}'), (NULL)) AS t(h)"
    ) == [3, 5]


async def test_the_hourly_rollup_counts_the_same_rows_per_utc_hour_with_time_to_first_byte(pool, db):
    key_id = await _key(db)
    start = datetime(2025, 6, 2, 10, tzinfo=UTC)
    records = [
        make_record(api_key_id=key_id, created_at=start + timedelta(minutes=5), ttfb=12.0),
        make_record(api_key_id=key_id, created_at=start + timedelta(minutes=59), ttfb=30.0),
        make_record(api_key_id=key_id, created_at=start + timedelta(minutes=61), status_code=429),  # no first byte
    ]
    async with pool.acquire() as conn:
        assert await write_batch(conn, records) == 3
        assert await write_batch(conn, records) == 0  # a replay counts nothing, hourly either
    rows = await db.fetch("SELECT hour, requests, errors, ttfb_histogram FROM usage_hourly ORDER BY hour")
    assert [(row["hour"], row["requests"], row["errors"]) for row in rows] == [
        (start, 2, 0),
        (start + timedelta(hours=1), 1, 1),
    ]
    assert sum(rows[0]["ttfb_histogram"]) == 2
    assert sum(rows[1]["ttfb_histogram"]) == 0
    daily = await db.fetchrow("SELECT requests, ttfb_histogram FROM usage_daily")
    assert (daily["requests"], sum(daily["ttfb_histogram"])) == (3, 2)
