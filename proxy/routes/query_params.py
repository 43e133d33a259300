"""Parsing the query parameters of /api/stats and /api/logs (and the stats CLI's flags).

Every parser raises ValueError with a message fit for a 400 body or a CLI error line.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from uuid import UUID

from proxy.values.digits import is_ascii_digits
from proxy.values.timestamps import parse_timestamp

DEFAULT_DAYS = 30


def refuse_unknown(params: Mapping[str, str], allowed: Iterable[str]) -> None:
    """A misspelt filter must not silently widen an answer to everything."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown query parameter: {', '.join(unknown)}")
    if len(params) != len(set(params)):  # a multidict counts a name given twice twice
        raise ValueError("a query parameter is given more than once")


def parse_uuid(name: str, value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ValueError(f"{name} must be a key id (UUID)") from None


def parse_moment(name: str, value: str) -> tuple[datetime, bool]:
    """An ISO 8601 date or timestamp as an aware UTC datetime, and whether it was a bare date.

    A timestamp without an offset is taken as UTC.
    """
    return parse_timestamp(name, value), len(value) == 10


def day_range(since: str | None, until: str | None, today: date) -> tuple[date, date]:
    """Inclusive UTC days for the daily rollups; default: the last DEFAULT_DAYS days up to today."""
    last = parse_moment("until", until)[0].date() if until else today
    first = parse_moment("since", since)[0].date() if since else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ValueError("since must not be after until")
    return first, last


def time_range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """[since, until) for raw rows; a bare date as `until` includes that whole day."""
    start = parse_moment("since", since)[0] if since else None
    end = None
    if until:
        end, bare_date = parse_moment("until", until)
        if bare_date:
            end += timedelta(days=1)
    if start and end and start >= end:
        raise ValueError("since must be before until")
    return start, end


def parse_text(name: str, value: str) -> str:
    """Free text compared with a column: PostgreSQL text cannot hold a NUL, nor a lone surrogate."""
    if not value.isprintable():
        raise ValueError(f"{name} must be printable text")
    return value


def parse_int(name: str, value: str, low: int, high: int) -> int:
    if not is_ascii_digits(value) or not low <= int(value) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return int(value)


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    """An opaque page token: where the previous page ended, newest first."""
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        moment, row_id = raw.split("|")
        return parse_timestamp("cursor", moment), UUID(row_id)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not one this server handed out") from None
