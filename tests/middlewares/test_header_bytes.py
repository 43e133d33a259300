"""Any byte in a header the gateway reads: a 4xx or the normal answer, never a 500 or a traceback.

Raw sockets, since an HTTP client library refuses to send most of these values.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid

import pytest

from tests.support.factories import ADMIN_KEY, RecordingSink, make_settings, start_gateway
from tests.support.logs import problems

# Bytes that are not UTF-8, or are UTF-8 but not ASCII. (NUL and other control characters never get
# this far: aiohttp's parser answers 400 itself, logged as one line by logging_setup.ClientErrorFilter.)
GARBAGE = {
    "high bytes": b"\x80\x9f\xff\xfe",
    "lone continuation bytes": b"abc\x80\xbfdef",
    "overlong utf-8": b"\xc0\xaf\xe0\x80\xaf",
    "latin-1 text": "d\xe9j\xe0-vu".encode("latin-1"),
    "valid utf-8, not ascii": "clé-ü-😀".encode(),
}
CHAT = b'{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}'
# (method, path, body): a public route, a pass-through, the OpenAI one, admin routes, token exchange.
ROUTES = [
    (b"GET", b"/health", b""),
    (b"GET", b"/api/tags", b""),
    (b"POST", b"/v1/chat/completions", CHAT),
    (b"GET", b"/api/keys", b""),
    (b"GET", b"/metrics", b""),
    (b"POST", b"/api/auth/token", b""),
]
PUBLIC = {b"/health"}
PASSED_THROUGH = {b"/api/tags", b"/v1/chat/completions"}


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake):
    sink = RecordingSink()
    settings = make_settings(
        database_url,
        ollama_base_url=fake.make_url(""),
        cors_origins=("*",),
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
        metrics_token="m" * 32,
    )
    gw = await start_gateway(aiohttp_server, settings, sink=sink)
    gw.sink = sink
    return gw


async def send(port: int, method: bytes, path: bytes, headers: list[bytes], body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [
        method + b" " + path + b" HTTP/1.1",
        b"Host: gateway",
        b"Connection: close",
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        *headers,
    ]
    writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize(
    "template",
    [
        b"Authorization: Bearer %s",
        b"Authorization: %s",
        b"x-api-key: %s",
        b"x-api-key: olg_%s",
        b"Authorization: Bearer olt_%s.x",
    ],
)
async def test_undecodable_credentials_get_the_plain_401(gateway, caplog, template, garbage):
    caplog.set_level(logging.INFO)
    for method, path, body in ROUTES:
        status, rest = await send(gateway.server.port, method, path, [template % garbage], body)
        assert status == (200 if path in PUBLIC else 401), (path, rest)
    assert not problems(caplog)
    # The credential never reaches a log line, decoded or not.
    assert not any("\udc80" in r.getMessage() or "olg_" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize(
    "name", [b"X-Request-ID", b"X-Forwarded-For", b"X-Real-IP", b"Origin", b"Access-Control-Request-Headers", b"Accept"]
)
async def test_other_headers_with_any_bytes_are_ignored(gateway, caplog, name, garbage):
    """The gateway's own routes ignore such a value; the pass-through, which would have to send it on to
    Ollama changed (it cannot re-encode bytes that are not UTF-8), refuses it with a 400 naming the header."""
    caplog.set_level(logging.INFO)
    auth = b"Authorization: Bearer " + ADMIN_KEY.encode()
    utf8 = _is_utf8(garbage)
    for method, path, body in ROUTES:
        status, rest = await send(gateway.server.port, method, path, [auth, name + b": " + garbage], body)
        if path in PASSED_THROUGH and not utf8 and name != b"Origin":  # CORS is the gateway's, never forwarded
            assert status == 400 and name.lower() in rest.lower(), (path, rest)
        else:
            assert status < 300, (path, rest)
        assert garbage not in rest  # never echoed: not as a request id, nor as an allowed origin
    # A preflight from such an origin (or asking for such headers) grants nothing with it either.
    status, rest = await send(
        gateway.server.port,
        b"OPTIONS",
        b"/api/chat",
        [b"Origin: https://app.example", b"Access-Control-Request-Method: POST", name + b": " + garbage],
    )
    assert status < 500 and garbage not in rest
    assert not problems(caplog)
    records = [r for r in gateway.sink.records if r.endpoint != "/api/chat"]
    assert records and all(r.client_ip == "127.0.0.1" for r in records)  # the peer, not the garbage
    assert all(isinstance(r.id, uuid.UUID) for r in records)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def test_garbage_in_x_forwarded_for_falls_back_to_the_trusted_peer(gateway):
    await send(gateway.server.port, b"GET", b"/health", [b"X-Forwarded-For: 203.0.113.9, \xff\xfe"])
    await send(gateway.server.port, b"GET", b"/health", [b"X-Forwarded-For: \xc0\xaf, 203.0.113.9"])
    assert [r.client_ip for r in gateway.sink.records] == ["127.0.0.1", "203.0.113.9"]
