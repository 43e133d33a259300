"""A batch of request records folded into the groups of each rollup table (rollup_tables.py): per UTC hour
or day, and by key, model and node, by key alone, or by model and node alone."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from proxy.request_log.record import RequestRecord
from proxy.request_log.rollup_tables import (
    DAILY_BY_KEY,
    DAILY_BY_MODEL_NODE,
    HOURLY_BY_KEY,
    HOURLY_BY_MODEL_NODE,
    USAGE_DAILY,
    USAGE_HOURLY,
    RollupTable,
)
from proxy.request_log.usage_totals import UsageTotals, buckets_of
from proxy.values.utc_day import utc_hour_of

Group = tuple  # (the period's start, *the table's dimensions)
Groups = list[tuple[Group, UsageTotals]]
ONE_HOUR = timedelta(hours=1)
END_OF_TIME = datetime.max.replace(tzinfo=UTC)  # a record dated in 9999's last hour has no next hour
LAST_HOUR = END_OF_TIME.replace(minute=0, second=0, microsecond=0)


def rollups(records: Iterable[RequestRecord]) -> dict[RollupTable, Groups]:
    """Each table's groups, sorted by its unique key, so concurrent writers lock rows in the same order and
    never deadlock on each other's upserts.

    Each record is added once, to its (hour, key, model, node) group; every other table's groups are
    sums of those (a batch of a thousand records from a few keys and models has a handful of groups,
    so the per-record work is one addition, not six). A batch spans a second or so, so that is nearly
    always one hour, whose totals are then the day's as they are.
    """
    every: dict[Group, UsageTotals] = {}
    hour = hour_end = None
    for record in records:
        created = record.created_at
        if hour is None or not hour <= created < hour_end:  # consecutive records share their hour
            hour = utc_hour_of(created)
            hour_end = hour + ONE_HOUR if hour < LAST_HOUR else END_OF_TIME
        # An empty name is no name: the unique keys count NULL as '' (rollup_tables.py), and one upsert
        # statement may not reach a row twice (rollup_upsert.py).
        group = (hour, record.api_key_id, record.model or None, record.node or None)
        totals = every.get(group)
        if totals is None:
            totals = every[group] = UsageTotals()
        totals.add(record, buckets_of(record))
    by_key = _summed(every, lambda start, key_id, model, node: (start, key_id))
    by_model_node = _summed(every, lambda start, key_id, model, node: (start, model, node))
    folded = {
        USAGE_HOURLY: every,
        HOURLY_BY_KEY: by_key,
        HOURLY_BY_MODEL_NODE: by_model_node,
        USAGE_DAILY: _by_day(every),
        DAILY_BY_KEY: _by_day(by_key),
        DAILY_BY_MODEL_NODE: _by_day(by_model_node),
    }
    return {table: sorted(groups.items(), key=_unique_order) for table, groups in folded.items()}


def _summed(groups: dict[Group, UsageTotals], coarser: Callable[..., Group]) -> dict[Group, UsageTotals]:
    """The groups' totals summed into the coarser groups `coarser(*group)` names; none of them changes."""
    summed: dict[Group, UsageTotals] = {}
    for group, totals in groups.items():
        into = coarser(*group)
        known = summed.get(into)
        summed[into] = totals if known is None else known.plus(totals)
    return summed


def _by_day(hourly: dict[Group, UsageTotals]) -> dict[Group, UsageTotals]:
    # The hour is UTC, so its date is the UTC day.
    return _summed(hourly, lambda hour, *dimensions: (hour.date(), *dimensions))


def _unique_order(item: tuple[Group, UsageTotals]) -> tuple:
    start, *dimensions = item[0]
    return (start, *("" if value is None else str(value) for value in dimensions))


def last_used(records: Iterable[RequestRecord]) -> tuple[list[UUID], list[datetime]]:
    """Each key's newest request time, as parallel arrays sorted by key id (same lock order everywhere)."""
    newest: dict[UUID, datetime] = {}
    for record in records:
        key_id = record.api_key_id
        if key_id is not None and (key_id not in newest or record.created_at > newest[key_id]):
            newest[key_id] = record.created_at
    ids = sorted(newest)
    return ids, [newest[key_id] for key_id in ids]
