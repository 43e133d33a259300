"""The one parser of ISO 8601 timestamps that clients send: API fields, query parameters, cursors."""

from __future__ import annotations

from datetime import UTC, datetime

# Years 1 and 9999 overflow once shifted to UTC, by a day or by a range: in Python they raise
# OverflowError, in asyncpg they fail the query.
MIN_YEAR = 2
MAX_YEAR = 9998


def parse_timestamp(name: str, value: str) -> datetime:
    """An ISO 8601 date or timestamp as an aware UTC datetime; one without an offset is taken as UTC.

    Raises ValueError with a message fit for a 400 body or a CLI error line.
    """
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be an ISO 8601 date or timestamp, like 2025-06-01 or 2025-06-01T12:00:00Z"
        ) from None
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise ValueError(f"{name} must be between the years {MIN_YEAR} and {MAX_YEAR}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
