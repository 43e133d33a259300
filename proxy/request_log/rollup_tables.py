"""The six rollup tables (sql/003, 009, 010): each a grain, a UTC day or hour, and the dimensions it keeps.

Every key apart (usage_daily, usage_hourly) for statistics and one key's charts; every key together, by
model and node, for all-keys charts; and by key alone for the per-key breakdown of those. The log writer
folds each batch into all six in one transaction (batch.py); charts read the fewest rows that answer
(usage_series_sql.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RollupTable:
    name: str
    period: str  # the period column: "day" (a date) or "hour" (the start of a UTC hour, timestamptz)
    dimensions: tuple[str, ...]  # of api_key_id, model and node, in their unique index's order


_EVERY_DIMENSION = ("api_key_id", "model", "node")
USAGE_DAILY = RollupTable("usage_daily", "day", _EVERY_DIMENSION)
USAGE_HOURLY = RollupTable("usage_hourly", "hour", _EVERY_DIMENSION)
DAILY_BY_KEY = RollupTable("usage_daily_by_key", "day", ("api_key_id",))
HOURLY_BY_KEY = RollupTable("usage_hourly_by_key", "hour", ("api_key_id",))
DAILY_BY_MODEL_NODE = RollupTable("usage_daily_by_model_node", "day", ("model", "node"))
HOURLY_BY_MODEL_NODE = RollupTable("usage_hourly_by_model_node", "hour", ("model", "node"))

# The order a batch writes them in. Rows by model and node are shared by every key, so every gateway's
# writer updates the same few: last, they stay locked (until COMMIT) for the shortest time.
WRITE_ORDER = (USAGE_DAILY, USAGE_HOURLY, DAILY_BY_KEY, HOURLY_BY_KEY, DAILY_BY_MODEL_NODE, HOURLY_BY_MODEL_NODE)
HOURLY = tuple(table for table in WRITE_ORDER if table.period == "hour")

# Each dimension as its unique indexes name it: NULLs are distinct in a plain unique index (NULLS NOT
# DISTINCT needs PostgreSQL 15), so NULL stands as a sentinel; ON CONFLICT names these same expressions.
UNIQUE_KEY = {
    "api_key_id": "COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid)",
    "model": "COALESCE(model, '')",
    "node": "COALESCE(node, '')",
}
