"""GET /api/usage (charts from the hourly and daily rollups) and GET /api/auth/key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from proxy.request_log.batch import write_batch
from proxy.state import POOL
from tests.support.factories import ADMIN_KEY, USER_KEY, RecordingSink, bearer, make_settings, start_gateway
from tests.support.records import make_record

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


@pytest.fixture
async def gateway(aiohttp_server, database_url, db):
    return await start_gateway(aiohttp_server, make_settings(database_url), sink=RecordingSink())


@pytest.fixture
async def keys(gateway, db):
    admin_id = await db.fetchval("SELECT id FROM api_keys WHERE name = 'demo-admin'")
    user_id = await db.fetchval("SELECT id FROM api_keys WHERE name = 'demo-user'")
    records = (
        # The user: 4 requests in one hour, 2 in the next (one a 500), on llama3.2 at node-a.
        [make_record(api_key_id=user_id, created_at=HOUR + timedelta(minutes=i), ttfb=20.0, node="a") for i in range(4)]
        + [
            make_record(api_key_id=user_id, created_at=HOUR + timedelta(minutes=70), ttfb=20.0, node="a"),
            make_record(api_key_id=user_id, created_at=HOUR + timedelta(minutes=71), status_code=500, node="a"),
        ]
        # The admin: 3 on qwen3 at node-b, in the second hour.
        + [
            make_record(
                api_key_id=admin_id, model="qwen3", created_at=HOUR + timedelta(minutes=80 + i), ttfb=200.0, node="b"
            )
            for i in range(3)
        ]
    )
    async with gateway.app[POOL].acquire() as conn:
        await write_batch(conn, records)
    return admin_id, user_id


def _range(**extra: str) -> dict[str, str]:
    return {"since": HOUR.isoformat(), "until": (HOUR + timedelta(hours=3)).isoformat(), **extra}


async def test_admin_sees_every_key_hour_by_hour_with_breakdowns_and_a_split(gateway, keys, http):
    admin_id, user_id = keys
    async with http.get(gateway.u("/api/usage"), params=_range(), headers=bearer(ADMIN_KEY)) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    assert body["step"] == "hour"
    assert body["starts"] == [(HOUR + timedelta(hours=h)).isoformat() for h in range(3)]
    assert body["series"]["requests"] == [4, 5, 0]
    assert body["series"]["errors"] == [0, 1, 0]
    assert body["series"]["prompt_tokens"] == [44, 55, 0]
    assert body["series"]["p50_ttfb_ms"][0] == pytest.approx(20.0, rel=0.15)
    assert body["series"]["p95_ttfb_ms"][2] is None
    assert body["totals"]["requests"] == 9
    assert {row["key_id"]: row["requests"] for row in body["by_key"]} == {str(user_id): 6, str(admin_id): 3}
    assert [(row["model"], row["requests"]) for row in body["by_model"]] == [("llama3.2", 6), ("qwen3", 3)]
    assert [(row["node"], row["requests"]) for row in body["by_node"]] == [("a", 6), ("b", 3)]
    assert body["split"]["by"] == "model"
    assert {g["name"]: g["requests"] for g in body["split"]["groups"]} == {"llama3.2": [4, 2, 0], "qwen3": [0, 3, 0]}


async def test_a_month_by_the_day_reads_the_daily_rollups(gateway, keys, http):
    params = {"since": (HOUR - timedelta(days=29)).isoformat(), "until": HOUR.isoformat(), "split": "key"}
    async with http.get(gateway.u("/api/usage"), params=params, headers=bearer(ADMIN_KEY)) as resp:
        body = await resp.json()
    assert body["step"] == "day"
    assert sum(body["series"]["requests"]) == body["totals"]["requests"] == 9
    assert len(body["starts"]) in (30, 31)  # whole UTC days around the range
    assert sum(sum(g["requests"]) for g in body["split"]["groups"]) == 9


async def test_a_user_key_sees_only_its_own_usage(gateway, keys, http):
    admin_id, user_id = keys
    async with http.get(gateway.u("/api/usage"), params=_range(split="key"), headers=bearer(USER_KEY)) as resp:
        body = await resp.json()
    assert body["key_id"] == str(user_id)
    assert body["series"]["requests"] == [4, 1 + 1, 0]
    assert [row["key_id"] for row in body["by_key"]] == [str(user_id)]
    params = _range(key_id=str(admin_id))
    async with http.get(gateway.u("/api/usage"), params=params, headers=bearer(USER_KEY)) as resp:
        assert resp.status == 403


@pytest.mark.parametrize(
    "params",
    [
        {"step": "minute"},
        {"split": "colour"},
        {"since": "2025-06-02", "until": "2025-06-01"},
        {"since": "2020-01-01", "step": "hour"},
        {"since": "0002-01-01", "step": "day"},
        {"key_id": "not-a-uuid"},
        {"unknown": "1"},
        {"since": "yesterday"},
    ],
)
async def test_bad_parameters_are_a_400_that_says_why(gateway, http, params):
    async with http.get(gateway.u("/api/usage"), params=params, headers=bearer(ADMIN_KEY)) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]


async def test_no_usage_is_zeros_and_null_percentiles(gateway, http):
    async with http.get(gateway.u("/api/usage"), headers=bearer(ADMIN_KEY)) as resp:
        body = await resp.json()
    assert len(body["starts"]) in (24, 25)
    assert set(body["series"]["requests"]) == {0}
    assert set(body["series"]["p95_response_time_ms"]) == {None}
    assert body["totals"]["requests"] == 0 and body["by_key"] == []


async def test_the_key_behind_a_token_is_its_own_record(gateway, http):
    async with http.post(gateway.u("/api/auth/token"), headers=bearer(USER_KEY)) as resp:
        token = (await resp.json())["access_token"]
    async with http.get(gateway.u("/api/auth/key"), headers=bearer(token)) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert (body["name"], body["role"]) == ("demo-user", "user")
    assert "key" not in body and USER_KEY not in str(body)
    async with http.get(gateway.u("/api/auth/key"), headers=bearer("olg_" + uuid.uuid4().hex)) as resp:
        assert resp.status == 401
