"""What Ollama sees of the gateway's connections: inference requests share keep-alive connections, carry
the Host of the node's URL and its credentials, and never the client's key."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from proxy.passthrough.keepalive_client import KeepAliveClient
from tests.support.factories import USER_KEY, bearer, make_settings, start_gateway

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False}
ANSWER = {"model": "llama3.2", "message": {"role": "assistant", "content": "ok"}, "done": True, "eval_count": 2}


@pytest.fixture
def sent(monkeypatch) -> list[str]:
    """The paths the keep-alive client sent: proof the requests took it, not the session."""
    paths: list[str] = []
    request = KeepAliveClient.request

    async def counted(self, method, url, headers, body):
        paths.append(url.path)
        return await request(self, method, url, headers, body)

    monkeypatch.setattr(KeepAliveClient, "request", counted)
    return paths


async def test_inference_requests_reuse_connections_and_carry_the_nodes_credentials(
    aiohttp_server, database_url, db, http, sent
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
    assert sent == ["/api/chat"] * 7


@pytest.mark.parametrize(
    "head", [b"HTTP/1.1 twohundred OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}"]
)
async def test_a_node_that_answers_garbage_is_a_502_as_an_unreachable_one(
    aiohttp_server, database_url, db, http, sent, head
):
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        await writer.drain()
        writer.close()

    bad = await asyncio.start_server(garbage, "127.0.0.1", 0)
    bad_url = f"http://127.0.0.1:{bad.sockets[0].getsockname()[1]}"
    try:
        gateway = await start_gateway(aiohttp_server, make_settings(database_url, ollama_base_url=bad_url))
        async with http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY)) as r:
            assert r.status == 502 and (await r.json())["error"] == "Ollama is unreachable"
    finally:
        bad.close()
    assert sent == ["/api/chat"]
