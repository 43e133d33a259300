"""OLLAMA_READ_TIMEOUT bounds Ollama's silences only: not a client that reads slowly, not the time a large
body takes to send, and a client leaving mid-wait leaves the node's counters as they were."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from proxy.backends.registry import BACKENDS
from tests.support.factories import ADMIN_KEY, USER_KEY, bearer, make_settings, start_gateway
from tests.support.polling import wait_until

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": True}
LINE = b'{"model":"llama3.2","message":{"role":"assistant","content":"' + b"x" * 4000 + b'"},"done":false}\n'
LINES = 8000  # ~32 MB: more than the socket buffers on the way hold


async def _talkative(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    for _ in range(LINES):
        await response.write(LINE)  # as fast as the reader takes them: never silent on its own
    await response.write_eof(b'{"model":"llama3.2","done":true,"prompt_eval_count":1,"eval_count":2}\n')
    return response


async def _slow_reader(request: web.Request) -> web.Response:
    while await request.content.read(512 * 1024):  # a slow link to a remote node
        await asyncio.sleep(0.1)
    return web.json_response({"model": "llama3.2", "message": {"role": "assistant", "content": "ok"}, "done": True})


async def _upstream(aiohttp_server, path: str, handler) -> str:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(path, handler)
    return str((await aiohttp_server(app)).make_url(""))


async def test_a_client_that_pauses_reading_is_not_taken_for_a_silent_ollama(
    aiohttp_server, database_url, db, http, sink
):
    upstream = await _upstream(aiohttp_server, "/api/chat", _talkative)
    settings = make_settings(database_url, ollama_base_url=upstream, upstream_read_timeout=0.4)
    gateway = await start_gateway(aiohttp_server, settings, sink=sink)
    async with http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY)) as r:
        assert r.status == 200
        first = await r.content.read(1000)
        await asyncio.sleep(1.5)  # the client stops reading; the relay waits on it, Ollama on the relay
        rest = await r.read()
    assert len(first) + len(rest) == LINES * len(LINE) + 70
    await wait_until(lambda: sink.records and sink.records[-1].endpoint == "/api/chat", "the request recorded")
    assert sink.records[-1].error is None and sink.records[-1].completion_tokens == 2


async def test_a_large_body_sent_slowly_is_not_taken_for_a_silent_ollama(aiohttp_server, database_url, db, http):
    upstream = await _upstream(aiohttp_server, "/api/chat", _slow_reader)
    settings = make_settings(database_url, ollama_base_url=upstream, upstream_read_timeout=2.0)
    gateway = await start_gateway(aiohttp_server, settings)
    big = {**CHAT, "stream": False, "messages": [{"role": "user", "content": "x" * (24 * 1024 * 1024)}]}
    headers = {**bearer(ADMIN_KEY), "Content-Type": "application/json"}
    async with http.post(gateway.u("/api/chat"), data=json.dumps(big), headers=headers) as r:
        assert r.status == 200, await r.text()  # ~5 s to send at ~5 MB/s, past the 2 s read timeout


async def test_a_client_leaving_while_ollama_thinks_leaves_no_request_on_the_node(
    aiohttp_server, database_url, db, fake, http
):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), upstream_read_timeout=30)
    gateway = await start_gateway(aiohttp_server, settings)
    node = gateway.app[BACKENDS].single
    hang = {**CHAT, "model": "hang"}
    try:
        async with asyncio.timeout(0.5):
            await http.post(gateway.u("/api/chat"), json=hang, headers=bearer(USER_KEY))
    except TimeoutError:
        pass  # the client gave up waiting and closed its connection
    await wait_until(lambda: node.in_flight == 0, "the node's attempt ended")
    assert node.breaker.available()
