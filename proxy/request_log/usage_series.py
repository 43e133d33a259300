"""Usage over time for charts (GET /api/usage): per hour or per day, from the rollups only.

An hour-by-hour chart reads usage_hourly, a longer one usage_daily; neither ever reads raw
request_log rows, so a month of tens of millions of requests costs a few thousand rollup rows
(tests/bench/bench_usage_series.py measures it). Three queries, each over the same rows: the totals
per period, the totals per key, model and node over the whole range, and one dimension per period
for a stacked split. Percentiles come from the summed log-spaced histograms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from proxy.db.errors import unavailable_on_outage
from proxy.request_log import latency_histogram
from proxy.request_log.usage_totals import UsageTotals

STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_TABLES = {"hour": ("usage_hourly", "hour"), "day": ("usage_daily", "day")}
SPLITS = {"key": "api_key_id", "model": "model", "node": "node"}

# '{}' is a rollup row written before time to first byte was counted: no data, not zeros. Skipped as
# NULL, because usage_histogram_add of two empty arrays is NULL, which would void the whole sum.
_SUMS = """
sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens,
sum(response_time_sum) AS response_time_sum, usage_histogram_sum(latency_histogram) AS histogram,
usage_histogram_sum(NULLIF(ttfb_histogram, '{{}}')) AS ttfb_histogram
"""
_WHERE = "{period} >= $1 AND {period} < $2 AND ($3::uuid IS NULL OR api_key_id = $3)"
_PER_PERIOD = "SELECT {period} AS start, " + _SUMS + " FROM {table} WHERE " + _WHERE + " GROUP BY 1"
# GROUPING() tells the sets apart: 3 = per key, 5 = per model, 6 = per node, 7 = everything.
_PER_GROUP = (
    "SELECT GROUPING(api_key_id, model, node) AS grouping, api_key_id, model, node, "
    + _SUMS
    + " FROM {table} WHERE "
    + _WHERE
    + " GROUP BY GROUPING SETS ((api_key_id), (model), (node), ())"
)
_SPLIT = (
    "SELECT {period} AS start, {column} AS name, sum(requests)::bigint AS requests, "
    "sum(prompt_tokens + completion_tokens)::bigint AS total_tokens "
    "FROM {table} WHERE " + _WHERE + " GROUP BY 1, 2"
)


def _queries(step: str, split: str) -> tuple[str, str, str]:
    table, period = _TABLES[step]
    return (
        _PER_PERIOD.format(table=table, period=period),
        _PER_GROUP.format(table=table, period=period),
        _SPLIT.format(table=table, period=period, column=SPLITS[split]),
    )


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    since: datetime  # aligned to the step, inclusive
    until: datetime  # aligned to the step, exclusive
    step: str  # "hour" or "day"
    split: str = "model"  # "key", "model" or "node"
    key_id: UUID | None = None

    def starts(self) -> list[datetime]:
        every, moment, starts = STEPS[self.step], self.since, []
        while moment < self.until:
            starts.append(moment)
            moment += every
        return starts

    def bounds(self) -> tuple[date | datetime, date | datetime]:
        """The range in the period column's type (usage_daily's day is a date)."""
        if self.step == "day":
            return self.since.date(), self.until.date()
        return self.since, self.until


async def fetch_series(pool: asyncpg.Pool, query: SeriesQuery) -> dict[str, Any]:
    per_period, per_group, split = _queries(query.step, query.split)
    args = (*query.bounds(), query.key_id)
    with unavailable_on_outage():
        async with pool.acquire() as conn:
            periods = await conn.fetch(per_period, *args)
            groups = await conn.fetch(per_group, *args)
            splits = await conn.fetch(split, *args)
    return shape(query, periods, groups, splits)


def shape(query: SeriesQuery, periods: list[Any], groups: list[Any], splits: list[Any]) -> dict[str, Any]:
    """Columns per period (zero where nothing happened, null percentiles), as charts take them."""
    starts = query.starts()
    # usage_daily's period is a date, usage_hourly's an aware datetime.
    index = {(start.date() if query.step == "day" else start): i for i, start in enumerate(starts)}
    series: dict[str, list] = {name: [0] * len(starts) for name in _COUNTS}
    for name in _PERCENTILES:
        series[name] = [None] * len(starts)
    for row in periods:
        i = index[row["start"]]
        figures = _figures(row)
        for name in series:
            series[name][i] = figures[name]
    by_split: dict[Any, dict[str, list[int]]] = {}
    for row in splits:
        group = by_split.setdefault(row["name"], {"requests": [0] * len(starts), "total_tokens": [0] * len(starts)})
        i = index[row["start"]]
        group["requests"][i] = row["requests"]
        group["total_tokens"][i] = row["total_tokens"]
    breakdown: dict[str, list[dict[str, Any]]] = {"by_key": [], "by_model": [], "by_node": []}
    totals = _figures(None)
    for row in groups:
        figures = _figures(row)
        if row["grouping"] == 7:
            totals = figures
        elif row["grouping"] == 3:
            breakdown["by_key"].append({"key_id": _text(row["api_key_id"]), **figures})
        elif row["grouping"] == 5:
            breakdown["by_model"].append({"model": row["model"], **figures})
        else:
            breakdown["by_node"].append({"node": row["node"], **figures})
    for rows in breakdown.values():
        rows.sort(key=lambda r: -r["requests"])
    split_groups = [{"name": _text(name), **columns} for name, columns in by_split.items()]
    split_groups.sort(key=lambda g: -sum(g["requests"]))
    return {
        "since": query.since.isoformat(),
        "until": query.until.isoformat(),
        "step": query.step,
        "key_id": _text(query.key_id),
        "starts": [start.isoformat() for start in starts],
        "series": series,
        "split": {"by": query.split, "groups": split_groups},
        "totals": totals,
        **breakdown,
    }


_COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")
_PERCENTILES = ("p50_response_time_ms", "p95_response_time_ms", "p50_ttfb_ms", "p95_ttfb_ms")


def _figures(row: Any) -> dict[str, Any]:
    usage = UsageTotals()
    ttfb: list[int] = []
    if row is not None and row["requests"] is not None:  # the grand total of no rows is a row of NULLs
        usage.add_row(row)
        ttfb = row["ttfb_histogram"] or []
    figures = usage.to_json()
    figures["p50_ttfb_ms"] = _ms(latency_histogram.percentile(ttfb, 0.50))
    figures["p95_ttfb_ms"] = _ms(latency_histogram.percentile(ttfb, 0.95))
    return figures


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
