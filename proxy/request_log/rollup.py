"""A batch of request records folded into rollup rows: one per period (a UTC day for usage_daily, a UTC
hour for usage_hourly), key, model and node."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID

from proxy.request_log.record import RequestRecord
from proxy.request_log.usage_totals import UsageTotals
from proxy.values.utc_day import utc_day_of, utc_hour_of


@dataclass(slots=True)
class PeriodUsage:
    start: date | datetime  # the UTC day, or the start of the UTC hour
    api_key_id: UUID | None
    model: str | None
    node: str | None = None
    totals: UsageTotals = field(default_factory=UsageTotals)

    def as_row(self) -> tuple:
        return (self.start, self.api_key_id, self.model, self.node, *self.totals.columns())


def rollup(
    records: Iterable[RequestRecord], period_of: Callable[[datetime], date | datetime] = utc_day_of
) -> list[PeriodUsage]:
    """Rows sorted by their unique key, so concurrent writers lock them in the same order
    and never deadlock on each other's upserts."""
    groups: dict[tuple, PeriodUsage] = {}
    for record in records:
        start = period_of(record.created_at)
        key = (start, record.api_key_id, record.model, record.node)
        group = groups.get(key)
        if group is None:
            group = groups[key] = PeriodUsage(start, record.api_key_id, record.model, record.node)
        group.totals.add_record(record)
    return sorted(groups.values(), key=lambda u: (u.start, str(u.api_key_id or ""), u.model or "", u.node or ""))


def rollup_hourly(records: Iterable[RequestRecord]) -> list[PeriodUsage]:
    return rollup(records, utc_hour_of)


def last_used(records: Iterable[RequestRecord]) -> tuple[list[UUID], list[datetime]]:
    """Each key's newest request time, as parallel arrays sorted by key id (same lock order everywhere)."""
    newest: dict[UUID, datetime] = {}
    for record in records:
        key_id = record.api_key_id
        if key_id is not None and (key_id not in newest or record.created_at > newest[key_id]):
            newest[key_id] = record.created_at
    ids = sorted(newest)
    return ids, [newest[key_id] for key_id in ids]
