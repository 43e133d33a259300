"""The official OpenAI SDKs (Python, and openai-node when node is installed) against a limited key.

A 429 whose Retry-After outlasts every retry the SDK would make carries `x-should-retry: false`, so
the SDK surfaces the RateLimitError at once; a short wait leaves it out, so the SDK retries.
Attempts are counted in the usage records (one per request that reached the gateway).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import openai
import pytest

from proxy.errors import LONG_RETRY_AFTER
from tests.support.factories import ADMIN_KEY, bearer, make_settings, start_gateway
from tests.support.fake_clock import FakeClock

NODE_DIR = Path(__file__).parent / "node"
CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
HANG_CHECK = 30  # seconds: a hang check (the wait it guards against is hours), not a timing threshold


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake, sink):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""))
    return await start_gateway(aiohttp_server, settings, sink=sink, limits_clock=FakeClock())


async def limited_key(gateway, http, **limits) -> str:
    async with http.post(
        gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "limited", "rate_limit": 3600, **limits}
    ) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["key"]


async def spent_quota_key(gateway, http) -> str:
    """A key whose daily token quota the first chat used up: the next request waits for UTC midnight."""
    key = await limited_key(gateway, http, tokens_per_day=1)
    async with http.post(gateway.u("/v1/chat/completions"), headers=bearer(key), json=CHAT) as r:
        assert r.status == 200
    async with http.post(gateway.u("/v1/chat/completions"), headers=bearer(key), json=CHAT) as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) >= LONG_RETRY_AFTER
        assert r.headers["x-should-retry"] == "false"
    return key


def attempts(sink, records_before: int) -> int:
    return len(sink.records) - records_before


async def test_short_wait_429_lets_the_sdk_retry(gateway, http, sink):
    key = await limited_key(gateway, http, burst=1)  # one a second: the next one waits 1 s
    async with http.post(gateway.u("/v1/chat/completions"), headers=bearer(key), json=CHAT) as r:
        assert r.status == 200
    async with http.post(gateway.u("/v1/chat/completions"), headers=bearer(key), json=CHAT) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert "x-should-retry" not in r.headers
    before = len(sink.records)
    async with openai.AsyncOpenAI(base_url=gateway.u("/v1"), api_key=key, max_retries=1) as client:
        with pytest.raises(openai.RateLimitError):  # the limits' clock stands still, so the retry fails too
            await client.chat.completions.create(**CHAT)
    assert attempts(sink, before) == 2


async def test_python_sdk_gives_up_at_once_on_a_long_429(gateway, http, sink):
    key = await spent_quota_key(gateway, http)
    before = len(sink.records)
    async with openai.AsyncOpenAI(base_url=gateway.u("/v1"), api_key=key, max_retries=5) as client:
        with pytest.raises(openai.RateLimitError):
            await asyncio.wait_for(client.chat.completions.create(**CHAT), HANG_CHECK)
    assert attempts(sink, before) == 1


@pytest.fixture(scope="session")
def openai_node() -> Path:
    """openai-node as pinned in tests/clients/node/package.json, installed there on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the openai-node SDK")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.skip(f"npm install of openai-node failed (no registry?): {done.stderr.strip()[-300:]}")
    return NODE_DIR / "chat_once.mjs"


async def test_openai_node_gives_up_at_once_on_a_long_429(gateway, http, sink, openai_node):
    key = await spent_quota_key(gateway, http)
    before = len(sink.records)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(openai_node),
        cwd=openai_node.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": os.environ["PATH"], "GATEWAY_URL": gateway.u("/v1"), "GATEWAY_KEY": key},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), HANG_CHECK)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("openai-node kept waiting on a 429 it had been told not to retry")
    assert process.returncode == 0, err.decode()
    assert json.loads(out) == {"status": 429, "error": "RateLimitError"}
    assert attempts(sink, before) == 1
