"""The fair queue in the real gateway, in front of a real fake-Ollama node with a capacity."""

from __future__ import annotations

import asyncio
import statistics

import aiohttp
import pytest

from proxy.backends.registry import BACKENDS
from proxy.queue.gate import FAIR_QUEUE
from tests.support.factories import ADMIN_KEY, bearer, make_settings, start_gateway
from tests.support.fake_nodes import backends_file, start_nodes
from tests.support.polling import wait_until

MODEL = "llama3.2:latest"
BODY = {"model": "llama3.2", "prompt": "why is the sky blue", "stream": False}


@pytest.fixture(autouse=True)
async def _empty_tables(db):
    """Every test starts without keys: the demo keys then get this module's huge default limits."""
    yield


@pytest.fixture
async def node():
    [running] = await start_nodes({"gpu1": ([MODEL], [MODEL])})
    yield running
    await running.stop()


async def gateway_for(aiohttp_server, database_url, tmp_path, node, sink, *, capacity: int, **overrides):
    settings = make_settings(
        database_url,
        data_dir=tmp_path,
        ollama_backends=backends_file(tmp_path, [node], capacity=capacity),
        default_rate_limit=10_000_000,
        default_burst=10_000_000,
        **overrides,
    )
    return await start_gateway(aiohttp_server, settings, sink=sink)


async def new_key(http, gateway, **fields) -> tuple[str, str]:
    async with http.post(gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "k", **fields}) as r:
        made = await r.json()
        assert r.status == 201, made
    return made["key"], made["id"]


async def generate(http, gateway, key: str, model: str = "llama3.2") -> int:
    async with http.post(gateway.u("/api/generate"), json={**BODY, "model": model}, headers=bearer(key)) as r:
        await r.read()
        return r.status


def rows_of(sink, key_id: str, status: int = 200) -> list:
    return [r for r in sink.records if str(r.api_key_id) == key_id and r.status_code == status]


async def test_a_light_key_is_not_stuck_behind_a_flood_and_the_node_never_idles(
    aiohttp_server, database_url, tmp_path, node, http, sink
):
    node.state.token_interval = 0.02  # 100 ms a token in the issue; the same ratios, five times faster
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, node, sink, capacity=2)
    queue = gateway.app[FAIR_QUEUE]
    flood_key, flood_id = await new_key(http, gateway, max_queued=200)
    light_key, light_id = await new_key(http, gateway)
    [gpu1] = gateway.app[BACKENDS].nodes
    idle_while_waiting = []

    async def watch() -> None:  # work-conserving: whenever anyone waits, both slots are in use
        while True:
            if queue.waiting():
                used, _ = queue.slots(gpu1)
                if used < 2:
                    idle_while_waiting.append(used)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    flood = [asyncio.create_task(generate(http, gateway, flood_key)) for _ in range(200)]
    # The client session opens 100 connections at most: the rest of the flood waits in it.
    await wait_until(lambda: len(queue.waiting()) > 50, "the flood waits in the gateway")
    light = []
    for _ in range(8):  # one a second in the issue: one every five A service times here too
        light.append(await generate(http, gateway, light_key))
        await asyncio.sleep(0.2)
    assert light == [200] * 8
    assert set(await asyncio.gather(*flood)) == {200}
    watcher.cancel()

    flood_rows, light_rows = rows_of(sink, flood_id), rows_of(sink, light_id)
    service = statistics.median(r.response_time - (r.queue_ms or 0) for r in flood_rows)
    light_waits = [r.queue_ms or 0 for r in light_rows]
    # About one A service time at most (both slots may have just been taken): never behind the flood.
    assert max(light_waits) <= 2.5 * service, (light_waits, service)
    assert statistics.median(r.queue_ms or 0 for r in flood_rows) > 10 * service
    assert idle_while_waiting == []
    assert node.state.peak_active == 2  # the node was sent its capacity, never more


async def test_two_backlogged_keys_weighted_one_and_three_get_tokens_one_to_three(
    aiohttp_server, database_url, tmp_path, node, http, sink
):
    node.state.token_interval = 0.004
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, node, sink, capacity=2)
    light_key, light_id = await new_key(http, gateway, weight=1)
    heavy_key, heavy_id = await new_key(http, gateway, weight=3)
    stop = asyncio.Event()

    async def client(key: str) -> None:  # backlogged: always a request waiting
        while not stop.is_set():
            await generate(http, gateway, key)

    clients = [asyncio.create_task(client(k)) for k in (light_key, heavy_key) for _ in range(6)]
    queue = gateway.app[FAIR_QUEUE]
    await wait_until(lambda: len(rows_of(sink, light_id)) + len(rows_of(sink, heavy_id)) >= 400, "400 served")
    stop.set()
    await asyncio.gather(*clients)
    assert queue.waiting() == []

    def tokens(key_id: str) -> int:
        return sum(r.prompt_tokens + r.completion_tokens for r in rows_of(sink, key_id))

    ratio = tokens(heavy_id) / tokens(light_id)
    assert 3 * 0.9 <= ratio <= 3 * 1.1, ratio


