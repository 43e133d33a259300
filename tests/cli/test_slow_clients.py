"""Slow clients: a head or body sent too slowly ends the request, and `100 Continue` waits for the checks."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.factories import ADMIN_KEY, USER_KEY, bearer, make_settings, start_gateway
from tests.support.raw_http import exchange, status_of

HEAD_TIMEOUT = 0.5
CHAT = b'{"model": "llama3.2", "messages": [], "stream": false}'


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake, sink):
    settings = make_settings(
        database_url,
        ollama_base_url=fake.make_url(""),
        header_read_timeout=HEAD_TIMEOUT,
        body_idle_timeout=0.5,
        body_read_timeout=1.5,
        max_json_body_size=64 * 1024,
    )
    return await start_gateway(aiohttp_server, settings, sink=sink)


async def _connect(gateway):
    return await asyncio.open_connection(gateway.server.host, gateway.server.port)


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing; fails the test if it never closes."""
    async with asyncio.timeout(10):
        return await reader.read(-1)


def _chat_head(key: str = USER_KEY, *extra: bytes, length: int = len(CHAT)) -> bytes:
    return (
        b"\r\n".join(
            [
                b"POST /api/chat HTTP/1.1",
                b"Host: gateway",
                b"Authorization: Bearer " + key.encode(),
                b"Content-Length: %d" % length,
                *extra,
            ]
        )
        + b"\r\n\r\n"
    )


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(gateway):
    reader, writer = await _connect(gateway)
    head = _chat_head() + CHAT
    sent = 0
    try:
        while sent < len(head) and not reader.at_eof():
            writer.write(head[sent : sent + 1])
            sent += 1
            await asyncio.sleep(0.05)  # the client's pace, not a wait for the server
            await asyncio.wait([asyncio.ensure_future(reader.read(1))], timeout=0)  # notice the close
    except ConnectionError:
        pass
    assert sent < len(_chat_head()), "the whole head went through"
    assert await _closed(reader) == b""  # closed, no response
    writer.close()


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: g"])
async def test_a_connection_that_never_completes_its_head_is_closed(gateway, sent):
    reader, writer = await _connect(gateway)
    writer.write(sent)
    assert await _closed(reader) == b""
    writer.close()


async def test_an_idle_kept_alive_connection_is_not_cut_by_the_head_timeout(gateway):
    reader, writer = await _connect(gateway)
    request = b"GET /health HTTP/1.1\r\nHost: g\r\n\r\n"
    for _ in range(2):
        writer.write(request)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"}")
        await asyncio.sleep(HEAD_TIMEOUT * 2)  # idle between requests: keep-alive's business
    writer.close()


async def _key(http, gateway, **limits) -> str:
    async with http.post(gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "slow", **limits}) as r:
        return (await r.json())["key"]


@pytest.mark.parametrize("pace", ["stalls", "trickles"])
async def test_a_slow_body_gets_408_and_frees_the_keys_slot(gateway, http, sink, pace):
    key = await _key(http, gateway, max_concurrent=1)
    reader, writer = await _connect(gateway)
    writer.write(_chat_head(key, length=len(CHAT)) + CHAT[:5])
    if pace == "trickles":  # never silent for the idle timeout, but past the total one

        async def trickle():
            for byte in CHAT[5:-1]:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.2)

        trickling = asyncio.ensure_future(trickle())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert status_of(head) == 408, head
    if pace == "trickles":
        trickling.cancel()
    writer.close()
    async with http.post(gateway.u("/api/chat"), data=CHAT, headers=bearer(key)) as r:
        assert r.status == 200  # the one concurrency slot is free again
    assert any(rec.status_code == 408 for rec in sink.records)


async def _first_answer(gateway, head: bytes) -> bytes:
    reader, writer = await _connect(gateway)
    writer.write(head)
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()


EXPECT = b"Expect: 100-continue"


