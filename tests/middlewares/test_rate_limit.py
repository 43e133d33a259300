"""Per-key limits through the real app on real sockets, with the fake Ollama upstream and a fake clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from proxy.ledger.context import LIMITER
from proxy.middlewares.rate_limit import rate_limit_middleware
from tests.support.factories import ADMIN_KEY, bearer, make_settings, start_gateway
from tests.support.fake_clock import FakeClock
from tests.support.fake_ollama import FAKE_STATE, create_fake_ollama

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
# The fake counts prompt words + 10 prompt tokens and num_predict completion tokens: 11 + 5 = 16.
GENERATE_16_TOKENS = {"model": "llama3.2", "prompt": "hi", "stream": False, "options": {"num_predict": 5}}


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def fake(aiohttp_server):
    return await aiohttp_server(create_fake_ollama())  # TestServer turns handler_cancellation on


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake, clock, sink):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""))
    return await start_gateway(aiohttp_server, settings, sink=sink, limits_clock=clock)


async def new_key(gateway, http, **limits) -> tuple[str, str]:
    """A user key with these limits, made through the admin API; returns (key, id)."""
    async with http.post(
        gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "limited", "rate_limit": 3600, **limits}
    ) as r:
        assert r.status == 201, await r.text()
        body = await r.json()
    return body["key"], body["id"]


async def fetch(http, method: str, url: str, key: str, **kwargs) -> tuple[int, dict, object]:
    async with http.request(method, url, headers=bearer(key), **kwargs) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


async def at_once(n: int, http, method: str, url: str, key: str, **kwargs) -> list[tuple[int, dict, object]]:
    return await asyncio.gather(*(fetch(http, method, url, key, **kwargs) for _ in range(n)))


def statuses(results) -> list[int]:
    return sorted(status for status, _, _ in results)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for the server side to catch up (a request ending after its client saw the end)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_burst_5_admits_5_of_20_then_one_a_second_then_a_raised_burst_at_once(gateway, http, clock):
    key, key_id = await new_key(gateway, http, burst=5)
    tags = gateway.u("/api/tags")

    first = await at_once(20, http, "GET", tags, key)
    assert statuses(first) == [200] * 5 + [429] * 15
    for status, headers, body in first:
        assert headers["RateLimit-Policy"] == '"burst";q=5;w=5'
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
            assert headers["RateLimit"] == '"burst";r=0;t=1'
            assert body == {"error": "rate limit exceeded: 5 requests per burst, refills at 3600/hour"}
    remaining = sorted(headers["RateLimit"] for status, headers, _ in first if status == 200)
    assert remaining == [f'"burst";r={r};t=1' for r in range(5)]

    clock.advance(1)
    assert statuses(await at_once(20, http, "GET", tags, key)) == [200] + [429] * 19

    async with http.patch(gateway.u(f"/api/keys/{key_id}"), headers=bearer(ADMIN_KEY), json={"burst": 20}) as r:
        assert r.status == 200
        assert (await r.json())["burst"] == 20
    assert statuses(await at_once(20, http, "GET", tags, key)) == [200] * 20  # same instant: no refill
    status, headers, _ = await fetch(http, "GET", tags, key)
    assert status == 429 and headers["RateLimit-Policy"] == '"burst";q=20;w=20'


async def test_429_on_v1_has_the_openai_shape_even_where_no_route_matches(gateway, http, fake):
    key, _ = await new_key(gateway, http, burst=1)
    status, _, _ = await fetch(http, "POST", gateway.u("/v1/chat/completions"), key, json=CHAT)
    assert status == 200
    for path in ("/v1/chat/completions", "/v1/no-such-route"):
        # Middlewares run before aiohttp's 404 handler, so the limit answers first.
        status, headers, body = await fetch(http, "POST", gateway.u(path), key, json=CHAT)
        assert status == 429
        assert headers["Retry-After"] == "1"
        assert body == {
            "error": {
                "message": "rate limit exceeded: 1 requests per burst, refills at 3600/hour",
                "type": "rate_limit_error",
                "param": None,
                "code": None,
            }
        }
    # Rejections never reach Ollama.
    assert [r.path for r in fake.app[FAKE_STATE].requests] == ["/v1/chat/completions"]


async def test_a_rejection_is_in_the_usage_record(gateway, http, sink):
    key, key_id = await new_key(gateway, http, burst=1)
    await fetch(http, "GET", gateway.u("/api/tags"), key)
    await fetch(http, "GET", gateway.u("/api/tags"), key)
    mine = [r for r in sink.records if str(r.api_key_id) == key_id]
    assert [(r.status_code, r.error) for r in mine] == [
        (200, None),
        (429, "rate limit exceeded: 1 requests per burst, refills at 3600/hour"),
    ]


async def test_public_routes_are_not_limited(gateway, http):
    key, _ = await new_key(gateway, http, burst=1)
    await fetch(http, "GET", gateway.u("/api/tags"), key)
    for path in ("/health", "/api/version", "/"):
        async with http.get(gateway.u(path), headers=bearer(key)) as r:
            assert r.status == 200, path
            assert "RateLimit" not in r.headers and "RateLimit-Policy" not in r.headers


async def test_max_concurrent_2_with_a_slow_model_third_refused_then_two_more_pass(gateway, http, fake):
    key, key_id = await new_key(gateway, http, burst=100, max_concurrent=2)
    fake.app[FAKE_STATE].token_interval = 0.2  # nine tokens: each stream lasts about two seconds
    chat = gateway.u("/api/chat")
    streams = []
    for expected in (1, 0):
        response = await http.post(chat, headers=bearer(key), json=CHAT)
        assert response.status == 200
        # A streamed response's headers leave before its handler ends; the fields are on them.
        assert response.headers["RateLimit"] == f'"burst";r={100 - len(streams) - 1};t=1, "concurrency";r={expected}'
        assert await response.content.readline()  # the first token is here: the request is in flight
        streams.append(response)

    status, headers, body = await fetch(http, "POST", chat, key, json=CHAT)
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert headers["RateLimit"] == '"concurrency";r=0'
    assert body == {"error": "concurrency limit exceeded: 2 requests in flight at once"}

    fake.app[FAKE_STATE].token_interval = 0
    for response in streams:
        assert b'"done":true' in await response.read()  # ran to its end
        response.release()
    limiter = gateway.app[LIMITER]
    await until(lambda: limiter.in_flight(uuid.UUID(key_id)) == 0)
    assert statuses(await at_once(2, http, "POST", chat, key, json={**CHAT, "stream": False})) == [200, 200]


async def test_a_client_leaving_mid_stream_frees_its_slot_and_pays_for_what_it_got(gateway, http, fake):
    key, key_id = await new_key(gateway, http, max_concurrent=1, tokens_per_day=1)
    fake.app[FAKE_STATE].token_interval = 0.2
    response = await http.post(gateway.u("/api/chat"), headers=bearer(key), json=CHAT)
    assert await response.content.readline()
    response.close()  # the client goes away mid-stream

    limiter = gateway.app[LIMITER]
    await until(lambda: limiter.in_flight(uuid.UUID(key_id)) == 0)
    status, headers, body = await fetch(http, "POST", gateway.u("/api/chat"), key, json=CHAT)
    assert status == 429  # the cut stream's tokens (estimated from what was seen) were charged
    assert body["error"].startswith("daily token quota exceeded: 1 tokens per UTC day")


async def test_tokens_per_day_50_reserves_before_and_settles_after_until_utc_midnight(gateway, http, clock):
    key, _ = await new_key(gateway, http, tokens_per_day=50)
    generate = gateway.u("/api/generate")
    # Each request reserves its num_predict (5) and its prompt at ~4 body bytes a token (20), and uses 16.
    for remaining in (50, 34):
        status, headers, body = await fetch(http, "POST", generate, key, json=GENERATE_16_TOKENS)
        assert status == 200 and body["prompt_eval_count"] + body["eval_count"] == 16
        assert headers["Olg-RateLimit-Policy"] == '"daily-tokens";q=50;qu="tokens";w=86400'
        assert headers["Olg-RateLimit"] == f'"daily-tokens";r={remaining};t=43200'

    # 18 left: fewer than this request may use, so it is refused rather than let through to overshoot.
    status, headers, body = await fetch(http, "POST", generate, key, json=GENERATE_16_TOKENS)
    assert status == 429
    assert headers["Retry-After"] == "43200"  # UTC midnight
    assert headers["Olg-RateLimit"] == '"daily-tokens";r=18;t=43200'
    assert body["error"].startswith("daily token quota: 18 of 50 tokens left today, fewer than this request may use")

    clock.advance(43200)
    status, _, _ = await fetch(http, "POST", generate, key, json=GENERATE_16_TOKENS)
    assert status == 200


async def test_an_edit_applies_to_the_next_request(gateway, http):
    key, key_id = await new_key(gateway, http, tokens_per_day=16)
    generate = gateway.u("/api/generate")
    assert (await fetch(http, "POST", generate, key, json=GENERATE_16_TOKENS))[0] == 200
    assert (await fetch(http, "POST", generate, key, json=GENERATE_16_TOKENS))[0] == 429
    async with http.patch(
        gateway.u(f"/api/keys/{key_id}"), headers=bearer(ADMIN_KEY), json={"tokens_per_day": None}
    ) as r:
        assert r.status == 200
    status, headers, _ = await fetch(http, "POST", generate, key, json=GENERATE_16_TOKENS)
    assert status == 200 and "Olg-RateLimit" not in headers


async def test_an_admitted_request_that_fails_still_carries_its_fields(gateway, http):
    key, _ = await new_key(gateway, http, burst=3)
    status, headers, body = await fetch(http, "POST", gateway.u("/api/chat"), key, json={"model": 1})
    assert status >= 400 and "error" in body
    assert headers["RateLimit"] == '"burst";r=2;t=1'


def test_the_factory_checks_its_limiter():
    with pytest.raises(TypeError, match="SharedLimiter"):
        rate_limit_middleware(limiter=object())  # type: ignore[arg-type]
