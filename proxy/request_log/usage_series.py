"""Usage over time for charts (GET /api/usage): per hour or per day, from the rollups only.

Never a raw request_log row: a month of tens of millions of requests costs a few thousand rollup rows,
and every key together reads rollups without the key dimension (usage_series_sql.py says which;
tests/bench/bench_usage_series.py measures it). Four queries: the columns per period, the whole range per
model, per node and in all, the whole range per key, and one dimension per period for a stacked split.
Percentiles come from the summed log-spaced histograms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from proxy.db.errors import unavailable_on_outage
from proxy.request_log import latency_histogram
from proxy.request_log.usage_series_sql import PER_MODEL, PER_NODE, SERIES_SQL, WHOLE
from proxy.request_log.usage_totals import UsageTotals

STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


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

    def whole_range(self) -> tuple[datetime, datetime, datetime, datetime]:
        """The range for the figures over all of it: its ends, then the start and end of the UTC days wholly
        inside it (both its start when there is none). By the day, whole days, as bounds() reads them."""
        since, until = self.since, self.until
        if self.step == "day":
            since, until = _midnight(since), _midnight(until)
        first = since if since == _midnight(since) else _midnight(since) + timedelta(days=1)
        end = _midnight(until)
        return (since, until, first, end) if first < end else (since, until, since, since)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


async def fetch_series(pool: asyncpg.Pool, query: SeriesQuery) -> dict[str, Any]:
    sql = SERIES_SQL[query.step, query.key_id is not None]
    key = () if query.key_id is None else (query.key_id,)
    per_period = (*query.bounds(), *key)
    whole_range = (*query.whole_range(), *key)
    with unavailable_on_outage():
        async with pool.acquire() as conn:
            period_rows = await conn.fetch(sql.per_period, *per_period)
            breakdown_rows = await conn.fetch(sql.breakdown, *whole_range)
            key_rows = await conn.fetch(sql.by_key, *whole_range)
            split_rows = await conn.fetch(sql.split[query.split], *per_period)
    return shape(query, period_rows, breakdown_rows, key_rows, split_rows)


def shape(
    query: SeriesQuery, period_rows: list[Any], breakdown_rows: list[Any], key_rows: list[Any], split_rows: list[Any]
) -> dict[str, Any]:
    """Columns per period (zero where nothing happened, null percentiles), as charts take them."""
    starts = query.starts()
    totals, by_model, by_node = _figures(None), [], []
    for row in breakdown_rows:
        if row["grouping"] == WHOLE:
            totals = _figures(row)
        elif row["grouping"] == PER_MODEL:
            by_model.append({"model": row["model"], **_figures(row)})
        elif row["grouping"] == PER_NODE:
            by_node.append({"node": row["node"], **_figures(row)})
    by_key = [{"key_id": _text(row["api_key_id"]), **_figures(row)} for row in key_rows]
    return {
        "since": query.since.isoformat(),
        "until": query.until.isoformat(),
        "step": query.step,
        "key_id": _text(query.key_id),
        "starts": [start.isoformat() for start in starts],
        "series": _series(query, starts, period_rows),
        "split": {"by": query.split, "groups": _split_groups(len(starts), split_rows)},
        "totals": totals,
        "by_key": _busiest(by_key, "key_id"),
        "by_model": _busiest(by_model, "model"),
        "by_node": _busiest(by_node, "node"),
    }


def _series(query: SeriesQuery, starts: list[datetime], rows: list[Any]) -> dict[str, list]:
    # usage_daily's period is a date, usage_hourly's an aware datetime.
    index = {(start.date() if query.step == "day" else start): i for i, start in enumerate(starts)}
    series: dict[str, list] = {name: [0] * len(starts) for name in _COUNTS_SHOWN}
    for name in _PERCENTILES:
        series[name] = [None] * len(starts)
    for row in rows:
        i = index[row["start"]]
        for name, value in _figures(row).items():
            if name in series:
                series[name][i] = value
    return series


def _split_groups(periods: int, rows: list[Any]) -> list[dict[str, Any]]:
    groups = []
    for row in rows:
        requests, total_tokens = [0] * periods, [0] * periods
        for i, count, tokens in zip(row["steps"], row["requests"], row["total_tokens"], strict=True):
            requests[i] += count
            total_tokens[i] += tokens
        groups.append({"name": _text(row["name"]), "requests": requests, "total_tokens": total_tokens})
    return sorted(groups, key=lambda g: (-sum(g["requests"]), g["name"] or ""))


def _busiest(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-r["requests"], r[name] or ""))  # ties by name, the same on every call


_COUNTS_SHOWN = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")
_PERCENTILES = ("p50_response_time_ms", "p95_response_time_ms", "p50_ttfb_ms", "p95_ttfb_ms")


def _figures(row: Any) -> dict[str, Any]:
    usage = UsageTotals()
    ttfb: list[int] = []
    if row is not None and row["requests"] is not None:  # the grand total of no rows is a row of NULLs
        usage.add_row({**row, "histogram": row["latency_histogram"]})
        ttfb = row["ttfb_histogram"]
    figures = usage.to_json()
    figures["p50_ttfb_ms"] = _ms(latency_histogram.percentile(ttfb, 0.50))
    figures["p95_ttfb_ms"] = _ms(latency_histogram.percentile(ttfb, 0.95))
    return figures


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
