"""The UTC calendar day (the grain of the daily rollups, the log partitions and the daily token quota) and
the UTC hour (the grain of the hourly rollups)."""

from __future__ import annotations

from datetime import UTC, date, datetime


def utc_today() -> date:
    return datetime.now(UTC).date()


def utc_day_of(moment: datetime) -> date:
    """The UTC day an aware datetime falls on, whatever its own offset."""
    return moment.astimezone(UTC).date()


def utc_hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour an aware datetime falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def utc_day_at(unix_time: float) -> date:
    """The UTC day of a wall-clock UNIX time, for code that runs on an injected clock."""
    return datetime.fromtimestamp(unix_time, UTC).date()
