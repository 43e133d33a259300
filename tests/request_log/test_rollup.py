"""Folding records into per-day, per-key, per-model rollup rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from proxy.request_log import latency_histogram
from proxy.request_log.rollup import last_used, rollup
from tests.support.records import make_record

MIDNIGHT = datetime(2025, 6, 2, tzinfo=UTC)
BRASILIA = timezone(timedelta(hours=-3))


def test_groups_by_utc_day_key_and_model_and_counts_errors():
    key = uuid.uuid4()
    records = [
        make_record(api_key_id=key, created_at=MIDNIGHT - timedelta(seconds=1)),
        make_record(api_key_id=key, created_at=MIDNIGHT),
        make_record(
            api_key_id=key,
            created_at=MIDNIGHT + timedelta(hours=5),
            status_code=500,
            prompt_tokens=None,
            completion_tokens=None,
        ),
        make_record(api_key_id=key, created_at=MIDNIGHT, error="model runner stopped"),  # 200, failed mid-stream
        make_record(api_key_id=None, model=None, status_code=401, created_at=MIDNIGHT),
        # 22:00 the day before in UTC-3: the same UTC day.
        make_record(api_key_id=key, created_at=(MIDNIGHT + timedelta(hours=1)).astimezone(BRASILIA)),
    ]
    rows = {(u.start.isoformat(), u.api_key_id, u.model): u for u in rollup(records)}
    assert set(rows) == {("2025-06-01", key, "llama3.2"), ("2025-06-02", key, "llama3.2"), ("2025-06-02", None, None)}
    today = rows[("2025-06-02", key, "llama3.2")].totals
    assert (today.requests, today.errors, today.prompt_tokens, today.completion_tokens) == (4, 2, 33, 15)
    assert today.response_time_sum == 4 * 42.0
    assert sum(today.latency_histogram) == 4
    assert today.latency_histogram[latency_histogram.bucket_of(42.0)] == 4
    assert rows[("2025-06-02", None, None)].totals.errors == 1


def test_rows_and_key_times_come_sorted_so_writers_lock_in_one_order():
    keys = [uuid.uuid4() for _ in range(20)]
    records = [make_record(api_key_id=k, created_at=MIDNIGHT + timedelta(seconds=i)) for i, k in enumerate(keys)]
    records.append(make_record(api_key_id=keys[0], created_at=MIDNIGHT + timedelta(days=1)))
    rows = rollup(records)
    assert [(r.start, str(r.api_key_id)) for r in rows] == sorted((r.start, str(r.api_key_id)) for r in rows)
    ids, times = last_used(records)
    assert ids == sorted(keys)
    assert times[ids.index(keys[0])] == MIDNIGHT + timedelta(days=1)
    assert last_used([make_record(api_key_id=None)]) == ([], [])
