"""The errors middleware: a lost database is a 503, and a failure mid-stream cuts the connection."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from proxy.app import create_app
from proxy.cli.server import RUNNER_OPTIONS
from proxy.errors import GatewayError
from proxy.keys.events import KEY_EVENTS
from tests.support.factories import ADMIN_KEY, RecordingSink, bearer, make_settings, start_gateway
from tests.support.tcp_proxy import TcpProxy


async def test_a_lost_database_is_a_503_with_retry_after_and_no_traceback(
    aiohttp_server, database_url, db, http, caplog
):
    proxy, dsn = await TcpProxy.to_dsn(database_url)
    try:
        gateway = await start_gateway(aiohttp_server, make_settings(dsn), sink=RecordingSink())
        # The key change listener flushes the cache when it connects: prime it only after that.
        async with asyncio.timeout(60):
            await gateway.app[KEY_EVENTS].connected.wait()
        async with http.get(gateway.u("/api/keys"), headers=bearer(ADMIN_KEY)) as r:
            assert r.status == 200  # and the admin key is now cached: auth needs no database
        await proxy.cut()
        caplog.set_level(logging.WARNING)
        for path in ("/api/keys", "/api/stats", "/api/logs"):
            async with http.get(gateway.u(path), headers=bearer(ADMIN_KEY)) as r:
                assert r.status == 503, (path, await r.text())
                assert r.content_type == "application/json"
                assert await r.json() == {"error": "database unavailable; try again shortly"}
                assert r.headers["Retry-After"] == "5"
        lines = [rec for rec in caplog.records if rec.name == "proxy.middlewares.errors"]
        assert lines and all(rec.levelno == logging.WARNING and rec.exc_info is None for rec in lines)
        assert "database unavailable" in lines[0].getMessage()
    finally:
        await proxy.close()


FIRST_LINE = b'{"n": 1}\n'
CHUNK_READ = web.AppKey("chunk_read", asyncio.Queue)


async def _breaks_mid_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(FIRST_LINE)
    await request.app[CHUNK_READ].get()  # the client has the chunk: the failure cannot discard it
    failure = request.query["raise"]
    if failure == "gateway":
        raise GatewayError(502, "upstream went away")
    if failure == "http":
        raise web.HTTPBadGateway()
    raise RuntimeError("a bug after the headers left")


async def _ollama_refuses(request: web.Request) -> web.StreamResponse:
    # What a connection to Ollama raises when nothing listens there, had no handler caught it.
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 11434)")


@pytest.fixture
async def breaking_gateway(aiohttp_server, database_url, db, sink):
    app = create_app(make_settings(database_url), sink=sink)
    app.router.add_get("/test/breaks-mid-stream", _breaks_mid_stream)  # test only, added before startup
    app[CHUNK_READ] = asyncio.Queue()
    app.router.add_get("/test/ollama-refuses", _ollama_refuses)
    options = {k: v for k, v in RUNNER_OPTIONS.items() if k != "handler_cancellation"}
    return await aiohttp_server(app, **options)


async def _raw_get(server, path: str) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n".encode())
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            head = await reader.readuntil(FIRST_LINE)
            server.app[CHUNK_READ].put_nowait(None)
            return head + await reader.read(-1)  # until the server closes the connection
    finally:
        writer.close()


@pytest.mark.parametrize("failure", ["gateway", "http", "unexpected"])
async def test_a_failure_after_the_headers_left_truncates_the_body(breaking_gateway, sink, http, failure):
    path = f"/test/breaks-mid-stream?raise={failure}"
    async with http.get(breaking_gateway.make_url(path), headers=bearer(ADMIN_KEY)) as r:
        assert r.status == 200
        assert await r.content.readline() == FIRST_LINE
        breaking_gateway.app[CHUNK_READ].put_nowait(None)
        with pytest.raises(aiohttp.ClientPayloadError):
            async with asyncio.timeout(5):
                await r.read()

    wire = await _raw_get(breaking_gateway, path)
    assert wire.count(b"HTTP/1.1 ") == 1, wire  # no second response inside the body
    assert FIRST_LINE in wire
    assert not wire.endswith(b"0\r\n\r\n"), wire  # never the clean end of a chunked body

    records = [rec for rec in sink.records if rec.endpoint == "/test/breaks-mid-stream"]
    assert len(records) == 2 and all(rec.error for rec in records)


async def test_an_os_error_from_elsewhere_is_a_bug_not_a_database_outage(breaking_gateway, http, caplog):
    caplog.set_level(logging.WARNING)
    async with http.get(breaking_gateway.make_url("/test/ollama-refuses"), headers=bearer(ADMIN_KEY)) as r:
        assert r.status == 500
        assert await r.json() == {"error": "internal gateway error"}
        assert "Retry-After" not in r.headers
    lines = [rec for rec in caplog.records if rec.name == "proxy.middlewares.errors"]
    assert [rec.levelno for rec in lines] == [logging.ERROR] and lines[0].exc_info is not None
