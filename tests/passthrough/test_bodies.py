"""Hostile request bodies: each a clear 4xx, the gateway answering meanwhile, no traceback logged."""

from __future__ import annotations

import asyncio
import json
from unittest import mock

import pytest
from aiohttp import StreamReader

from proxy.passthrough.body import read_stream
from tests.support.factories import ADMIN_KEY, USER_KEY, bearer, make_settings, start_gateway
from tests.support.logs import assert_no_tracebacks
from tests.support.raw_http import exchange, status_of

JSON_LIMIT = 4 * 1024 * 1024


def _keys_flood(count: int, model: str = "llama3.2") -> bytes:
    return b'{"model": "%s", ' % model.encode() + b", ".join(b'"k%d": 0' % i for i in range(count)) + b"}"


def _padded(prefix: bytes, size: int, suffix: bytes) -> bytes:
    return prefix + b" " * (size - len(prefix) - len(suffix)) + suffix


# Above the 256 KiB inline limit, so parsed in the worker process, and under JSON_LIMIT.
HOSTILE_BODIES = {
    "arrays nested deeply": b'{"model": "llama3.2", "a": ' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}",
    "objects nested deeply": b'{"a": ' * 300_000 + b"0" + b"}" * 300_000,
    "unclosed nesting": b"[" * 2_000_000,
    "invalid UTF-8 in a string": _padded(b'{"model": "llama3.2", "prompt": "\xff\xfe', 1_000_000, b'"}'),
    "invalid UTF-8, small": b'{"model": "llama3.2", "prompt": "\xc3\x28"}',
    "truncated object": _keys_flood(100_000)[:-1],
    "an array, not an object": b"[" + b"0, " * 500_000 + b"0]",
    "a huge string, not an object": b'"' + b"A" * 2_000_000 + b'"',
    "trailing garbage": _padded(b'{"model": "llama3.2"}', 1_000_000, b"x"),
    "NUL bytes": b"\x00" * 1_000_000,
}


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake, sink):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), max_json_body_size=JSON_LIMIT)
    return await start_gateway(aiohttp_server, settings, sink=sink)


async def _post(http, gateway, body: bytes, key: str = USER_KEY, path: str = "/api/chat"):
    async with http.post(gateway.u(path), data=body, headers=bearer(key)) as r:
        return r.status, await r.read()


async def _health_while(http, gateway, work):
    """Run `work`, asking /health over and over until it is done; the health answers."""
    task = asyncio.ensure_future(work)
    answers = []
    while not task.done() or not answers:
        async with http.get(gateway.u("/health")) as r:
            answers.append(r.status)
        await asyncio.sleep(0)
    return await task, answers


@pytest.mark.parametrize("name", HOSTILE_BODIES)
async def test_hostile_json_is_a_400_and_health_keeps_answering(gateway, http, caplog, name):
    (status, body), health = await _health_while(http, gateway, _post(http, gateway, HOSTILE_BODIES[name]))
    assert status == 400, body[:200]
    assert json.loads(body)["error"]
    assert set(health) == {200}
    assert_no_tracebacks(caplog)


@pytest.mark.parametrize("size", [300 * 1024, 3 * 1024 * 1024])
async def test_a_big_body_of_many_keys_is_parsed_for_its_model(gateway, http, caplog, size):
    count = size // 12
    (status, _), health = await _health_while(http, gateway, _post(http, gateway, _keys_flood(count)))
    assert status == 200 and set(health) == {200}
    async with http.post(
        gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "n", "models": ["llama3.2"]}
    ) as r:
        narrow = (await r.json())["key"]
    status, body = await _post(http, gateway, _keys_flood(count, model="qwen3:0.6b"), key=narrow)
    assert status == 403 and b"qwen3:0.6b" in body
    flood = _keys_flood(count)[:-1] + b', "MODEL": "qwen3:0.6b"}'  # the same spellings as inline
    assert (await _post(http, gateway, flood, key=narrow))[0] == 403
    assert_no_tracebacks(caplog)


