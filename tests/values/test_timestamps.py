"""parse_timestamp: ISO 8601 from clients, bounded to the years that survive a shift to UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from proxy.values.timestamps import parse_timestamp


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2025-06-01", datetime(2025, 6, 1, tzinfo=UTC)),
        ("2025-06-01T12:00:00Z", datetime(2025, 6, 1, 12, tzinfo=UTC)),
        ("2025-06-01T12:00:00", datetime(2025, 6, 1, 12, tzinfo=UTC)),  # no offset: UTC
        ("2025-06-01T14:00:00+02:00", datetime(2025, 6, 1, 12, tzinfo=UTC)),
        ("0002-01-01T00:00:00+14:00", datetime(1, 12, 31, 10, tzinfo=UTC)),
        ("9998-12-31T23:59:59-14:00", datetime(9999, 1, 1, 13, 59, 59, tzinfo=UTC)),
    ],
)
def test_a_timestamp_comes_back_aware_in_utc(value, expected):
    parsed = parse_timestamp("since", value)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:00:00-05:00",  # asyncpg overflowed on these (500s)
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31",
    ],
)
def test_years_that_overflow_are_refused_by_name(value):
    with pytest.raises(ValueError, match="^expires_at must be between the years 2 and 9998$"):
        parse_timestamp("expires_at", value)


@pytest.mark.parametrize("value", ["tomorrow", "", "2025-13-01", "2025-06-01T25:00:00"])
def test_garbage_gets_a_message_naming_the_field(value):
    with pytest.raises(ValueError, match="^until must be an ISO 8601 date or timestamp"):
        parse_timestamp("until", value)
