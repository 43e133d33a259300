"""After a restart, today's token counts come back from the usage rollups before the first request."""

from __future__ import annotations

import datetime
import logging
import time
import uuid

import aiohttp
import asyncpg
import pytest

from proxy.db.errors import unavailable_on_outage
from proxy.request_log.quota_seed import quota_seed_context
from proxy.state import KEY_LIMITER
from tests.support.factories import ADMIN_KEY, bearer, make_settings, start_gateway
from tests.support.fake_clock import FakeClock
from tests.support.fake_ollama import create_fake_ollama

# The fake counts prompt words + 10 prompt tokens and num_predict completion tokens: 11 + 5 = 16.
GENERATE_16_TOKENS = {"model": "llama3.2", "prompt": "hi", "stream": False, "options": {"num_predict": 5}}


@pytest.fixture
async def settings(aiohttp_server, database_url, db, tmp_path):
    fake = await aiohttp_server(create_fake_ollama())
    # The real usage log writer runs here: its journal goes to a scratch data dir.
    return make_settings(database_url, ollama_base_url=fake.make_url(""), data_dir=tmp_path)


async def _generate(http, gateway, key) -> int:
    async with http.post(gateway.u("/api/generate"), headers=bearer(key), json=GENERATE_16_TOKENS) as r:
        return r.status


async def test_a_restarted_gateway_keeps_todays_token_count(aiohttp_server, settings):
    # Records are stamped with the real date, so the limits' clock is the real time (frozen).
    clock = FakeClock(time.time())
    first = await start_gateway(aiohttp_server, settings, limits_clock=clock)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            first.u("/api/keys"),
            headers=bearer(ADMIN_KEY),
            json={"name": "q", "rate_limit": 3600, "tokens_per_day": 40},
        ) as r:
            key = (await r.json())["key"]
        assert [await _generate(http, first, key) for _ in range(2)] == [200, 200]  # 32 tokens
        await first.server.close()  # a clean stop: the writer drains to PostgreSQL

        second = await start_gateway(aiohttp_server, settings, limits_clock=clock)
        assert [await _generate(http, second, key) for _ in range(2)] == [200, 429]  # 32 + 16 >= 40


async def test_the_seed_asks_for_the_limits_day_and_keeps_its_counts(aiohttp_server, settings):
    clock = FakeClock()
    key_id = uuid.uuid4()
    asked = []

    async def tokens_used_today(pool: asyncpg.Pool, day: datetime.date) -> dict[uuid.UUID, int]:
        assert await pool.fetchval("SELECT 1") == 1  # it is handed the live pool
        asked.append(day)
        return {key_id: 30}

    gateway = await start_gateway(aiohttp_server, settings, limits_clock=clock)
    # The context run by hand on the running app, with a stand-in for the rollup query.
    await quota_seed_context(tokens_used_today, clock=clock)(gateway.app).__anext__()
    assert asked == [datetime.date(2026, 11, 27)]
    assert (
        gateway.app[KEY_LIMITER]
        .admit(key_id, rate_per_hour=None, burst=None, max_concurrent=None, tokens_per_day=30, now=clock())
        .reason
        == "tokens"
    )


async def test_an_unreachable_rollup_does_not_stop_the_start(aiohttp_server, settings, caplog):
    async def failing(pool: asyncpg.Pool, day: datetime.date) -> dict[uuid.UUID, int]:
        with unavailable_on_outage():  # as the rollup query reports an outage
            raise asyncpg.PostgresConnectionError("gone")

    gateway = await start_gateway(aiohttp_server, settings)
    with caplog.at_level(logging.WARNING, logger="proxy.request_log.quota_seed"):
        await quota_seed_context(failing)(gateway.app).__anext__()
    assert "daily token counts not restored (PostgresConnectionError: gone)" in caplog.text
