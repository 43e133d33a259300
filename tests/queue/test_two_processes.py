"""Node capacity over several gateway processes: slots leased through the limit ledger (sql/007)."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from tests.ledger.test_two_hosts import start_hosts, stop
from tests.support.factories import ADMIN_KEY, bearer
from tests.support.fake_nodes import backends_file, start_nodes
from tests.support.polling import eventually

BODY = {"model": "llama3.2", "prompt": "why", "stream": False}


@pytest.fixture
async def node():
    [running] = await start_nodes({"gpu1": (["llama3.2:latest"], ["llama3.2:latest"])})
    running.state.token_interval = 0.01
    yield running
    await running.stop()


async def test_two_serve_processes_never_send_a_node_of_capacity_2_more_than_2(tmp_path, database_url, db, node):
    path = backends_file(tmp_path, [node], capacity=2)
    hosts = await start_hosts(tmp_path, database_url, db, node.url, processes=2, OLLAMA_BACKENDS=str(path))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            async with http.post(f"{hosts[0][1]}/api/keys", headers=bearer(ADMIN_KEY), json={"name": "q"}) as r:
                key = (await r.json())["key"]

            async def one(url: str, model: str = "llama3.2") -> int:
                body = {**BODY, "model": model}
                async with http.post(f"{url}/api/generate", json=body, headers=bearer(key)) as response:
                    await response.read()
                    return response.status

            statuses = await asyncio.gather(*(one(hosts[i % 2][1]) for i in range(60)))
            assert statuses == [200] * 60
            assert node.state.peak_active == 2  # busy to its capacity, never past it

            # A process killed while its requests hold both of the node's slots: the sweeper reclaims
            # them (no heartbeat for HOLDER_TIMEOUT_SECONDS), and the other process's request is served.
            hung = [asyncio.create_task(one(hosts[0][1], "hang")) for _ in range(2)]
            await eventually(lambda: db.fetchval("SELECT coalesce(sum(slots), 0) = 2 FROM node_slots"), "held")
            await eventually(lambda: _true(node.state.active == 2), "both hang on the node")
            hosts[0][0].send_signal(signal.SIGKILL)
            assert await one(hosts[1][1]) == 200
            for task in hung:
                task.cancel()
    finally:
        stop(hosts)


async def _true(value: bool) -> bool:
    return value


async def test_each_process_shows_what_every_process_has_under_way_and_waiting(tmp_path, database_url, db, node):
    path = backends_file(tmp_path, [node], capacity=2)
    hosts = await start_hosts(tmp_path, database_url, db, node.url, processes=2, OLLAMA_BACKENDS=str(path))
    (_, host_a, _), (_, host_b, _) = hosts
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            async with http.post(f"{host_a}/api/keys", headers=bearer(ADMIN_KEY), json={"name": "busy"}) as r:
                key = (await r.json())["key"]

            async def hang() -> None:
                async with http.post(f"{host_a}/api/generate", json={**BODY, "model": "hang"}, headers=bearer(key)):
                    pass

            async def seen_from(url: str) -> dict:
                async with http.get(f"{url}/api/backends", headers=bearer(ADMIN_KEY)) as response:
                    assert response.status == 200
                    return await response.json()

            # Host A: two requests on the node (its capacity) and three waiting for it; host B: none.
            waiting = [asyncio.create_task(hang()) for _ in range(5)]
            await eventually(lambda: _true(node.state.active == 2), "two on the node")

            async def b_sees_a() -> bool:
                data = await seen_from(host_b)
                [gpu1] = data["backends"]
                return (data["processes"], gpu1["in_flight_all"], gpu1["queued_all"]) == (2, 2, 3)

            await eventually(b_sees_a, "host B shows host A's requests (after A's next heartbeat)")
            [gpu1] = (await seen_from(host_b))["backends"]
            assert (gpu1["in_flight"], gpu1["queued"]) == (0, 0)  # B's own
            [gpu1] = (await seen_from(host_a))["backends"]
            assert (gpu1["in_flight"], gpu1["queued"], gpu1["in_flight_all"], gpu1["queued_all"]) == (2, 3, 2, 3)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            await eventually(lambda: _all_idle(seen_from, host_b), "all idle again")
    finally:
        stop(hosts)


async def _all_idle(seen_from, url: str) -> bool:
    [gpu1] = (await seen_from(url))["backends"]
    return (gpu1["in_flight_all"], gpu1["queued_all"]) == (0, 0)
