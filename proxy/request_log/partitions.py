"""request_log's daily partitions: made a week ahead, and dropped whole past the retention period.

Daily rather than monthly: LOG_RETENTION_DAYS then drops exactly the days it names, each
partition stays small enough to scan or vacuum quickly at millions of requests a day, and the
few hundred partitions of a 90-day retention are well within what PostgreSQL prunes cheaply.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta

import asyncpg

from proxy.db.errors import DatabaseUnavailable, unavailable_on_outage
from proxy.request_log.rollup_tables import HOURLY
from proxy.values.utc_day import utc_today

log = logging.getLogger(__name__)

DAYS_AHEAD = 7  # a gateway may be down for a week and still find its partitions waiting
CHECK_INTERVAL = 3600.0
RETRY_INTERVAL = 60.0

# Both functions serialize on an advisory lock and set a lock timeout (003_usage.sql).
ENSURE_PARTITIONS = """
SELECT count(*) FILTER (WHERE request_log_ensure_partition(d::date))
FROM generate_series($1::date::timestamp, ($1::date + $2::integer)::timestamp, interval '1 day') AS d
"""
DROP_PARTITIONS = "SELECT request_log_drop_partitions_before($1)"
# The hourly rollups serve charts of the last hours and days (routes/usage.py reads the daily rows
# for anything older), so they are kept a little past the longest hourly range, whatever the retention.
USAGE_HOURLY_DAYS = 35
_PRUNE = "DELETE FROM {table} WHERE hour < $1::date::timestamp AT TIME ZONE 'UTC'"
PRUNE_HOURLY = tuple(_PRUNE.format(table=table.name) for table in HOURLY)


async def ensure_partitions(pool: asyncpg.Pool, today: date, days_ahead: int = DAYS_AHEAD) -> int:
    """Partitions for today and the next `days_ahead` days; returns how many were created."""
    with unavailable_on_outage():
        return await pool.fetchval(ENSURE_PARTITIONS, today, days_ahead)


async def drop_expired(pool: asyncpg.Pool, today: date, retention_days: int) -> int:
    """Drop partitions (and DEFAULT-partition rows) of days older than `retention_days`; 0 keeps all."""
    if retention_days <= 0:
        return 0
    with unavailable_on_outage():
        return await pool.fetchval(DROP_PARTITIONS, today - timedelta(days=retention_days))


async def prune_hourly(pool: asyncpg.Pool, today: date) -> None:
    """Every hourly rollup (usage_hourly and its coarser copies) loses the same hours, at once."""
    with unavailable_on_outage():
        async with pool.acquire() as conn, conn.transaction():
            for prune in PRUNE_HOURLY:
                await conn.execute(prune, today - timedelta(days=USAGE_HOURLY_DAYS))


async def maintain(pool: asyncpg.Pool, retention_days: int, today: date | None = None) -> None:
    today = today or utc_today()
    created = await ensure_partitions(pool, today)
    dropped = await drop_expired(pool, today, retention_days)
    await prune_hourly(pool, today)
    if created or dropped:
        log.info("request_log partitions: %d created ahead, %d dropped past retention", created, dropped)


async def maintenance_loop(pool: asyncpg.Pool, retention_days: int) -> None:
    """After the start's own run: `maintain` every hour, sooner again after a failure; never raises."""
    delay = CHECK_INTERVAL
    while True:
        await asyncio.sleep(delay)
        try:
            await maintain(pool, retention_days)
            delay = CHECK_INTERVAL
        except DatabaseUnavailable as exc:
            log.warning("request_log partition maintenance failed (%s); retrying", exc)
            delay = RETRY_INTERVAL
