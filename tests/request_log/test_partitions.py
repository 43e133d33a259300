"""Daily partitions of request_log: made ahead, rows the DEFAULT caught moved in, old days dropped whole."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from proxy.request_log.batch import write_batch
from proxy.request_log.partitions import DAYS_AHEAD, USAGE_HOURLY_DAYS, drop_expired, ensure_partitions, maintain
from tests.support.records import make_record, migrated_pool

# Days far from today, so these tests never touch the partitions other tests write into.
OLD = date(2001, 1, 1)


@pytest.fixture
async def pool(database_url):
    pool = await migrated_pool(database_url)
    yield pool
    await pool.close()


def _at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), UTC)


async def _partitions(db, prefix: str) -> list[str]:
    rows = await db.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'request_log'::regclass AND c.relname LIKE $1 ORDER BY 1",
        prefix + "%",
    )
    return [row["relname"] for row in rows]


async def test_today_and_the_days_ahead_are_made_once(pool, db):
    assert await ensure_partitions(pool, OLD) == DAYS_AHEAD + 1
    assert await ensure_partitions(pool, OLD) == 0
    names = await _partitions(db, "request_log_p200101")
    assert names == [f"request_log_p200101{d:02d}" for d in range(1, DAYS_AHEAD + 2)]
    # Rows go to their day, and the primary key holds on the partition.
    record = make_record(created_at=_at(OLD, 23))
    async with pool.acquire() as conn:
        assert await write_batch(conn, [record, record]) == 1
    assert (
        await db.fetchval("SELECT tableoid::regclass::text FROM request_log WHERE id = $1", record.id)
        == "request_log_p20010101"
    )


async def test_rows_the_default_partition_caught_move_into_the_new_day(pool, db):
    day = date(2002, 3, 4)
    records = [make_record(created_at=_at(day, h)) for h in (0, 6, 23)]
    records.append(make_record(created_at=_at(day + timedelta(1), 0)))
    async with pool.acquire() as conn:
        await write_batch(conn, records)
    assert await db.fetchval("SELECT count(*) FROM request_log_default") == 4
    assert await ensure_partitions(pool, day, days_ahead=0) == 1
    assert await db.fetchval("SELECT count(*) FROM request_log_p20020304") == 3
    assert await db.fetchval("SELECT count(*) FROM request_log_default") == 1  # the next day's row stays
    assert await db.fetchval("SELECT count(*) FROM request_log") == 4
    async with pool.acquire() as conn:
        assert await write_batch(conn, records) == 0  # still unique across the move


async def test_retention_drops_whole_old_days_and_old_default_rows(pool, db):
    start = date(2003, 5, 1)
    await ensure_partitions(pool, start, days_ahead=5)  # May 1..6
    records = [make_record(created_at=_at(start + timedelta(d))) for d in range(6)]
    stray = make_record(created_at=_at(date(2003, 4, 1)))  # in DEFAULT
    async with pool.acquire() as conn:
        await write_batch(conn, records + [stray])
    today = date(2003, 5, 6)
    assert await drop_expired(pool, today, retention_days=0) == 0  # 0 keeps everything
    # May 1 and 2 go (May 3 is 3 days ago), with any older partition another test made.
    assert await drop_expired(pool, today, retention_days=3) >= 2
    assert await _partitions(db, "request_log_p200305") == [f"request_log_p2003050{d}" for d in range(3, 7)]
    left = await db.fetch("SELECT id FROM request_log WHERE created_at < '2003-06-01'")
    assert {row["id"] for row in left} == {r.id for r in records[2:]}
    # Rollups stay: statistics over history outlive the raw rows.
    assert await db.fetchval("SELECT sum(requests) FROM usage_daily WHERE day < '2003-06-01'") == 7


async def test_maintain_makes_today_and_leaves_recent_days(pool, db):
    today = datetime.now(UTC).date()
    await maintain(pool, retention_days=90)
    names = await _partitions(db, "request_log_p")
    assert f"request_log_p{today:%Y%m%d}" in names
    assert f"request_log_p{today + timedelta(DAYS_AHEAD):%Y%m%d}" in names


async def test_maintain_prunes_every_hourly_rollup_past_its_window_and_keeps_the_daily_ones(pool, db):
    today = datetime.now(UTC).date()
    old, recent = today - timedelta(days=USAGE_HOURLY_DAYS + 1), today - timedelta(days=1)
    async with pool.acquire() as conn:
        await write_batch(conn, [make_record(created_at=_at(old)), make_record(created_at=_at(recent))])
    await maintain(pool, retention_days=0)
    for table in ("usage_hourly", "usage_hourly_by_key", "usage_hourly_by_model_node"):
        hours = await db.fetch(f"SELECT hour FROM {table}")
        assert [row["hour"] for row in hours] == [_at(recent)], table
    for table in ("usage_daily", "usage_daily_by_key", "usage_daily_by_model_node"):
        assert await db.fetchval(f"SELECT sum(requests) FROM {table}") == 2, table
