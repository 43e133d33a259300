"""GET /metrics through the real app: who may scrape, and what a scrape shows after real traffic."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.factories import ADMIN_KEY, USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_ollama import FAKE_STATE
from tests.support.polling import eventually

METRICS_TOKEN = "scrape-token-0123456789"
CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), metrics_token=METRICS_TOKEN)
    return await start_gateway(aiohttp_server, settings)


async def _scrape(http, gateway, headers=None) -> dict[tuple[str, tuple], float]:
    async with http.get(gateway.u("/metrics"), headers=headers or bearer(ADMIN_KEY)) as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        text = await r.text()
    assert ADMIN_KEY not in text and USER_KEY not in text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        (bearer("wrong-token-0123456789"), 401),
        (bearer(USER_KEY), 403),
        ({"Authorization": "Basic " + METRICS_TOKEN}, 401),
    ],
)
async def test_scrapes_need_an_admin_key_or_the_metrics_token(gateway, http, headers, status):
    async with http.get(gateway.u("/metrics"), headers=headers) as r:
        assert r.status == status
        assert "error" in await r.json()


async def test_the_metrics_token_scrapes(gateway, http):
    await _scrape(http, gateway, bearer(METRICS_TOKEN))


async def test_traffic_shows_up_with_histograms_and_state(gateway, http):
    async with http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY)) as r:
        await r.read()
    async with http.get(gateway.u("/v1/models"), headers=bearer(USER_KEY)) as r:
        await r.read()
    samples = await _scrape(http, gateway)
    assert _value(samples, "ollama_gateway_requests_total", family="native", status="200", model="llama3.2") == 1
    assert _value(samples, "ollama_gateway_requests_total", family="openai", status="200", model="") == 1
    assert _value(samples, "ollama_gateway_request_duration_seconds_bucket", family="native", le="+Inf") == 1
    assert _value(samples, "ollama_gateway_overhead_seconds_count", family="native") == 1
    assert _value(samples, "ollama_gateway_upstream_ttfb_seconds_count", family="native") == 1
    assert _value(samples, "ollama_gateway_tokens_total", family="native", model="llama3.2", kind="completion") > 0
    assert _value(samples, "ollama_gateway_log_records_total", outcome="enqueued") >= 2
    assert _value(samples, "ollama_gateway_log_queue_depth") is not None
    assert _value(samples, "ollama_gateway_db_pool_connections", state="max") == 10
    assert _value(samples, "ollama_gateway_streams_in_flight") == 0


async def test_streams_in_flight_while_relaying(gateway, fake, http):
    fake.app[FAKE_STATE].token_interval = 0.1
    async with http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY)) as r:
        await r.content.readline()
        assert _value(await _scrape(http, gateway), "ollama_gateway_streams_in_flight") == 1
        await r.read()

    async def none_in_flight() -> bool:  # the record is handed on once the handler has returned
        return _value(await _scrape(http, gateway), "ollama_gateway_streams_in_flight") == 0

    await eventually(none_in_flight, "the stream counted out")


async def test_rejections_by_reason(aiohttp_server, database_url, db, fake, http):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), default_rate_limit=60)
    gateway = await start_gateway(aiohttp_server, settings)  # burst 1: the second request is refused
    async with http.post(gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "slow"}) as r:
        key = (await r.json())["key"]
    for _ in range(2):
        async with http.get(gateway.u("/api/tags"), headers=bearer(key)) as r:
            await r.read()
    assert r.status == 429
    samples = await _scrape(http, gateway)
    assert _value(samples, "ollama_gateway_rate_limited_total", reason="rate") == 1