async def test_a_huge_string_value_within_the_limit_passes(gateway, http):
    body = json.dumps({"model": "llama3.2", "prompt": "A" * (JSON_LIMIT - 100), "stream": False}).encode()
    assert (await _post(http, gateway, body, path="/api/generate"))[0] == 200


async def test_a_body_over_the_json_limit_is_a_413_declared_or_streamed(gateway, http, caplog):
    body = _padded(b'{"model": "llama3.2", "prompt": "', JSON_LIMIT + 1, b'"}')
    status, answer = await _post(http, gateway, body)
    assert status == 413 and b"exceeds" in answer

    async def chunked():
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    async with http.post(gateway.u("/api/chat"), data=chunked(), headers=bearer(USER_KEY)) as r:
        assert r.status == 413
    declared = b"POST /api/chat HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer %s\r\nContent-Length: %d" % (
        USER_KEY.encode(),
        JSON_LIMIT * 10,
    )
    assert status_of(await exchange(gateway.server, declared, head_only=True)) == 413  # refused before a byte is read
    assert_no_tracebacks(caplog)


async def test_the_upload_limit_is_separate_from_the_json_limit(aiohttp_server, database_url, db, fake, http):
    settings = make_settings(
        database_url, ollama_base_url=fake.make_url(""), max_json_body_size=1024, max_body_size=1024 * 1024
    )
    gateway = await start_gateway(aiohttp_server, settings)
    big_json = json.dumps({"model": "llama3.2", "prompt": "A" * 2048}).encode()
    assert (await _post(http, gateway, big_json))[0] == 413
    form = (
        b'--XX\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper\r\n--XX\r\n'
        b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + b"R" * 4096 + b"\r\n--XX--\r\n"
    )
    async with http.post(
        gateway.u("/v1/audio/transcriptions"),
        data=form,
        headers={**bearer(USER_KEY), "Content-Type": "multipart/form-data; boundary=XX"},
    ) as r:
        assert r.status != 413


def _form(model: bytes, audio: bytes) -> bytes:
    return (
        b'--XX\r\nContent-Disposition: form-data; name="model"\r\n\r\n' + model + b"\r\n--XX\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
        + audio
        + b"\r\n--XX--\r\n"
    )


@pytest.mark.parametrize("audio_size", [1024, 2 * 1024 * 1024])  # inline, and in the worker process
async def test_a_multipart_form_is_checked_inline_or_in_the_worker(gateway, http, caplog, audio_size):
    async with http.post(
        gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "n", "models": ["whisper"]}
    ) as r:
        narrow = (await r.json())["key"]
    audio = b"RIFF" + b"\n\x00\xff" * (audio_size // 3)
    headers = {**bearer(narrow), "Content-Type": "multipart/form-data; boundary=XX"}

    async def post(body: bytes) -> int:
        async with http.post(gateway.u("/v1/audio/transcriptions"), data=body, headers=headers) as r:
            return r.status

    (refused, truncated), health = await _health_while(
        http, gateway, asyncio.gather(post(_form(b"qwen3:0.6b", audio)), post(_form(b"whisper", audio)[:-20]))
    )
    assert (refused, truncated) == (403, 400) and set(health) == {200}
    assert await post(_form(b"whisper", audio)) not in (400, 403, 413)
    assert_no_tracebacks(caplog)


@pytest.mark.parametrize("chunks", [[b'{"a":1}'], [b'{"a"', b":1}"]], ids=["one chunk", "two chunks"])
@pytest.mark.parametrize("limit, expected", [(7, b'{"a":1}'), (6, None)], ids=["within", "over"])
async def test_a_body_already_received_is_read_whole_and_capped(chunks, limit, expected):
    """The body that came in with its headers is taken at once, with the same cap as one still arriving."""
    stream = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    for chunk in chunks:
        stream.feed_data(chunk)
    stream.feed_eof()
    assert await read_stream(stream, limit) == expected
