"""Usage statistics read from the daily rollups only, never from raw request_log rows: every key's from
the rows without the key dimension (sql/010), one key's from usage_daily."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from proxy.db.errors import unavailable_on_outage
from proxy.request_log.usage_totals import UsageTotals
from proxy.values.utc_day import utc_today

# Either table holds one row per day, model and node (and key): summarize() adds them up. Summing them here
# instead (usage_histogram_sum over the rows of 200 keys) cost seconds for a month of every key.
_SELECT_DAILY_USAGE = """
SELECT day, model, node, requests, errors, prompt_tokens, completion_tokens, response_time_sum,
       latency_histogram AS histogram, queue_histogram
FROM {table}
WHERE day >= $1 AND day <= $2{key}
ORDER BY day, model, node
"""
SELECT_DAILY_USAGE = _SELECT_DAILY_USAGE.format(table="usage_daily_by_model_node", key="")
SELECT_KEY_DAILY_USAGE = _SELECT_DAILY_USAGE.format(table="usage_daily", key=" AND api_key_id = $3")
# For the daily token quota: what each key used since the last UTC midnight.
SELECT_TOKENS_ON_DAY = """
SELECT api_key_id, sum(prompt_tokens + completion_tokens)::bigint AS tokens
FROM usage_daily
WHERE day = $1 AND api_key_id IS NOT NULL
GROUP BY api_key_id
"""


async def tokens_used_today(pool: asyncpg.Pool, today: date | None = None) -> dict[UUID, int]:
    """Prompt + completion tokens per key for the current UTC day, from what has been written."""
    with unavailable_on_outage():
        rows = await pool.fetch(SELECT_TOKENS_ON_DAY, today or utc_today())
    return {row["api_key_id"]: row["tokens"] for row in rows}


async def fetch_daily_usage(
    pool: asyncpg.Pool, since: date, until: date, key_id: UUID | None = None
) -> list[asyncpg.Record]:
    """Rows per (day, model, node) for every key together, or for `key_id`; `since` and `until` are inclusive."""
    with unavailable_on_outage():
        if key_id is None:
            return await pool.fetch(SELECT_DAILY_USAGE, since, until)
        return await pool.fetch(SELECT_KEY_DAILY_USAGE, since, until, key_id)


def summarize(rows: Iterable[Any]) -> dict[str, Any]:
    """{"totals", "by_model", "by_node", "by_day"} from (day, model, node) rows; models and nodes by
    requests, days in order. A node of None: requests no single node served."""
    totals = UsageTotals()
    by_model: dict[str | None, UsageTotals] = {}
    by_node: dict[str | None, UsageTotals] = {}
    by_day: dict[date, UsageTotals] = {}
    for row in rows:
        totals.add_row(row)
        by_model.setdefault(row["model"], UsageTotals()).add_row(row)
        by_node.setdefault(row["node"], UsageTotals()).add_row(row)
        by_day.setdefault(row["day"], UsageTotals()).add_row(row)
    return {
        "totals": totals.to_json(),
        "by_model": [{"model": model, **usage.to_json()} for model, usage in _busiest(by_model)],
        "by_node": [{"node": node, **usage.to_json()} for node, usage in _busiest(by_node)],
        "by_day": [{"day": day.isoformat(), **by_day[day].to_json()} for day in sorted(by_day)],
    }


def _busiest(groups: dict[str | None, UsageTotals]) -> list[tuple[str | None, UsageTotals]]:
    return sorted(groups.items(), key=lambda item: (-item[1].requests, item[0] or ""))
