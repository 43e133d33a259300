"""Time spent queued: request_log's queue_ms through the rollups' histogram to the stats percentiles."""

from __future__ import annotations

import pytest

from proxy.cli.tables import format_stats
from proxy.request_log.batch import write_batch
from proxy.request_log.stats import fetch_daily_usage, summarize
from proxy.values.utc_day import utc_today
from tests.support.records import make_record, migrated_pool


@pytest.fixture
async def pool(database_url):
    pool = await migrated_pool(database_url)
    yield pool
    await pool.close()


async def test_waits_are_counted_and_their_percentiles_shown(pool, db):
    waits = [None, None, 100.0, 100.0, 100.0, 2000.0]
    async with pool.acquire() as conn:
        assert await write_batch(conn, [make_record(queue_ms=w) for w in waits[:3]]) == 3
        assert await write_batch(conn, [make_record(queue_ms=w) for w in waits[3:]]) == 3  # the upsert adds
    summary = summarize(await fetch_daily_usage(pool, utc_today(), utc_today()))
    totals = summary["totals"]
    assert totals["requests"] == 6 and totals["queued"] == 4  # the two that never waited are not counted
    assert 80 <= totals["p50_queue_ms"] <= 125  # log buckets: within ~12 %
    assert totals["p95_queue_ms"] >= 1500
    assert "P95 QUEUE MS" in format_stats({"key_id": None, "since": "today", "until": "today", **summary})
    assert await db.fetchval("SELECT queue_ms FROM request_log WHERE queue_ms IS NOT NULL LIMIT 1") in (100.0, 2000.0)
