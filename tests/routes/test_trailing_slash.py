"""A public address asked for with a trailing slash is redirected to itself, never refused with 401."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from proxy.app import PUBLIC_PATHS
from tests.support.factories import make_settings, start_gateway

NEAR_MISSES = ["/docs/", "/openapi.json/", "/health/", "/ready/", "/api/version/", "/metrics/", "/docs/init.js/"]


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake, sink):
    gateway = await start_gateway(
        aiohttp_server, make_settings(database_url, ollama_base_url=fake.make_url("")), sink=sink
    )
    gateway.sink = sink
    return gateway


@pytest.mark.parametrize("path", NEAR_MISSES)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_public_address_with_a_slash_redirects_without_a_key(gateway, path, method):
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, gateway.u(path + "?x=1"), allow_redirects=False) as response,
    ):
        assert response.status == 308
        location = URL(gateway.u(path)).join(URL(response.headers["Location"]))
        assert location.path == path.rstrip("/") and location.query_string == "x=1"
    assert [r.status_code for r in gateway.sink.records] == [308]  # the log row says what was answered


async def test_the_docs_page_is_reached_from_its_slashed_address(gateway):
    async with aiohttp.ClientSession() as http, http.get(gateway.u("/docs/")) as response:
        assert response.status == 200 and response.url.path == "/docs"
        assert "swagger-ui" in await response.text()


@pytest.mark.parametrize("path", ["/api/keys/", "/api/tags/", "/docs/nothing-here", "/api/stats/"])
async def test_keyed_addresses_with_a_slash_still_need_a_key(gateway, path):
    assert path not in PUBLIC_PATHS
    async with aiohttp.ClientSession() as http, http.get(gateway.u(path), allow_redirects=False) as response:
        assert response.status == 401
