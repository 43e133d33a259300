"""Folding records into the groups of each rollup table: per UTC day or hour, by key, model and node or coarser."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from proxy.request_log import latency_histogram
from proxy.request_log.rollup import last_used, rollups
from proxy.request_log.rollup_tables import (
    DAILY_BY_KEY,
    DAILY_BY_MODEL_NODE,
    HOURLY_BY_KEY,
    HOURLY_BY_MODEL_NODE,
    USAGE_DAILY,
    USAGE_HOURLY,
    WRITE_ORDER,
)
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
    rows = {
        (start.isoformat(), key_id, model): totals
        for (start, key_id, model, _), totals in rollups(records)[USAGE_DAILY]
    }
    assert set(rows) == {("2025-06-01", key, "llama3.2"), ("2025-06-02", key, "llama3.2"), ("2025-06-02", None, None)}
    today = rows[("2025-06-02", key, "llama3.2")]
    assert (today.requests, today.errors, today.prompt_tokens, today.completion_tokens) == (4, 2, 33, 15)
    assert today.response_time_sum == 4 * 42.0
    assert sum(today.latency_histogram) == 4
    assert today.latency_histogram[latency_histogram.bucket_of(42.0)] == 4
    assert rows[("2025-06-02", None, None)].errors == 1


def test_the_coarser_groups_add_up_the_same_records_and_hours_add_up_to_days():
    keys = [uuid.uuid4(), uuid.uuid4(), None]
    records = [
        make_record(api_key_id=keys[i % 3], model=("a", "b", None)[i % 2], node=("n1", None)[i % 2],
                    created_at=MIDNIGHT + timedelta(minutes=50 * i), ttfb=10.0 * i, queue_ms=5.0 if i % 4 else None)
        for i in range(12)
    ]  # fmt: skip
    groups = rollups(records)
    assert set(groups) == set(WRITE_ORDER)

    def summed(table, dimensions_of):
        sums: dict[tuple, list] = {}
        for (start, *dimensions), totals in groups[table]:
            into = sums.setdefault((start, *dimensions_of(dimensions)), [0, 0, 0, latency_histogram.empty()])
            into[0] += totals.requests
            into[1] += totals.prompt_tokens
            into[2] += sum(totals.ttfb_histogram) + sum(totals.queue_histogram)
            latency_histogram.add_into(into[3], totals.latency_histogram)
        return sums

    def by_day(sums):
        days: dict[tuple, list] = {}
        for (hour, *dimensions), (requests, prompt, waits, histogram) in sums.items():
            into = days.setdefault((hour.date(), *dimensions), [0, 0, 0, latency_histogram.empty()])
            into[0], into[1], into[2] = into[0] + requests, into[1] + prompt, into[2] + waits
            latency_histogram.add_into(into[3], histogram)
        return days

    every_hour = summed(USAGE_HOURLY, tuple)
    assert summed(HOURLY_BY_KEY, tuple) == summed(USAGE_HOURLY, lambda d: (d[0],))
    assert summed(HOURLY_BY_MODEL_NODE, tuple) == summed(USAGE_HOURLY, lambda d: (d[1], d[2]))
    assert summed(USAGE_DAILY, tuple) == by_day(every_hour)
    assert summed(DAILY_BY_KEY, tuple) == by_day(summed(USAGE_HOURLY, lambda d: (d[0],)))
    assert summed(DAILY_BY_MODEL_NODE, tuple) == by_day(summed(USAGE_HOURLY, lambda d: (d[1], d[2])))
    assert sum(totals.requests for _, totals in groups[DAILY_BY_MODEL_NODE]) == 12


def test_a_day_of_two_hours_is_their_sum_and_leaves_each_hour_as_it_was():
    records = [make_record(created_at=MIDNIGHT + timedelta(minutes=m)) for m in (1, 2, 61)]
    groups = rollups(records)
    assert [totals.requests for _, totals in groups[USAGE_HOURLY]] == [2, 1]
    assert [sum(totals.latency_histogram) for _, totals in groups[HOURLY_BY_MODEL_NODE]] == [2, 1]
    assert [totals.requests for _, totals in groups[USAGE_DAILY]] == [3]
    assert [sum(totals.latency_histogram) for _, totals in groups[DAILY_BY_KEY]] == [3]


def test_rows_and_key_times_come_sorted_so_writers_lock_in_one_order():
    keys = [uuid.uuid4() for _ in range(20)]
    records = [make_record(api_key_id=k, created_at=MIDNIGHT + timedelta(seconds=i)) for i, k in enumerate(keys)]
    records.append(make_record(api_key_id=keys[0], created_at=MIDNIGHT + timedelta(days=1)))
    for table, groups in rollups(records).items():
        order = [(start, *(str(d or "") for d in dimensions)) for (start, *dimensions), _ in groups]
        assert order == sorted(order), table.name
    ids, times = last_used(records)
    assert ids == sorted(keys)
    assert times[ids.index(keys[0])] == MIDNIGHT + timedelta(days=1)
    assert last_used([make_record(api_key_id=None)]) == ([], [])


def test_an_empty_model_or_node_name_is_no_name_as_the_unique_keys_have_it():
    records = [make_record(model="", node="", created_at=MIDNIGHT), make_record(model=None, created_at=MIDNIGHT)]
    groups = rollups(records)
    for table in WRITE_ORDER:
        assert [totals.requests for _, totals in groups[table]] == [2], table.name
    assert groups[HOURLY_BY_MODEL_NODE][0][0] == (MIDNIGHT, None, None)


def test_a_record_in_the_last_hour_of_time_is_counted():
    # A record a journal may hold with any date: the hour after 9999-12-31 23:00 does not exist.
    record = make_record(created_at=datetime(9999, 12, 31, 23, 30, tzinfo=UTC))
    [(group, totals)] = rollups([record])[USAGE_HOURLY]
    assert group[0] == datetime(9999, 12, 31, 23, tzinfo=UTC) and totals.requests == 1
