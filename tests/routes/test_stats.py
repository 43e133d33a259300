"""GET /api/stats (from the rollups), GET /api/logs (admin, keyset pages) and `ollama-gateway stats`."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from proxy.request_log import latency_histogram
from proxy.request_log.batch import write_batch
from proxy.request_log.stats import tokens_used_today
from proxy.state import POOL
from tests.support.cli_runner import run_cli
from tests.support.factories import ADMIN_KEY, SECRET, USER_KEY, RecordingSink, bearer, make_settings, start_gateway
from tests.support.records import make_record

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
YESTERDAY = NOW - timedelta(days=1)


@pytest.fixture
async def gateway(aiohttp_server, database_url, db):
    # The gateway's own requests go to a RecordingSink, so the rows are exactly the ones seeded here.
    return await start_gateway(aiohttp_server, make_settings(database_url), sink=RecordingSink())


@pytest.fixture
async def seeded(gateway, db):
    """65 rows over two days, two keys, two models and no key at all."""
    admin_id = await db.fetchval("SELECT id FROM api_keys WHERE name = 'demo-admin'")
    user_id = await db.fetchval("SELECT id FROM api_keys WHERE name = 'demo-user'")
    records = (
        [
            make_record(
                api_key_id=user_id,
                created_at=NOW + timedelta(seconds=i),
                response_time=10.0 + 10 * i,
                client_ip="10.0.0.7",
            )
            for i in range(30)
        ]
        + [
            make_record(
                api_key_id=user_id,
                model="qwen3:0.6b",
                created_at=YESTERDAY + timedelta(seconds=i),
                status_code=500 if i % 2 else 200,
                response_time=1000.0,
            )
            for i in range(10)
        ]
        + [
            make_record(
                api_key_id=admin_id,
                model=None,
                endpoint="/api/keys",
                method="GET",
                prompt_tokens=None,
                completion_tokens=None,
                created_at=NOW + timedelta(minutes=1, seconds=i),
                response_time=2.5,
            )
            for i in range(20)
        ]
        + [
            make_record(
                api_key_id=None,
                model=None,
                status_code=401,
                created_at=NOW - timedelta(hours=1, seconds=i),
                prompt_tokens=None,
                completion_tokens=None,
                response_time=0.4,
            )
            for i in range(5)
        ]
    )
    async with gateway.app[POOL].acquire() as conn:
        assert await write_batch(conn, records) == 65
    return {"admin": admin_id, "user": user_id, "records": records}


async def _stats(http, gateway, key, **params):
    async with http.get(gateway.u("/api/stats"), headers=bearer(key), params=params) as r:
        return r.status, await r.json()


async def test_admin_totals_equal_the_rows(gateway, http, db, seeded):
    status, body = await _stats(http, gateway, ADMIN_KEY)
    assert status == 200 and body["key_id"] is None
    row = await db.fetchrow(
        "SELECT count(*) AS n, sum(prompt_tokens) AS p, sum(completion_tokens) AS c, "
        "count(*) FILTER (WHERE status_code >= 400) AS e, avg(response_time) AS avg "
        "FROM request_log"
    )
    totals = body["totals"]
    assert (
        (totals["requests"], totals["prompt_tokens"], totals["completion_tokens"], totals["errors"])
        == (row["n"], row["p"], row["c"], row["e"])
        == (65, 40 * 11, 40 * 5, 10)
    )
    assert totals["total_tokens"] == 40 * 16
    assert totals["avg_response_time_ms"] == round(row["avg"], 2)
    times = [r.response_time for r in seeded["records"]]
    counts = latency_histogram.histogram_of(times)
    assert totals["p50_response_time_ms"] == round(latency_histogram.percentile(counts, 0.5), 2)
    assert totals["p95_response_time_ms"] == round(latency_histogram.percentile(counts, 0.95), 2)
    assert [(m["model"], m["requests"]) for m in body["by_model"]] == [("llama3.2", 30), (None, 25), ("qwen3:0.6b", 10)]
    assert [(d["day"], d["requests"], d["errors"]) for d in body["by_day"]] == [
        (YESTERDAY.date().isoformat(), 10, 5),
        (NOW.date().isoformat(), 55, 5),
    ]


async def test_a_user_key_sees_only_its_own_usage(gateway, http, seeded):
    status, own = await _stats(http, gateway, USER_KEY)
    assert status == 200 and own["totals"]["requests"] == 40 and own["key_id"] == str(seeded["user"])
    assert (await _stats(http, gateway, USER_KEY, key_id=str(seeded["user"])))[1] == own
    status, body = await _stats(http, gateway, USER_KEY, key_id=str(seeded["admin"]))
    assert status == 403 and "own usage" in body["error"]
    assert (await _stats(http, gateway, ADMIN_KEY, key_id=str(seeded["user"])))[1] == own
    status, today = await _stats(http, gateway, ADMIN_KEY, since=NOW.date().isoformat())
    assert today["totals"]["requests"] == 55 and today["since"] == today["until"] == NOW.date().isoformat()


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"since": "last tuesday"}, "ISO 8601"),
        ({"since": "2025-06-02", "until": "2025-06-01"}, "after until"),
        ({"key_id": "alice"}, "UUID"),
        ({"keyid": "x"}, "unknown query parameter"),
    ],
)
async def test_bad_stats_parameters_get_400(gateway, http, params, fragment):
    status, body = await _stats(http, gateway, ADMIN_KEY, **params)
    assert status == 400 and fragment in body["error"]


async def _logs(http, gateway, key=ADMIN_KEY, **params):
    async with http.get(gateway.u("/api/logs"), headers=bearer(key), params=params) as r:
        return r.status, await r.json()


async def test_logs_are_admin_only(gateway, http, seeded):
    status, body = await _logs(http, gateway, USER_KEY)
    assert status == 403 and "admin" in body["error"]
    async with http.get(gateway.u("/api/logs")) as r:
        assert r.status == 401


async def test_logs_page_newest_first_through_every_row_once(gateway, http, seeded):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        status, body = await _logs(http, gateway, **params)
        assert status == 200 and len(body["logs"]) <= 7
        seen += body["logs"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 10 and len(seen) == 65 and len({row["id"] for row in seen}) == 65
    times = [row["created_at"] for row in seen]
    assert times == sorted(times, reverse=True)
    newest = seen[0]
    assert newest["endpoint"] == "/api/keys" and newest["api_key_id"] == str(seeded["admin"])
    assert set(newest) >= {"client_ip", "status_code", "prompt_tokens", "response_time_ms", "error"}
    assert (await _logs(http, gateway, limit="100"))[1]["next_cursor"] is None
    assert len((await _logs(http, gateway))[1]["logs"]) == 65  # default limit 100


async def test_logs_filters(gateway, http, seeded):
    async def ids(**params):
        status, body = await _logs(http, gateway, limit="1000", **params)
        assert status == 200, body
        return {row["id"] for row in body["logs"]}

    records = seeded["records"]
    assert len(await ids(key_id=str(seeded["user"]))) == 40
    assert len(await ids(model="qwen3:0.6b")) == 10
    assert len(await ids(status="401")) == 5
    assert len(await ids(status="500", key_id=str(seeded["user"]))) == 5
    assert await ids(since=NOW.isoformat(), until=(NOW + timedelta(seconds=3)).isoformat()) == {
        str(r.id) for r in records[:3]
    }
    assert len(await ids(until=YESTERDAY.date().isoformat())) == 10  # a bare date: through its end
    status, body = await _logs(http, gateway, key_id=str(seeded["user"]), limit="1")
    assert body["logs"][0]["client_ip"] == "10.0.0.7"


def encode_raw_cursor(raw: str) -> str:
    """A cursor crafted by hand, encoded the way proxy.routes.query_params.encode_cursor encodes one."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "abc"}, "status"),
        ({"status": "99"}, "status"),
        ({"status": "\u00b2"}, "status must be a whole number"),
        ({"limit": "\u0663"}, "limit must be a whole number"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"key_id": "1"}, "UUID"),
        # Well formed, but year 1 overflows once shifted to UTC (was a 500).
        ({"cursor": encode_raw_cursor("0001-01-01T00:00:00+14:00|" + str(uuid.uuid4()))}, "cursor"),
        ({"cursor": encode_raw_cursor("9999-12-31T23:59:59-14:00|" + str(uuid.uuid4()))}, "cursor"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "between the years"),
        ({"since": "2025-02-01", "until": "2025-01-01"}, "before until"),
        ({"since": "yesterday"}, "ISO 8601"),
        ({"order": "asc"}, "unknown query parameter"),
    ],
)
async def test_bad_log_parameters_get_400(gateway, http, params, fragment):
    status, body = await _logs(http, gateway, **params)
    assert status == 400 and fragment in body["error"]


