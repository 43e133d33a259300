"""Usage per node: request_log's node column through the rollups to /api/stats' by_node."""

from __future__ import annotations

import pytest

from proxy.request_log.batch import write_batch
from proxy.request_log.stats import fetch_daily_usage, summarize
from proxy.values.utc_day import utc_today
from tests.support.records import make_record, migrated_pool


@pytest.fixture
async def pool(database_url):
    pool = await migrated_pool(database_url)
    yield pool
    await pool.close()


async def test_each_node_is_its_own_rollup_row_and_stats_group_by_it(pool, db):
    records = [make_record(node="gpu1"), make_record(node="gpu1"), make_record(node="gpu2"), make_record()]
    async with pool.acquire() as conn:
        assert await write_batch(conn, records) == 4
    assert await db.fetchval("SELECT count(*) FROM usage_daily") == 3
    summary = summarize(await fetch_daily_usage(pool, utc_today(), utc_today()))
    assert [(row["node"], row["requests"]) for row in summary["by_node"]] == [("gpu1", 2), (None, 1), ("gpu2", 1)]
    assert summary["totals"]["requests"] == 4