@pytest.mark.parametrize(
    "head",
    [
        b"POST /api/pull HTTP/1.1\r\nHost: g\r\nContent-Length: 20\r\n",  # an admin route
        b"POST /api/chat HTTP/1.1\r\nHost: g\r\nContent-Length: 20\r\nContent-Encoding: zstd\r\n",  # unreadable
    ],
    ids=["admin route", "compressed body"],
)
async def test_a_user_key_refused_by_route_is_never_invited_to_send_its_body(gateway, head):
    answer = await _first_answer(
        gateway, head + b"Authorization: Bearer " + USER_KEY.encode() + b"\r\n" + EXPECT + b"\r\n\r\n"
    )
    assert status_of(answer) in (400, 403)  # and not the 100 Continue a body would have followed


async def test_100_continue_comes_only_after_the_checks(gateway, http):
    reader, writer = await _connect(gateway)
    writer.write(_chat_head(USER_KEY, EXPECT))
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(CHAT)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert status_of(head) == 200
    writer.close()

    busy = await _key(http, gateway, max_concurrent=1)
    holder, holder_writer = await _connect(gateway)
    holder_writer.write(_chat_head(busy, EXPECT))  # holds the key's one slot, waiting to send its body
    assert await asyncio.wait_for(holder.readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
    refused = {
        "bad key": _chat_head("not-a-key-0123456789", EXPECT),
        "too large": _chat_head(USER_KEY, EXPECT, length=10 * 1024 * 1024),
        "over the key's concurrency": _chat_head(busy, EXPECT),
        "admin route, user key": b"POST /api/keys HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer %s\r\n"
        b"Content-Length: 20\r\n%s\r\n\r\n" % (USER_KEY.encode(), EXPECT),
    }
    for name, request in refused.items():
        first = await _first_answer(gateway, request)
        assert first.startswith(b"HTTP/1.1 4"), (name, first)
        assert b"100 Continue" not in first, name
    holder_writer.close()


async def test_an_admin_body_also_waits_for_its_invitation(gateway):
    body = json.dumps({"name": "later"}).encode()
    reader, writer = await _connect(gateway)
    writer.write(
        b"POST /api/keys HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n%s\r\n"
        b"Content-Type: application/json\r\n\r\n" % (ADMIN_KEY.encode(), len(body), EXPECT)
    )
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    assert status_of(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)) == 201
    writer.close()


UNKNOWN_EXPECTATIONS = [b"magic", b"\xffmagic", b"100-continue, foo", b"\xc0\xaf", b""]


@pytest.mark.parametrize("expect", UNKNOWN_EXPECTATIONS)
@pytest.mark.parametrize(
    "head",
    [
        lambda expect: _chat_head(USER_KEY, b"Expect: " + expect),  # pass-through, keyed
        lambda expect: b"GET /health HTTP/1.1\r\nHost: g\r\nExpect: " + expect + b"\r\n\r\n",  # public
        lambda expect: b"GET /nowhere HTTP/1.1\r\nHost: g\r\nExpect: " + expect + b"\r\n\r\n",  # no route
        lambda expect: b"PROPFIND /api/keys HTTP/1.1\r\nHost: g\r\nExpect: " + expect + b"\r\n\r\n",  # no method
    ],
    ids=["chat", "health", "404", "405"],
)
async def test_an_unknown_expectation_is_ignored_and_the_request_served_as_usual(gateway, sink, head, expect):
    """RFC 9110 §10.1.1 lets a server ignore an expectation it does not know: the request goes down the
    chain like any other (its answer, its id, its row), never a 417 or 500 from before the middlewares."""
    request = head(expect)
    response = await exchange(gateway.server, request.rstrip(b"\r\n"), CHAT if b"/api/chat" in request else b"")
    assert status_of(response) in (200, 401)  # no route and no method still ask for a key first
    assert b"X-Request-ID" in response
    assert len(sink.records) == 1
