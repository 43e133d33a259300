"""One usage record per request, assembled at its end from what each stage noted: through the real app."""

from __future__ import annotations

import json
import uuid

import pytest

from proxy.keys.cache import KEY_CACHE
from tests.support.factories import ADMIN_KEY, USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_ollama import FAKE_STATE
from tests.support.records import wait_until

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake, sink):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""))
    return await start_gateway(aiohttp_server, settings, sink=sink)


async def _record_of(sink, request_id: str):
    """The request's record, once its timing middleware has handed it on (after the client saw the end)."""
    wanted = uuid.UUID(request_id)
    await wait_until(lambda: any(r.id == wanted for r in sink.records), f"a record for {request_id}")
    [record] = [r for r in sink.records if r.id == wanted]
    return record


async def _key_id(gateway, key: str) -> uuid.UUID:
    return (await gateway.app[KEY_CACHE].lookup(key)).id


async def test_a_streamed_answer_is_recorded_from_auth_the_handler_and_the_relay(gateway, http, sink):
    body = json.dumps(CHAT).encode()
    async with http.post(gateway.u("/api/chat"), data=body, headers=bearer(USER_KEY)) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/x-ndjson"
        answer = await r.read()
        record = await _record_of(sink, r.headers["X-Request-ID"])
    last = json.loads(answer.splitlines()[-1])
    assert record.api_key_id == await _key_id(gateway, USER_KEY)  # auth
    assert (record.endpoint, record.method, record.status_code) == ("/api/chat", "POST", 200)  # timing
    assert record.bytes_in == len(body)  # the handler
    assert record.model == last["model"] and record.bytes_out == len(answer)  # the relay
    assert (record.prompt_tokens, record.completion_tokens) == (last["prompt_eval_count"], last["eval_count"])
    assert not record.usage_estimated and record.ttfb is not None and record.response_time >= record.ttfb
    assert record.error is None and record.limit is None


async def test_a_request_without_a_key_is_recorded_with_the_401_it_got(gateway, http, sink):
    async with http.post(gateway.u("/api/chat"), json=CHAT) as r:
        assert r.status == 401
        message = (await r.json())["error"]
        record = await _record_of(sink, r.headers["X-Request-ID"])
    assert (record.status_code, record.error, record.api_key_id) == (401, message, None)
    assert record.model is None and record.bytes_out == 0 and record.ttfb is None and record.limit is None


async def test_a_refused_request_is_recorded_with_the_limit_that_refused_it(gateway, http, sink):
    async with http.post(
        gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "one", "rate_limit": 3600, "burst": 1}
    ) as r:
        created = await r.json()
    for expected in (200, 429):
        async with http.get(gateway.u("/api/tags"), headers=bearer(created["key"])) as r:
            assert r.status == expected
            answer = await r.json()
            record = await _record_of(sink, r.headers["X-Request-ID"])
    assert (record.status_code, record.limit, str(record.api_key_id)) == (429, "rate", created["id"])
    assert record.error == answer["error"] and record.ttfb is None and record.prompt_tokens is None


async def test_a_client_leaving_mid_stream_is_a_499_with_what_was_relayed(gateway, fake, http, sink):
    fake.app[FAKE_STATE].token_interval = 0.2
    response = await http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY))
    first = await response.content.readline()
    request_id = response.headers["X-Request-ID"]
    response.close()  # the client goes away mid-stream
    record = await _record_of(sink, request_id)
    assert (record.status_code, record.error) == (499, "client closed the request")
    assert record.api_key_id == await _key_id(gateway, USER_KEY) and record.model == "llama3.2"
    assert record.ttfb is not None and record.bytes_out >= len(first)
    assert record.usage_estimated and record.completion_tokens  # what Ollama spent on nobody, estimated


async def test_ollama_unreachable_is_a_502_with_what_the_request_named(aiohttp_server, database_url, db, http, sink):
    gateway = await start_gateway(aiohttp_server, make_settings(database_url), sink=sink)  # nothing listens
    body = json.dumps(CHAT).encode()
    async with http.post(gateway.u("/api/chat"), data=body, headers=bearer(USER_KEY)) as r:
        assert r.status == 502
        message = (await r.json())["error"]
        record = await _record_of(sink, r.headers["X-Request-ID"])
    assert (record.status_code, record.error, record.model, record.bytes_in) == (502, message, "llama3.2", len(body))
    assert record.api_key_id == await _key_id(gateway, USER_KEY)
    assert record.ttfb is None and record.bytes_out == 0 and record.prompt_tokens is None
