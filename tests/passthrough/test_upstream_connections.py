"""What Ollama sees of the gateway's connections: inference requests share keep-alive connections, carry
the Host of the node's URL and its credentials, and never the client's key."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.support.factories import USER_KEY, bearer, make_settings, start_gateway

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False}
ANSWER = {"model": "llama3.2", "message": {"role": "assistant", "content": "ok"}, "done": True, "eval_count": 2}


async def test_inference_requests_reuse_connections_and_carry_the_nodes_credentials(
    aiohttp_server, database_url, db, http
):
    seen: list[tuple[str | None, str | None, object]] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Authorization"), request.host, request.transport))
        assert await request.json() == CHAT
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    server = await aiohttp_server(app)
    node = f"http://ollama:secret@127.0.0.1:{server.port}"
    gateway = await start_gateway(aiohttp_server, make_settings(database_url, ollama_base_url=node))
    for _ in range(3):  # one after another: one connection
        async with http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY)) as r:
            assert r.status == 200 and (await r.json())["eval_count"] == 2
    answers = await asyncio.gather(
        *(http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY)) for _ in range(4))
    )
    assert [a.status for a in answers] == [200] * 4
    assert {auth for auth, _, _ in seen} == {"Basic b2xsYW1hOnNlY3JldA=="}  # never the client's bearer key
    assert {host for _, host, _ in seen} == {f"127.0.0.1:{server.port}"}
    assert len({id(transport) for _, _, transport in seen[:3]}) == 1
    assert len({id(transport) for _, _, transport in seen}) <= 4