async def test_past_the_deadline_a_503_with_retry_after_and_a_full_line_a_429(
    aiohttp_server, database_url, tmp_path, node, http, sink
):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, node, sink, capacity=1, queue_timeout=0.5)
    key, key_id = await new_key(http, gateway, max_queued=1)
    holder = asyncio.create_task(generate(http, gateway, key, model="hang"))  # holds the only slot
    await wait_until(lambda: node.state.active == 1, "the node busy")
    waiting = asyncio.create_task(http.post(gateway.u("/api/generate"), json=BODY, headers=bearer(key)))
    await wait_until(lambda: len(gateway.app[FAIR_QUEUE].waiting()) == 1, "one request waits")
    async with http.post(gateway.u("/api/generate"), json=BODY, headers=bearer(key)) as full:
        assert full.status == 429 and full.headers["Retry-After"] == "1"
        assert "max_queued" in (await full.json())["error"]
    async with await waiting as late:
        assert late.status == 503 and int(late.headers["Retry-After"]) >= 1
        assert "QUEUE_TIMEOUT" in (await late.json())["error"]
    holder.cancel()
    await wait_until(lambda: len(rows_of(sink, key_id, 503)) == 1, "the 503 logged")
    [row] = rows_of(sink, key_id, 503)
    assert row.queue_ms >= 500 and row.node is None
    assert rows_of(sink, key_id, 429)[0].queue_ms is None  # refused at once: it never waited
    assert sum(1 for r in node.state.requests if r.path == "/api/generate") == 1


async def test_a_client_that_leaves_while_waiting_leaves_the_line_and_never_reaches_the_node(
    aiohttp_server, database_url, tmp_path, node, http, sink
):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, node, sink, capacity=1)
    key, key_id = await new_key(http, gateway)
    holder = asyncio.create_task(generate(http, gateway, key, model="hang"))
    await wait_until(lambda: node.state.active == 1, "the node busy")
    async with aiohttp.ClientSession() as impatient:
        leaving = asyncio.create_task(impatient.post(gateway.u("/api/generate"), json=BODY, headers=bearer(key)))
        await wait_until(lambda: len(gateway.app[FAIR_QUEUE].waiting()) == 1, "one request waits")
        leaving.cancel()
    await wait_until(lambda: gateway.app[FAIR_QUEUE].waiting() == [], "the line is empty again")
    await wait_until(lambda: len(rows_of(sink, key_id, 499)) == 1, "the request logged as client closed")
    assert rows_of(sink, key_id, 499)[0].queue_ms > 0
    holder.cancel()
    await wait_until(lambda: node.state.active == 0, "the node idle")
    assert [r.json_body["model"] for r in node.state.requests if r.path == "/api/generate"] == ["hang"]
    assert await generate(http, gateway, key) == 200  # the slot came back


async def test_the_queue_shows_in_metrics_backends_and_stats(aiohttp_server, database_url, tmp_path, node, http, sink):
    gateway = await gateway_for(aiohttp_server, database_url, tmp_path, node, sink, capacity=1)
    key, key_id = await new_key(http, gateway)
    holder = asyncio.create_task(generate(http, gateway, key, model="hang"))
    await wait_until(lambda: node.state.active == 1, "the node busy")
    waiting = asyncio.create_task(generate(http, gateway, key))
    await wait_until(lambda: len(gateway.app[FAIR_QUEUE].waiting()) == 1, "one request waits")
    async with http.get(gateway.u("/api/backends"), headers=bearer(ADMIN_KEY)) as r:
        seen = await r.json()
    [gpu1] = seen["backends"]
    assert (gpu1["capacity_enforced"], gpu1["slots_in_use"], gpu1["queued"]) == (True, 1, 1)
    assert seen["queue"]["by_model"][0]["model"] == "llama3.2" and seen["queue"]["by_key"][0]["key_id"] == key_id
    async with http.get(gateway.u("/metrics"), headers=bearer(ADMIN_KEY)) as r:
        text = await r.text()
    assert f'ollama_gateway_key_queue_length{{key_id="{key_id}"}} 1.0' in text
    assert "ollama_gateway_queue_length{" in text
    holder.cancel()
    assert await waiting == 200
    async with http.get(gateway.u("/metrics"), headers=bearer(ADMIN_KEY)) as r:
        text = await r.text()
    assert f'ollama_gateway_key_queued_total{{key_id="{key_id}"}} 1.0' in text
    assert "ollama_gateway_queue_wait_seconds_count" in text
