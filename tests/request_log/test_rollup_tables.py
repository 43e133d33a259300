"""The coarser rollups (sql/010): written with usage_daily and usage_hourly from the same new rows, they
hold the same sums without the key, or with the key alone; the migration's usage_rollups_regroup()
builds the same rows from usage_daily and usage_hourly."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from proxy.db.migrations import SQL_DIR, migrate
from proxy.request_log import latency_histogram
from proxy.request_log.batch import write_batch
from proxy.request_log.rollup import rollups
from proxy.request_log.rollup_tables import (
    DAILY_BY_KEY,
    DAILY_BY_MODEL_NODE,
    HOURLY_BY_KEY,
    HOURLY_BY_MODEL_NODE,
    USAGE_DAILY,
    USAGE_HOURLY,
    WRITE_ORDER,
    RollupTable,
)
from proxy.request_log.rollup_upsert import MANY, UPSERTS, arguments
from tests.support.records import make_record, migrated_pool

START = datetime(2024, 3, 9, 22, 0, tzinfo=UTC)  # the records run past midnight
COUNTERS = ("requests", "errors", "prompt_tokens", "completion_tokens", "response_time_sum")
HISTOGRAMS = ("latency_histogram", "ttfb_histogram", "queue_histogram")


@pytest.fixture
async def pool(database_url):
    pool = await migrated_pool(database_url)
    yield pool
    await pool.close()


def _records(keys: list[uuid.UUID | None]) -> list:
    return [
        make_record(
            api_key_id=keys[i % len(keys)],
            model=("llama3.2", "qwen3", None, "")[i % 4],  # NULL and '' are one group in every unique key
            node=("a", None, "b")[i % 3],
            created_at=START + timedelta(minutes=7 * i),
            status_code=500 if i % 5 == 0 else 200,
            prompt_tokens=i,
            response_time=10.5 * i,  # exact in binary, so every order of adding gives the same sum
            ttfb=None if i % 6 == 0 else 2.5 * i,
            queue_ms=None if i % 2 else 30.0 + i,
        )
        for i in range(48)
    ]


def _as_summed(names: tuple[str, ...], values) -> tuple:
    return tuple(value if name == "api_key_id" else value or "" for name, value in zip(names, values, strict=True))


async def _sums(db, table: RollupTable, dimensions: tuple[str, ...]) -> dict[tuple, list]:
    """The table's counters and histograms summed per period and `dimensions` (NULL counted as '', as the
    unique keys do; histograms without their trailing zeros)."""
    sums: dict[tuple, list] = {}
    for row in await db.fetch(f"SELECT * FROM {table.name}"):
        group = (row[table.period], *_as_summed(dimensions, [row[d] for d in dimensions]))
        into = sums.setdefault(group, [0] * len(COUNTERS) + [[] for _ in HISTOGRAMS])
        for i, column in enumerate(COUNTERS):
            into[i] += row[column]
        for i, column in enumerate(HISTOGRAMS, len(COUNTERS)):
            latency_histogram.add_into(into[i], row[column])
    for into in sums.values():
        for histogram in into[len(COUNTERS) :]:
            while histogram and histogram[-1] == 0:
                histogram.pop()
    return sums


async def _agree(db) -> None:
    for every, by_key, by_model_node in ((USAGE_DAILY, DAILY_BY_KEY, DAILY_BY_MODEL_NODE),
                                         (USAGE_HOURLY, HOURLY_BY_KEY, HOURLY_BY_MODEL_NODE)):  # fmt: skip
        assert await _sums(db, by_key, ("api_key_id",)) == await _sums(db, every, ("api_key_id",))
        assert await _sums(db, by_model_node, ("model", "node")) == await _sums(db, every, ("model", "node"))


async def test_replayed_and_concurrent_batches_count_once_in_every_table(pool, db):
    keys = [uuid.uuid4(), uuid.uuid4(), None]
    for key_id in keys[:2]:
        await db.execute(
            "INSERT INTO api_keys (id, key_hash, prefix, name, role, rate_limit) "
            "VALUES ($1, $2, 'olg_test', 'grains', 'user', 10)",
            key_id,
            os.urandom(32),
        )
    records = _records(keys)

    async def write(part):
        async with pool.acquire() as conn:
            return await write_batch(conn, part)

    assert await write(records[:20]) == 20
    # Overlapping batches from several writers, one of them a replay of rows already written.
    assert sum(await asyncio.gather(write(records[10:40]), write(records[:30]), write(records[25:]))) == 28
    assert await write(records) == 0
    for table in WRITE_ORDER:
        assert await db.fetchval(f"SELECT sum(requests) FROM {table.name}") == 48, table.name
    assert await db.fetchval("SELECT count(*) FROM usage_daily_by_key WHERE api_key_id IS NULL") == 2  # 2 days
    await _agree(db)
    written = {table: await _sums(db, table, table.dimensions) for table in WRITE_ORDER}
    assert written == _folded(records)
    await db.execute("SELECT usage_rollups_regroup()")
    assert {table: await _sums(db, table, table.dimensions) for table in WRITE_ORDER} == written


def _folded(records: list) -> dict[RollupTable, dict[tuple, list]]:
    """What _sums should find after writing `records`, folded in Python."""
    folded: dict[RollupTable, dict[tuple, list]] = {}
    for table, groups in rollups(records).items():
        folded[table] = {}
        for (start, *dimensions), totals in groups:
            row = [getattr(totals, column) for column in COUNTERS]
            for histogram in HISTOGRAMS:
                row.append(list(getattr(totals, histogram)))
                while row[-1] and row[-1][-1] == 0:
                    row[-1].pop()
            folded[table][(start, *_as_summed(table.dimensions, dimensions))] = row
    return folded


async def test_many_groups_add_bucket_by_bucket_as_few_groups_add_whole_arrays(pool, db):
    keys = [uuid.uuid4() for _ in range(MANY + 10)] + [None]
    records = _records(keys) + _records(keys)  # each group twice, the second time onto a row already there
    assert len(rollups(records[:48])[USAGE_DAILY]) >= MANY > len(rollups(records[:48])[DAILY_BY_MODEL_NODE])
    async with pool.acquire() as conn:
        assert await write_batch(conn, records[:48]) == 48
        # A row from before sql/009: no time to first byte, an empty array.
        await conn.execute("UPDATE usage_daily SET ttfb_histogram = '{}' WHERE model = 'qwen3'")
        groups = rollups(records[48:])
        found = []
        for many in (False, True):
            adding = conn.transaction()
            await adding.start()
            for table in WRITE_ORDER:
                await conn.execute(UPSERTS[table][many], *arguments(groups[table]))
            found.append({table: await _sums(conn, table, table.dimensions) for table in WRITE_ORDER})
            await adding.rollback()
    assert found[0] == found[1]


async def test_the_migration_fills_them_from_the_rows_already_there(fresh_database, tmp_path):
    for path in SQL_DIR.glob("00*.sql"):  # the schema as it was before sql/010
        shutil.copy(path, tmp_path)
    conn = await asyncpg.connect(fresh_database)
    try:
        await migrate(conn, tmp_path)
        # Rows of a gateway that kept usage_daily and usage_hourly alone, some from before sql/009
        # (no time to first byte: an empty array).
        groups = rollups(_records([uuid.uuid4(), None]))
        async with conn.transaction():
            for table in (USAGE_DAILY, USAGE_HOURLY):
                await conn.execute(UPSERTS[table][0], *arguments(groups[table]))
            await conn.execute("UPDATE usage_daily SET ttfb_histogram = '{}' WHERE model = 'qwen3'")
            await conn.execute("UPDATE usage_hourly SET ttfb_histogram = '{}' WHERE model = 'qwen3'")
        assert [m.version for m in await migrate(conn)][0] == 10  # and those after it
        await _agree(conn)
        assert await conn.fetchval("SELECT sum(requests) FROM usage_hourly_by_model_node") == 48
    finally:
        await conn.close()
