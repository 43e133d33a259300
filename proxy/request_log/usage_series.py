"""Usage over time for charts (GET /api/usage): per hour or per day, from the rollups only.

An hour-by-hour chart reads usage_hourly, a longer one usage_daily; neither ever reads raw
request_log rows, so a month of tens of millions of requests costs a few thousand rollup rows
(tests/bench/bench_usage_series.py measures it). Three queries, each over the same rows: the totals
per period, key, model and node and over the whole range (grouping sets, one pass), the histograms
likewise, and one dimension per period for a stacked split. Percentiles come from the summed
log-spaced histograms.
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

_WHERE = "{period} >= $1 AND {period} < $2 AND ($3::uuid IS NULL OR api_key_id = $3)"
# One pass over the rows for every grouping the page shows; GROUPING() tells the sets apart by the
# columns a set leaves out (bits: period, key, model, node): 7 = per period, 11 = per key, 13 = per model,
# 14 = per node, 15 = the whole range.
_SETS = "({period}{extra}), (api_key_id{extra}), (model{extra}), (node{extra}), ({bare})"
_COUNTS = (
    "SELECT GROUPING({period}, api_key_id, model, node) AS grouping, {period} AS start, api_key_id, model, node, "
    "sum(requests)::bigint AS requests, sum(errors)::bigint AS errors, "
    "sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens, "
    "sum(response_time_sum) AS response_time_sum "
    "FROM {table} WHERE "
    + _WHERE
    + " GROUP BY GROUPING SETS ("
    + _SETS.format(period="{period}", extra="", bare="")
    + ")"
)
# The histograms summed bucket by bucket, only over the buckets that hold something (a row has a dozen
# or so of its 62): an aggregate that adds whole arrays row by row (usage_histogram_sum) cost ~10x more
# (tests/bench/bench_usage_series.py). kind 0: total time, 1: time to first byte.
_HISTOGRAMS = (
    "SELECT GROUPING({period}, api_key_id, model, node) AS grouping, {period} AS start, api_key_id, model, node, "
    "h.kind, h.i, sum(h.x)::bigint AS n "
    "FROM {table} u CROSS JOIN LATERAL ("
    "  SELECT 0 AS kind, l.x, l.i FROM unnest(u.latency_histogram) WITH ORDINALITY AS l(x, i) WHERE l.x > 0"
    "  UNION ALL"
    "  SELECT 1, t.x, t.i FROM unnest(u.ttfb_histogram) WITH ORDINALITY AS t(x, i) WHERE t.x > 0"
    ") AS h WHERE "
    + _WHERE
    + " GROUP BY GROUPING SETS ("
    + _SETS.format(period="{period}", extra=", h.kind, h.i", bare="h.kind, h.i")
    + ")"
)
_SPLIT = (
    "SELECT {period} AS start, {column} AS name, sum(requests)::bigint AS requests, "
    "sum(prompt_tokens + completion_tokens)::bigint AS total_tokens "
    "FROM {table} WHERE " + _WHERE + " GROUP BY 1, 2"
)
_PER_PERIOD, _PER_KEY, _PER_MODEL, _PER_NODE, _WHOLE = 7, 11, 13, 14, 15


def _queries(step: str, split: str) -> tuple[str, str, str]:
    table, period = _TABLES[step]
    return (
        _COUNTS.format(table=table, period=period),
        _HISTOGRAMS.format(table=table, period=period),
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
    counts, histograms, split = _queries(query.step, query.split)
    args = (*query.bounds(), query.key_id)
    with unavailable_on_outage():
        async with pool.acquire() as conn:
            count_rows = await conn.fetch(counts, *args)
            histogram_rows = await conn.fetch(histograms, *args)
            split_rows = await conn.fetch(split, *args)
    return shape(query, count_rows, histogram_rows, split_rows)


def _group(row: Any) -> tuple[int, Any]:
    grouping = row["grouping"]
    column = {_PER_PERIOD: "start", _PER_KEY: "api_key_id", _PER_MODEL: "model", _PER_NODE: "node"}.get(grouping)
    return grouping, row[column] if column else None


def shape(
    query: SeriesQuery, count_rows: list[Any], histogram_rows: list[Any], split_rows: list[Any]
) -> dict[str, Any]:
    """Columns per period (zero where nothing happened, null percentiles), as charts take them."""
    histograms: dict[tuple[int, Any], tuple[list[int], list[int]]] = {}
    for row in histogram_rows:
        pair = histograms.setdefault(_group(row), (latency_histogram.empty(), latency_histogram.empty()))
        counts = pair[row["kind"]]
        i = row["i"] - 1  # ORDINALITY counts from 1
        if i >= len(counts):
            counts.extend([0] * (i + 1 - len(counts)))
        counts[i] += row["n"]
    starts = query.starts()
    # usage_daily's period is a date, usage_hourly's an aware datetime.
    index = {(start.date() if query.step == "day" else start): i for i, start in enumerate(starts)}
    series: dict[str, list] = {name: [0] * len(starts) for name in _COUNTS_SHOWN}
    for name in _PERCENTILES:
        series[name] = [None] * len(starts)
    breakdown: dict[str, list[dict[str, Any]]] = {"by_key": [], "by_model": [], "by_node": []}
    totals = _figures(None, None)
    for row in count_rows:
        grouping, value = _group(row)
        figures = _figures(row, histograms.get((grouping, value)))
        if grouping == _PER_PERIOD:
            i = index[value]
            for name in series:
                series[name][i] = figures[name]
        elif grouping == _WHOLE:
            totals = figures
        elif grouping == _PER_KEY:
            breakdown["by_key"].append({"key_id": _text(value), **figures})
        elif grouping == _PER_MODEL:
            breakdown["by_model"].append({"model": value, **figures})
        else:
            breakdown["by_node"].append({"node": value, **figures})
    for rows in breakdown.values():
        rows.sort(key=lambda r: -r["requests"])
    by_split: dict[Any, dict[str, list[int]]] = {}
    for row in split_rows:
        group = by_split.setdefault(row["name"], {"requests": [0] * len(starts), "total_tokens": [0] * len(starts)})
        i = index[row["start"]]
        group["requests"][i] = row["requests"]
        group["total_tokens"][i] = row["total_tokens"]
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


_COUNTS_SHOWN = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")
_PERCENTILES = ("p50_response_time_ms", "p95_response_time_ms", "p50_ttfb_ms", "p95_ttfb_ms")


def _figures(row: Any, histograms: tuple[list[int], list[int]] | None) -> dict[str, Any]:
    usage = UsageTotals()
    latency, ttfb = histograms or ([], [])
    if row is not None and row["requests"] is not None:  # the grand total of no rows is a row of NULLs
        usage.add_row({**row, "histogram": latency})
    figures = usage.to_json()
    figures["p50_ttfb_ms"] = _ms(latency_histogram.percentile(ttfb, 0.50))
    figures["p95_ttfb_ms"] = _ms(latency_histogram.percentile(ttfb, 0.95))
    return figures


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