async def test_repeated_parameters_are_refused(gateway, http):
    async with http.get(gateway.u("/api/logs?status=200&status=500"), headers=bearer(ADMIN_KEY)) as r:
        assert r.status == 400 and "more than once" in (await r.json())["error"]


async def test_cli_stats_prints_the_same_numbers(gateway, http, seeded, database_url):
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET}
    result = await asyncio.to_thread(run_cli, "stats", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == (await _stats(http, gateway, ADMIN_KEY))[1]

    table = await asyncio.to_thread(run_cli, "stats", "--key", str(seeded["user"]), env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert f"usage of key {seeded['user']}" in lines[0]
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[1:3] == ["40", "5"]  # requests, errors
    assert any(line.startswith("qwen3:0.6b") for line in lines)

    assert "--since" in (await asyncio.to_thread(run_cli, "stats", "--help", env={})).stdout
    bad = await asyncio.to_thread(run_cli, "stats", "--since", "soon", env=env)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
    backwards = await asyncio.to_thread(run_cli, "stats", "--since", "2025-02-01", "--until", "2025-01-01", env=env)
    assert backwards.returncode == 1 and "after until" in backwards.stderr and "Traceback" not in backwards.stderr


async def test_tokens_used_today_come_from_the_rollups(gateway, seeded):
    used = await tokens_used_today(gateway.app[POOL], NOW.date())
    assert used == {seeded["user"]: 30 * 16, seeded["admin"]: 0}  # yesterday's qwen3 tokens do not count
    assert await tokens_used_today(gateway.app[POOL], NOW.date() + timedelta(days=1)) == {}
