"""Every header the pass-through reads may hold any bytes: a clear 4xx or a normal answer, never a 500."""

from __future__ import annotations

import logging

import pytest

from proxy.observability.logging_setup import ClientErrorFilter
from tests.support.factories import USER_KEY, make_settings, start_gateway
from tests.support.fake_ollama import FAKE_STATE
from tests.support.logs import assert_no_tracebacks
from tests.support.raw_http import exchange, status_of

CHAT = b'{"model": "llama3.2", "messages": [], "stream": false}'
AUTH = f"Authorization: Bearer {USER_KEY}".encode()


@pytest.fixture(autouse=True)
def client_error_filter():
    """As `serve` logs: aiohttp's rejections of malformed heads become one INFO line (logging_setup)."""
    server_log = logging.getLogger("aiohttp.server")
    log_filter = ClientErrorFilter()
    server_log.addFilter(log_filter)
    yield
    server_log.removeFilter(log_filter)


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake, sink):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""))
    return await start_gateway(aiohttp_server, settings, sink=sink)


def _chat_head(*extra: bytes, length: int | None = len(CHAT)) -> bytes:
    lines = [b"POST /api/chat HTTP/1.1", b"Host: gateway", AUTH, *extra]
    if length is not None:
        lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines)


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Type: application/json; charset=\xff\xfe",
        b"Content-Type: \x80\x81",
        b"Content-Encoding: \xff",
        b"Content-Encoding: identity\xa0",
        b"Expect: \xff100-continue",
        b"Expect: 100-continue\xff",
        b"X-Trace: caf\xe9",  # forwarded to Ollama: Latin-1 bytes, not UTF-8
        b"User-Agent: \xc3\x28",  # an invalid UTF-8 sequence
        b"X-Name: Z\xc3\xbcrich",  # valid UTF-8: forwarded as sent
        b"Connection: keep-alive, \xff",
        b"Transfer-Encoding: \xff",
        b"Transfer-Encoding: gzip, chunked",
        b"Content-Length: 5",  # a second, different length
        b"Content-Length: +52",
        b"Content-Length: 0x34",
        b"Transfer-Encoding: chunked",  # besides a Content-Length (request smuggling's favourite)
    ],
)
async def test_odd_header_bytes_on_a_json_route(gateway, caplog, header):
    response = await exchange(gateway.server, _chat_head(header), CHAT)
    status = status_of(response)
    assert status < 500, response[:300]
    assert status in (200, 400, 417), response[:300]
    assert_no_tracebacks(caplog)


MULTIPART = (
    b'--XX\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper\r\n'
    b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
    b"Content-Type: audio/wav\r\n\r\nRIFF\x00\xff\r\n--XX--\r\n"
)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (b"multipart/form-data; boundary=\xff\xfe", MULTIPART.replace(b"XX", b"\xff\xfe")),
        (b'multipart/form-data; boundary="\xc3\x28"', MULTIPART),
        (b"multipart/form-data", MULTIPART),  # no boundary
        (b"multipart/form-data; boundary=", MULTIPART),  # an empty one
        (b"multipart/form-data; boundary=YY", MULTIPART),  # one the body does not use
        (b"multipart/form-data; boundary=XX", MULTIPART[:70]),  # truncated
        (b"multipart/form-data; boundary=XX", b""),
        (b"text/plain", MULTIPART),
        (b"\xff/\xfe; boundary=XX", MULTIPART),
    ],
)
async def test_malformed_multipart_is_a_400(gateway, caplog, content_type, body):
    head = b"\r\n".join(
        [
            b"POST /v1/audio/transcriptions HTTP/1.1",
            b"Host: gateway",
            AUTH,
            b"Content-Type: " + content_type,
            b"Content-Length: %d" % len(body),
        ]
    )
    response = await exchange(gateway.server, head, body)
    assert status_of(response) == 400, response[:300]
    assert b'"invalid_request_error"' in response
    assert_no_tracebacks(caplog)


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (b"99999999999999999999999999", (400, 413)),  # past any integer size: refused, not parsed
        (b"-1", (400,)),
        (b"\xff", (400,)),
    ],
)
async def test_absurd_content_lengths(gateway, caplog, length, expected):
    response = await exchange(
        gateway.server, _chat_head(b"Content-Length: " + length, length=None), CHAT, head_only=True
    )
    assert status_of(response) in expected, response[:300]
    assert_no_tracebacks(caplog)


async def test_header_bytes_that_cannot_be_forwarded_as_sent_are_a_400(gateway, fake, caplog):
    response = await exchange(gateway.server, _chat_head(b"X-Trace: caf\xe9"), CHAT)
    assert status_of(response) == 400 and b"X-Trace" in response, response[:300]
    response = await exchange(gateway.server, _chat_head(b"X-Trace: Z\xc3\xbcrich"), CHAT)
    assert status_of(response) == 200
    assert fake.app[FAKE_STATE].requests[-1].headers["X-Trace"] == "Z\u00fcrich"
    assert_no_tracebacks(caplog)


async def test_well_formed_multipart_still_passes(gateway, caplog):
    head = b"\r\n".join(
        [
            b"POST /v1/audio/transcriptions HTTP/1.1",
            b"Host: gateway",
            AUTH,
            b"Content-Type: multipart/form-data; boundary=XX",
            b"Content-Length: %d" % len(MULTIPART),
        ]
    )
    response = await exchange(gateway.server, head, MULTIPART)
    assert status_of(response) < 500 and status_of(response) != 400, response[:300]
