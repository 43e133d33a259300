"""Server-Timing on proxied answers: the gateway's time and Ollama's, streamed answers included."""

from __future__ import annotations

import re
import time

import aiohttp
import pytest

from tests.support.factories import USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_ollama import FAKE_STATE, REPLY_TOKENS

TIMING = re.compile(r"gw;dur=(\d+\.\d+), upstream;dur=(\d+\.\d+)")
# Each duration is printed to 0.01 ms, so one may read up to 0.005 ms off the time it stands for.
ROUNDING_MS = 0.005
CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake):
    return await start_gateway(aiohttp_server, make_settings(database_url, ollama_base_url=fake.make_url("")))


def durations(response: aiohttp.ClientResponse) -> tuple[float, float]:
    match = TIMING.fullmatch(response.headers["Server-Timing"])
    assert match, response.headers["Server-Timing"]
    gw, upstream = map(float, match.groups())
    return gw, upstream


async def test_both_durations_fit_inside_what_the_client_waited(gateway, fake):
    # The gateway's clock starts when the request arrives and stops when Ollama's headers are in;
    # the client's starts before it sends and stops once those headers have reached it.
    async with aiohttp.ClientSession() as http:
        for stream in (True, False):
            sent = time.time()
            async with http.post(
                gateway.u("/api/chat"), json={**CHAT, "stream": stream}, headers=bearer(USER_KEY)
            ) as r:
                waited_ms = (time.time() - sent) * 1000
                gw, upstream = durations(r)
                assert gw + upstream <= waited_ms + 2 * ROUNDING_MS, (stream, gw, upstream, waited_ms)
                await r.read()
        async with http.get(gateway.u("/health")) as r:
            assert "Server-Timing" not in r.headers  # not proxied: nothing upstream to report


async def test_a_buffered_answer_counts_the_whole_generation_as_upstream(gateway, fake):
    # Without streaming, Ollama's headers wait for the last token: the fake sleeps token_interval
    # before each one, so upstream cannot be shorter than all those sleeps together.
    interval = fake.app[FAKE_STATE].token_interval = 0.02
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.u("/api/chat"), json={**CHAT, "stream": False}, headers=bearer(USER_KEY)) as r:
            _, upstream = durations(r)
            await r.read()
    assert upstream >= len(REPLY_TOKENS) * interval * 1000 - ROUNDING_MS


async def test_headers_leave_before_the_generation_ends(gateway, fake):
    # `quiet` sends Ollama's headers and then nothing, ever: the timing still reaches the client,
    # so it measures the time to Ollama's headers and never waits for the generation.
    async with aiohttp.ClientSession() as http:
        async with http.post(
            gateway.u("/api/generate"), json={"model": "quiet", "prompt": "hi"}, headers=bearer(USER_KEY)
        ) as r:
            assert r.status == 200
            durations(r)
            assert not r.content.at_eof()
