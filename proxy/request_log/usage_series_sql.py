"""The SQL behind GET /api/usage: which rollup rows answer each part of a chart, each summed in one pass.

Every key together reads the rollups without the key dimension (sql/010): by model and node for the
per-period columns, the totals and the model and node breakdowns; by key alone for the per-key breakdown
and the key split. One key reads its own rows of usage_daily or usage_hourly. The per-period columns read
the chart's step; the figures over the whole range read whole UTC days from the daily rows and only the
hours at either end from the hourly ones (a week by the hour: 6 days and 24 hours of rows, not 168 hours).
tests/bench/bench_usage_series.py measures these choices.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.request_log import latency_histogram
from proxy.request_log.rollup_tables import (
    DAILY_BY_KEY,
    DAILY_BY_MODEL_NODE,
    HOURLY_BY_KEY,
    HOURLY_BY_MODEL_NODE,
    USAGE_DAILY,
    USAGE_HOURLY,
    RollupTable,
)


def _summed(histogram: str) -> str:
    """The histogram column summed bucket by bucket, ARRAY[sum(h[1]), sum(h[2]), …]: each row's array is read
    in place, where unnesting it into a row per bucket and grouping those cost 3 times as much, and an
    aggregate that adds whole arrays (usage_histogram_sum) 10 times. A bucket no row has (an empty array from
    before sql/009) sums to 0."""
    buckets = range(1, latency_histogram.BUCKETS + 1)
    return "ARRAY[" + ", ".join(f"COALESCE(sum({histogram}[{i}]), 0)::bigint" for i in buckets) + "]"


_SUMS = (
    "sum(requests)::bigint AS requests, sum(errors)::bigint AS errors, "
    "sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens, "
    "sum(response_time_sum) AS response_time_sum, "
    + _summed("latency_histogram")
    + " AS latency_histogram, "
    + _summed("ttfb_histogram")
    + " AS ttfb_histogram"
)
_COUNTED = "requests, errors, prompt_tokens, completion_tokens, response_time_sum, latency_histogram, ttfb_histogram"

# $1, $2: the range in the period column's type; {key}: " AND api_key_id = $3" for one key.
_PER_PERIOD = (
    "SELECT {period} AS start, " + _SUMS + " FROM {table} WHERE {period} >= $1 AND {period} < $2{key} GROUP BY 1"
)
# One row per group, with its rows' periods (as the number of steps since $1) and counts as arrays that the
# caller adds up per period: 200 keys over 168 hours are 200 rows, not 33,600 (asyncpg decodes an array far
# faster than as many rows), and no second grouping by period. The arrays are built from the same rows in
# the same order.
_SPLIT = (
    "SELECT {column} AS name, array_agg({steps}) AS steps, array_agg(requests) AS requests, "
    "array_agg(prompt_tokens + completion_tokens) AS total_tokens "
    "FROM {table} WHERE {period} >= $1 AND {period} < $2{key} GROUP BY 1"
)
_STEPS_SINCE = {"day": "day - $1", "hour": "(extract(epoch FROM hour - $1) / 3600)::integer"}
# The range's rows: $1, $2 its ends, [$3, $4) the UTC days wholly inside it (both $1 when there is none),
# all timestamptz; {key}: " AND api_key_id = $5" for one key.
_RANGE_ROWS = (
    "SELECT {columns} FROM {daily} "
    "WHERE day >= ($3 AT TIME ZONE 'UTC')::date AND day < ($4 AT TIME ZONE 'UTC')::date{key} "
    "UNION ALL "
    "SELECT {columns} FROM {hourly} WHERE (hour >= $1 AND hour < $3 OR hour >= $4 AND hour < $2){key}"
)


def _over_range(select: str, columns: str, group_by: str) -> str:
    """`select` and the sums over the range's rows of `columns`, grouped by `group_by`."""
    rows = _RANGE_ROWS.format(columns=columns + ", " + _COUNTED, daily="{daily}", hourly="{hourly}", key="{key}")
    return f"SELECT {select}, {_SUMS} FROM ({rows}) AS range_rows GROUP BY {group_by}"


# GROUPING(model, node) tells the sets apart by the columns a set leaves out: 1 = per model, 2 = per node,
# 3 = the whole range.
_BREAKDOWN = _over_range(
    "GROUPING(model, node) AS grouping, model, node", "model, node", "GROUPING SETS ((model), (node), ())"
)
PER_MODEL, PER_NODE, WHOLE = 1, 2, 3
_BY_KEY = _over_range("api_key_id", "api_key_id", "api_key_id")


@dataclass(frozen=True, slots=True)
class SeriesSql:
    per_period: str  # the columns per period, with their histograms
    breakdown: str  # over the whole range: per model, per node, and in all
    by_key: str  # over the whole range, per key
    split: dict[str, str]  # per period and key, model or node, for the stacked chart


@dataclass(frozen=True, slots=True)
class _Sources:
    """The tables a view reads, by grain ("day", "hour", named as their period columns)."""

    with_model_node: dict[str, RollupTable]  # per period, totals, model and node breakdowns and splits
    with_key: dict[str, RollupTable]  # the per-key breakdown and the key split


_ALL_KEYS = _Sources(
    with_model_node={"day": DAILY_BY_MODEL_NODE, "hour": HOURLY_BY_MODEL_NODE},
    with_key={"day": DAILY_BY_KEY, "hour": HOURLY_BY_KEY},
)
_EVERY_DIMENSION = {"day": USAGE_DAILY, "hour": USAGE_HOURLY}
_ONE_KEY = _Sources(with_model_node=_EVERY_DIMENSION, with_key=_EVERY_DIMENSION)
SPLITS = {"key": "api_key_id", "model": "model", "node": "node"}


def _series_sql(step: str, sources: _Sources, one_key: bool) -> SeriesSql:
    model_node, key = sources.with_model_node, sources.with_key
    period_filter = " AND api_key_id = $3" if one_key else ""
    range_filter = " AND api_key_id = $5" if one_key else ""
    split_table = {"key": key[step], "model": model_node[step], "node": model_node[step]}
    return SeriesSql(
        per_period=_PER_PERIOD.format(table=model_node[step].name, period=step, key=period_filter),
        breakdown=_BREAKDOWN.format(daily=model_node["day"].name, hourly=model_node["hour"].name, key=range_filter),
        by_key=_BY_KEY.format(daily=key["day"].name, hourly=key["hour"].name, key=range_filter),
        split={
            split: _SPLIT.format(
                table=split_table[split].name, period=step, steps=_STEPS_SINCE[step], column=column, key=period_filter
            )
            for split, column in SPLITS.items()
        },
    )


# By step ("day" or "hour") and whether the view is of one key.
SERIES_SQL = {
    (step, sources is _ONE_KEY): _series_sql(step, sources, sources is _ONE_KEY)
    for step in ("day", "hour")
    for sources in (_ALL_KEYS, _ONE_KEY)
}
