"""GET /api/usage's figures equal those counted straight from the request records, for every shape of range:
within a day, across midnight, with whole days inside (read from the daily rows), by the day; every key
(the rollups without the key dimension) and one key (usage_daily and usage_hourly); each split."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from proxy.request_log import latency_histogram
from proxy.request_log.batch import write_batch
from proxy.request_log.usage_totals import UsageTotals, buckets_of
from proxy.state import POOL
from tests.support.factories import ADMIN_KEY, RecordingSink, bearer, make_settings, start_gateway
from tests.support.records import make_record

BASE = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


@pytest.fixture
async def gateway(aiohttp_server, database_url, db):
    return await start_gateway(aiohttp_server, make_settings(database_url), sink=RecordingSink())


@pytest.fixture
async def seeded(gateway, db):
    admin_id = await db.fetchval("SELECT id FROM api_keys WHERE name = 'demo-admin'")
    user_id = await db.fetchval("SELECT id FROM api_keys WHERE name = 'demo-user'")
    records = [
        make_record(
            api_key_id=(admin_id, user_id, None)[i % 3],  # None: a request without a valid key
            model=("llama3.2", "qwen3", None)[i // 2 % 3],
            node=("a", "b", None)[i // 3 % 3],
            created_at=BASE + timedelta(hours=18, minutes=23 * i),  # 36 hours from 18:00 on the first day
            status_code=(200, 200, 200, 500, 429)[i % 5],
            prompt_tokens=i,
            completion_tokens=2 * i,
            response_time=12.5 * i + 1,  # exact in binary: every order of adding gives the same sum
            ttfb=None if i % 5 == 4 else 3.0 * i + 0.5,
        )
        for i in range(94)
    ]
    async with gateway.app[POOL].acquire() as conn:
        assert await write_batch(conn, records[:60]) == 60
        assert await write_batch(conn, records[40:]) == 34  # part of it a replay
    return records, admin_id, user_id


def _figures(records: list) -> dict[str, Any]:
    totals = UsageTotals()
    for record in records:
        totals.add(record, buckets_of(record))
    totals.queue_histogram = latency_histogram.empty()  # the charts leave waits out
    figures = totals.to_json()
    for name, q in (("p50_ttfb_ms", 0.50), ("p95_ttfb_ms", 0.95)):
        value = latency_histogram.percentile(totals.ttfb_histogram, q)
        figures[name] = None if value is None else round(value, 2)
    return figures


def _expected(records: list, since: datetime, until: datetime, step: str, split: str, key_id: UUID | None) -> dict:
    every = timedelta(hours=1) if step == "hour" else timedelta(days=1)
    starts = [since + every * i for i in range((until - since) // every)]
    chosen = [r for r in records if since <= r.created_at < until and key_id in (None, r.api_key_id)]

    def period(record) -> int:
        return (record.created_at - since) // every

    def busiest(attribute: str, name: str) -> list[dict]:
        values = {getattr(r, attribute) for r in chosen}
        rows = [{name: v if v is None else str(v),
                 **_figures([r for r in chosen if getattr(r, attribute) == v])} for v in values]  # fmt: skip
        return sorted(rows, key=lambda row: (-row["requests"], row[name] or ""))

    per_period = [_figures([r for r in chosen if period(r) == i]) for i in range(len(starts))]
    series = {
        name: [figures[name] if figures["requests"] else (None if name.endswith("_ms") else 0)
               for figures in per_period]
        for name in ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens",
                     "p50_response_time_ms", "p95_response_time_ms", "p50_ttfb_ms", "p95_ttfb_ms")
    }  # fmt: skip
    attribute = {"key": "api_key_id", "model": "model", "node": "node"}[split]
    groups = []
    for value in {getattr(r, attribute) for r in chosen}:
        mine = [r for r in chosen if getattr(r, attribute) == value]
        groups.append({
            "name": value if value is None else str(value),
            "requests": [sum(1 for r in mine if period(r) == i) for i in range(len(starts))],
            "total_tokens": [sum(r.tokens_used for r in mine if period(r) == i) for i in range(len(starts))],
        })  # fmt: skip
    groups.sort(key=lambda g: (-sum(g["requests"]), g["name"] or ""))
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "step": step,
        "key_id": None if key_id is None else str(key_id),
        "starts": [start.isoformat() for start in starts],
        "series": series,
        "split": {"by": split, "groups": groups},
        "totals": _figures(chosen),
        "by_key": busiest("api_key_id", "key_id"),
        "by_model": busiest("model", "model"),
        "by_node": busiest("node", "node"),
    }


RANGES = {
    "hours within a day": (timedelta(days=1, hours=5), timedelta(days=1, hours=9), "hour"),
    "hours across midnight": (timedelta(hours=20), timedelta(days=1, hours=4), "hour"),
    "hours around a whole day": (timedelta(hours=20), timedelta(days=2, hours=3), "hour"),
    "days": (timedelta(days=-1), timedelta(days=3), "day"),
}


@pytest.mark.parametrize("split", ["key", "model", "node"])
@pytest.mark.parametrize("whose", ["every key", "one key"])
@pytest.mark.parametrize("span", RANGES.values(), ids=RANGES.keys())
async def test_the_figures_are_those_of_the_records(gateway, seeded, http, span, whose, split):
    records, admin_id, user_id = seeded
    since, until, step = BASE + span[0], BASE + span[1], span[2]
    key_id = None if whose == "every key" else user_id
    params = {"since": since.isoformat(), "until": until.isoformat(), "step": step, "split": split}
    if key_id:
        params["key_id"] = str(key_id)
    async with http.get(gateway.u("/api/usage"), params=params, headers=bearer(ADMIN_KEY)) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    expected = json.loads(json.dumps(_expected(records, since, until, step, split, key_id)))
    assert body["totals"]["requests"] > 0
    assert body == expected
