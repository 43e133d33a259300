"""The repository's nginx.conf run by a real nginx, in front of the real gateway and the fake Ollama."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import socket

import aiohttp
import pytest

from tests.support.factories import ADMIN_KEY, USER_KEY, RecordingSink, bearer, make_settings, start_gateway
from tests.support.fake_ollama import FAKE_STATE
from tests.support.nginx_process import NGINX, SKIP_REASON, running_nginx
from tests.support.pacing import assert_paced, line_arrivals
from tests.support.polling import wait_until
from tests.support.ports import free_port

pytestmark = pytest.mark.skipif(NGINX is None, reason=SKIP_REASON)

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
NGINX_ADDRESS = "127.0.0.1"  # where nginx connects to the gateway from
# The test client connects from a second loopback address, so that the client nginx sees is not
# itself a trusted proxy (on one machine both would otherwise be 127.0.0.1).
CLIENT_ADDRESS = "127.0.0.2"
FORGED = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.7"}


def _can_bind(address: str) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake, sink):
    settings = make_settings(
        database_url,
        ollama_base_url=fake.make_url(""),
        trusted_proxies=(ipaddress.ip_network(f"{NGINX_ADDRESS}/32"),),
        max_body_size=64 * 1024**2,
    )
    return await start_gateway(aiohttp_server, settings, sink=sink)


@pytest.fixture
async def nginx(gateway, tmp_path):
    async with running_nginx(tmp_path, upstream=f"127.0.0.1:{gateway.server.port}") as url:
        yield url


@pytest.fixture
async def http_from_client_address():
    if not _can_bind(CLIENT_ADDRESS):
        pytest.skip(f"cannot bind {CLIENT_ADDRESS} (only Linux routes all of 127/8 to loopback)")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(CLIENT_ADDRESS, 0))) as session:
        yield session


async def test_stream_lines_arrive_paced_through_nginx(nginx, fake, http):
    interval = 0.1
    fake.app[FAKE_STATE].token_interval = interval
    arrivals = await line_arrivals(http, f"{nginx}/api/chat", json=CHAT, headers=bearer(USER_KEY))
    assert_paced(arrivals, interval)


async def test_a_20_mb_image_is_answered(nginx, fake, http):
    image = base64.b64encode(os.urandom(15 * 1024**2)).decode()  # 20 MiB of base64
    body = {**CHAT, "stream": False, "messages": [{**CHAT["messages"][0], "images": [image]}]}
    async with http.post(f"{nginx}/api/chat", json=body, headers=bearer(USER_KEY)) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["done"] is True
    received = [req for req in fake.app[FAKE_STATE].requests if req.path == "/api/chat"]
    assert received[-1].json_body["messages"][0]["images"] == [image]


async def test_bad_key_and_rate_limit_answers_pass_through_as_json(nginx, http):
    async with http.post(f"{nginx}/api/chat", json=CHAT, headers=bearer("olg_not-a-real-key")) as r:
        assert r.status == 401
        assert r.content_type == "application/json" and "error" in await r.json()

    async with http.post(
        f"{nginx}/api/keys", headers=bearer(ADMIN_KEY), json={"name": "one-a-time", "rate_limit": 1, "burst": 1}
    ) as r:
        assert r.status == 201, await r.text()
        key = (await r.json())["key"]
    async with http.post(f"{nginx}/api/chat", json={**CHAT, "stream": False}, headers=bearer(key)) as r:
        assert r.status == 200
    async with http.post(f"{nginx}/api/chat", json={**CHAT, "stream": False}, headers=bearer(key)) as r:
        assert r.status == 429
        assert int(r.headers["Retry-After"]) > 0 and "RateLimit" in r.headers
        assert r.content_type == "application/json" and "error" in await r.json()


async def test_forged_forwarding_headers_never_become_the_client_address(
    aiohttp_server, database_url, gateway, nginx, sink, http, http_from_client_address
):
    async def recorded_address(session, url):
        async with session.get(url, headers={**bearer(USER_KEY), **FORGED}) as r:
            assert r.status == 200
            request_id = r.headers["X-Request-ID"]
        [record] = [rec for rec in sink.records if str(rec.id) == request_id]
        return record.client_ip

    # Straight to a gateway that trusts no proxy: the socket peer, whatever the headers say.
    untrusting_sink = RecordingSink()
    untrusting = await start_gateway(aiohttp_server, make_settings(database_url), sink=untrusting_sink)
    async with http.get(untrusting.u("/health"), headers=FORGED) as r:
        assert r.status == 200
    assert [rec.client_ip for rec in untrusting_sink.records] == ["127.0.0.1"]

    # Straight to the gateway that trusts nginx's address, from another one: still the peer.
    assert await recorded_address(http_from_client_address, gateway.u("/api/tags")) == CLIENT_ADDRESS
    # Through nginx: the address nginx saw (its $remote_addr), not the forged hop before it.
    assert await recorded_address(http_from_client_address, f"{nginx}/api/tags") == CLIENT_ADDRESS


@pytest.mark.parametrize("stream", [True, False])
async def test_client_gone_through_nginx_closes_the_upstream(nginx, fake, http, stream):
    state = fake.app[FAKE_STATE]
    state.token_interval = 0.2
    body = {**CHAT, "model": "llama3.2" if stream else "hang", "stream": stream}
    if stream:
        response = await http.post(f"{nginx}/api/chat", json=body, headers=bearer(USER_KEY))
        await response.content.readline()
        response.close()
    else:
        # Nothing ever comes back from `hang`, so nginx has nothing to write that would fail:
        # only proxy_ignore_client_abort off makes it notice the client leaving.
        waiting = asyncio.create_task(http.post(f"{nginx}/api/chat", json=body, headers=bearer(USER_KEY)))
        await wait_until(lambda: state.active == 1, "the request reached Ollama")
        waiting.cancel()
    # nginx closes its upstream, the gateway cancels, and so on to Ollama; otherwise the fake
    # would generate for nobody (or wait forever, for `hang`).
    assert await state.wait_cancelled(timeout=3.0)


async def test_gateway_down_is_a_json_502(tmp_path, http):
    async with running_nginx(tmp_path, upstream=f"127.0.0.1:{free_port()}") as url:
        async with http.get(f"{url}/api/tags") as r:
            assert r.status == 502
            assert r.content_type == "application/json" and "error" in await r.json()
