"""A node killed (SIGKILL) under load, then restarted: real processes, real sockets."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.support.factories import ADMIN_KEY, USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_nodes import FakeNodeProcess, backends_file
from tests.support.polling import eventually

REQUESTS = 2000
KILL_AFTER = 500
OUT_WITHIN = 3.0  # seconds: the window for taking a dead node out
BACK_WITHIN = 10.0  # seconds: the window for taking a restarted node back


async def test_a_node_killed_under_load_costs_no_request_that_had_not_started_and_comes_back(
    aiohttp_server, database_url, db, tmp_path, http
):
    # db: no keys left by earlier tests, so the demo keys get this test's huge default limits.
    nodes = [FakeNodeProcess(name, ["llama3.2:latest"]) for name in ("gpu1", "gpu2", "gpu3")]
    for node in nodes:
        await node.start()
    try:
        settings = make_settings(
            database_url,
            ollama_backends=backends_file(tmp_path, nodes, capacity=16),
            default_rate_limit=10_000_000,
            default_burst=10_000_000,
        )
        gateway = await start_gateway(aiohttp_server, settings)

        async def view() -> dict:
            async with http.get(gateway.u("/api/backends"), headers=bearer(ADMIN_KEY)) as response:
                return {node["name"]: node for node in (await response.json())["backends"]}

        errors: list[str] = []
        cut_streams = 0
        started = asyncio.Event()
        done = 0
        gate = asyncio.Semaphore(8)

        async def one() -> None:
            nonlocal done, cut_streams
            body = {"model": "llama3.2", "prompt": "why is the sky blue", "stream": True}
            async with gate:
                try:
                    response = await http.post(gateway.u("/api/generate"), json=body, headers=bearer(USER_KEY))
                except aiohttp.ClientError as exc:
                    errors.append(f"before the answer: {exc!r}")
                    return
                try:
                    if response.status != 200:
                        errors.append(f"{response.status}: {await response.text()}")
                        return
                    try:
                        await response.read()
                    except aiohttp.ClientError:
                        cut_streams += 1  # it had started streaming: allowed to break
                finally:
                    response.release()
                    done += 1
                    if done == KILL_AFTER:
                        started.set()

        async def kill_busiest() -> tuple[FakeNodeProcess, float]:
            """Kill the node serving the load, while it does; how long until the gateway took it out."""
            await started.wait()
            seen = await view()
            victim = max(nodes, key=lambda node: seen[node.name]["requests"])
            await victim.kill()
            killed_at = time.monotonic()

            async def out() -> bool:
                return (await view())[victim.name]["status"] != "up"

            await eventually(out, "the dead node taken out")
            return victim, time.monotonic() - killed_at

        killer = asyncio.create_task(kill_busiest())
        await asyncio.gather(*(one() for _ in range(REQUESTS)))
        victim, out_after = await killer
        assert errors == [], errors[:5]
        assert out_after <= OUT_WITHIN
        await victim.start()
        restarted_at = time.monotonic()

        async def back() -> bool:
            return (await view())[victim.name]["status"] == "up"

        await eventually(back, "the restarted node back in rotation")
        assert time.monotonic() - restarted_at <= BACK_WITHIN
    finally:
        for node in nodes:
            if node.process is not None and node.process.returncode is None:
                await node.kill()
