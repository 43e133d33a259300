"""A batch of request records folded into usage_daily rows: one per UTC day, key and model."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from uuid import UUID

from proxy.request_log import latency_histogram
from proxy.request_log.record import RequestRecord


@dataclass(slots=True)
class DailyUsage:
    day: date
    api_key_id: UUID | None
    model: str | None
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    response_time_sum: float = 0.0
    latency_histogram: list[int] = field(default_factory=latency_histogram.empty)

    def add(self, record: RequestRecord) -> None:
        self.requests += 1
        if is_error(record):
            self.errors += 1
        self.prompt_tokens += record.prompt_tokens or 0
        self.completion_tokens += record.completion_tokens or 0
        elapsed = record.response_time or 0.0
        self.response_time_sum += elapsed
        self.latency_histogram[latency_histogram.bucket_of(elapsed)] += 1

    def as_row(self) -> tuple:
        return (self.day, self.api_key_id, self.model, self.requests, self.errors, self.prompt_tokens,
                self.completion_tokens, self.response_time_sum, self.latency_histogram)


def is_error(record: RequestRecord) -> bool:
    # A stream that failed after its 200 status line is an error too (the record notes it).
    return record.status_code >= 400 or record.error is not None


def utc_day(record: RequestRecord) -> date:
    return record.created_at.astimezone(timezone.utc).date()


def rollup(records: Iterable[RequestRecord]) -> list[DailyUsage]:
    """Rows sorted by their unique key, so concurrent writers lock them in the same order
    and never deadlock on each other's upserts."""
    groups: dict[tuple, DailyUsage] = {}
    for record in records:
        day = utc_day(record)
        group = groups.get((day, record.api_key_id, record.model))
        if group is None:
            group = groups[(day, record.api_key_id, record.model)] = DailyUsage(day, record.api_key_id, record.model)
        group.add(record)
    return sorted(groups.values(), key=lambda u: (u.day, str(u.api_key_id or ""), u.model or ""))


def last_used(records: Iterable[RequestRecord]) -> tuple[list[UUID], list[datetime]]:
    """Each key's newest request time, as parallel arrays sorted by key id (same lock order everywhere)."""
    newest: dict[UUID, datetime] = {}
    for record in records:
        key_id = record.api_key_id
        if key_id is not None and (key_id not in newest or record.created_at > newest[key_id]):
            newest[key_id] = record.created_at
    ids = sorted(newest)
    return ids, [newest[key_id] for key_id in ids]
