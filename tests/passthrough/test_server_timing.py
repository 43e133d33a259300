"""Server-Timing on proxied answers: the gateway's time and Ollama's, streamed answers included."""

from __future__ import annotations

import re

import aiohttp
import pytest

from tests.support.factories import USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_ollama import FAKE_STATE

TIMING = re.compile(r"gw;dur=(\d+\.\d+), upstream;dur=(\d+\.\d+)")


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake):
    return await start_gateway(aiohttp_server, make_settings(database_url, ollama_base_url=fake.make_url("")))


async def test_streamed_and_buffered_answers_report_both_durations(gateway, fake):
    fake.app[FAKE_STATE].token_interval = 0.05
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        for stream in (True, False):
            async with http.post(gateway.u("/api/chat"), json={**body, "stream": stream},
                                 headers=bearer(USER_KEY)) as r:
                match = TIMING.fullmatch(r.headers["Server-Timing"])
                assert match, r.headers["Server-Timing"]
                await r.read()
        async with http.get(gateway.u("/health")) as r:
            assert "Server-Timing" not in r.headers  # not proxied: nothing upstream to report


async def test_headers_leave_before_the_generation_ends(gateway, fake):
    # The header reports time to Ollama's headers only, so a slow generation does not show in it.
    fake.app[FAKE_STATE].token_interval = 0.2
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.u("/api/generate"), json={"model": "llama3.2", "prompt": "hi"},
                             headers=bearer(USER_KEY)) as r:
            gw, upstream = map(float, TIMING.fullmatch(r.headers["Server-Timing"]).groups())
            await r.read()
    assert gw >= 0 and upstream >= 0
