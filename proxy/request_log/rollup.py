"""A batch of request records folded into the groups of each rollup table (rollup_tables.py): per UTC hour
or day, and by key, model and node, by key alone, or by model and node alone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
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


def rollups(records: Iterable[RequestRecord]) -> dict[RollupTable, Groups]:
    """Each table's groups, sorted by its unique key, so concurrent writers lock rows in the same order and
    never deadlock on each other's upserts.

    A record is added to its hour's three groups; a day's groups are the sums of its hours'. A batch spans
    a second or so, so that is nearly always one hour, whose totals are then the day's as they are.
    """
    every: dict[Group, UsageTotals] = {}
    by_key: dict[Group, UsageTotals] = {}
    by_model_node: dict[Group, UsageTotals] = {}
    for record in records:
        buckets = buckets_of(record)
        hour = utc_hour_of(record.created_at)
        # An empty name is no name: the unique keys count NULL as '' (rollup_tables.py), and one upsert
        # statement may not reach a row twice (rollup_upsert.py).
        key_id, model, node = record.api_key_id, record.model or None, record.node or None
        _totals(every, (hour, key_id, model, node)).add(record, buckets)
        _totals(by_key, (hour, key_id)).add(record, buckets)
        _totals(by_model_node, (hour, model, node)).add(record, buckets)
    folded = {
        USAGE_HOURLY: every,
        HOURLY_BY_KEY: by_key,
        HOURLY_BY_MODEL_NODE: by_model_node,
        USAGE_DAILY: _by_day(every),
        DAILY_BY_KEY: _by_day(by_key),
        DAILY_BY_MODEL_NODE: _by_day(by_model_node),
    }
    return {table: sorted(groups.items(), key=_unique_order) for table, groups in folded.items()}


def _totals(groups: dict[Group, UsageTotals], group: Group) -> UsageTotals:
    totals = groups.get(group)
    if totals is None:
        totals = groups[group] = UsageTotals()
    return totals


def _by_day(hourly: dict[Group, UsageTotals]) -> dict[Group, UsageTotals]:
    daily: dict[Group, UsageTotals] = {}
    for (hour, *dimensions), totals in hourly.items():
        group = (hour.date(), *dimensions)  # the hour is UTC, so its date is the UTC day
        known = daily.get(group)
        daily[group] = totals if known is None else known.plus(totals)  # the hour's own totals stay as they are
    return daily


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
