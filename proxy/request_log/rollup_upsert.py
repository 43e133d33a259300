"""A batch's rollup groups (rollup.py) added into their tables: one INSERT … ON CONFLICT DO UPDATE per table,
however many groups.

One statement per table, not one per group: PostgreSQL starts an executor for each statement, and group by
group (executemany) a batch of many keys took about twice the database time. The groups come as one array
per column, unnested in their sorted order, so concurrent writers lock rows in the same order.

A row that is there already gets the histograms added: by usage_histogram_add (sql/003), whose unnest and
array_agg cost about 50 µs a row, or, from MANY groups on, bucket by bucket ([u.h[1] + EXCLUDED.h[1], …]),
about 10 µs a row, but its 186 expressions take about 4 ms more to start; MANY is about where the two meet.
Measured with tests/bench/bench_log_writer.py's records on the 2-core machine of docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from proxy.request_log.latency_histogram import BUCKETS
from proxy.request_log.rollup import Groups
from proxy.request_log.rollup_tables import UNIQUE_KEY, WRITE_ORDER, RollupTable

_TYPES = {"day": "date", "hour": "timestamptz", "api_key_id": "uuid", "model": "text", "node": "text"}
_COUNTERS = {
    "requests": "bigint",
    "errors": "bigint",
    "prompt_tokens": "bigint",
    "completion_tokens": "bigint",
    "response_time_sum": "double precision",
}
_HISTOGRAMS = ("latency_histogram", "ttfb_histogram", "queue_histogram")

_UPSERT = """
INSERT INTO {table} AS u ({columns})
SELECT {selected}
FROM unnest({arrays}) AS r({columns})
ON CONFLICT ({unique_key})
DO UPDATE SET requests = u.requests + EXCLUDED.requests,
              errors = u.errors + EXCLUDED.errors,
              prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens,
              completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens,
              response_time_sum = u.response_time_sum + EXCLUDED.response_time_sum,
              latency_histogram = {latency_histogram},
              ttfb_histogram = {ttfb_histogram},
              queue_histogram = {queue_histogram}
"""

MANY = 40


def _added_whole(histogram: str) -> str:
    return f"usage_histogram_add(u.{histogram}, EXCLUDED.{histogram})"


def _added_by_bucket(histogram: str) -> str:
    # A bucket one side lacks counts as 0: rows from before sql/008 and sql/009 hold an empty array.
    buckets = range(1, BUCKETS + 1)
    return "ARRAY[" + ", ".join(f"COALESCE(u.{histogram}[{i}], 0) + EXCLUDED.{histogram}[{i}]" for i in buckets) + "]"


def _upsert(table: RollupTable, added: Callable[[str], str]) -> str:
    keys = (table.period, *table.dimensions)
    columns = (*keys, *_COUNTERS, *_HISTOGRAMS)
    types = (*(_TYPES[key] for key in keys), *_COUNTERS.values(), *("text" for _ in _HISTOGRAMS))
    return _UPSERT.format(
        table=table.name,
        columns=", ".join(columns),
        # The histograms come as array literals: see arguments().
        selected=", ".join((*keys, *_COUNTERS, *(f"{histogram}::bigint[]" for histogram in _HISTOGRAMS))),
        arrays=", ".join(f"${n}::{sql_type}[]" for n, sql_type in enumerate(types, start=1)),
        unique_key=", ".join((table.period, *(UNIQUE_KEY[dimension] for dimension in table.dimensions))),
        **{histogram: added(histogram) for histogram in _HISTOGRAMS},
    )


# For fewer than MANY groups, and from MANY on.
UPSERTS = {table: (_upsert(table, _added_whole), _upsert(table, _added_by_bucket)) for table in WRITE_ORDER}


def arguments(groups: Groups) -> list[list]:
    """The groups as one list per column: the period, the dimensions, the counters, the histograms.

    Each histogram goes as an array literal ('{0,3,1,…}') that the server casts: asyncpg's binary array
    encoder checks every element against collections.abc (an isinstance that costs more than the element
    itself), which made the 186 buckets of each row most of the writer's CPU for a batch of many keys.
    """
    rows = [
        (*group, totals.requests, totals.errors, totals.prompt_tokens, totals.completion_tokens,
         totals.response_time_sum, _literal(totals.latency_histogram), _literal(totals.ttfb_histogram),
         _literal(totals.queue_histogram))
        for group, totals in groups
    ]  # fmt: skip
    return [list(column) for column in zip(*rows, strict=True)]


def _literal(histogram: list[int]) -> str:
    return "{" + ",".join(map(str, histogram)) + "}"


async def upsert_rollups(conn: asyncpg.Connection, groups: dict[RollupTable, Groups]) -> None:
    """Add every table's groups, in WRITE_ORDER; within the caller's transaction."""
    for table in WRITE_ORDER:
        if groups[table]:
            upsert = UPSERTS[table][len(groups[table]) >= MANY]
            await conn.execute(upsert, *arguments(groups[table]))
