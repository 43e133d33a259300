"""The OpenAPI document: valid 3.1, in step with the router, and its /docs page served offline."""

from __future__ import annotations

import re

import aiohttp
import pytest
import schemathesis

from proxy.app import PUBLIC_PATHS, create_app
from proxy.observability.route_family import OLLAMA_PATHS
from proxy.routes.console import PAGE_PATH as CONSOLE_PATH
from proxy.routes.openapi import build_document
from tests.support.factories import make_settings, start_gateway

_METHODS = ("get", "post", "patch", "put", "delete")
# `/docs/` and the like only redirect to the documented address (routes/trailing_slash.py).
# The console's page is /ui/ itself, slash and all.
SLASH_REDIRECTS = frozenset(path for path in PUBLIC_PATHS if path.endswith("/") and path not in ("/", CONSOLE_PATH))


def _routed(app) -> set[tuple[str, str]]:
    """The gateway's own (method, path) pairs; Ollama's pass-through routes are Ollama's API."""
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical not in OLLAMA_PATHS
        and route.resource.canonical not in SLASH_REDIRECTS
    }
    # aiohttp adds HEAD beside every GET; HEAD alone would be a route of its own.
    return {(m, p) for m, p in routed if not (m == "HEAD" and ("GET", p) in routed)}


def _documented(document) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in _METHODS}


def test_every_gateway_route_is_documented_and_nothing_else():
    app = create_app(make_settings("postgresql://unused/unused"))
    routed, documented = _routed(app), _documented(build_document())
    assert routed - documented == set(), "routes missing from proxy/routes/openapi.py"
    assert documented - routed == set(), "documented operations with no route"


def test_the_document_is_valid_openapi_3_1():
    document = build_document()
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema
    for path in (
        "/api/keys",
        "/api/keys/{key_id}",
        "/api/stats",
        "/api/logs",
        "/api/models",
        "/health",
        "/api/auth/token",
        "/metrics",
        "/ready",
    ):
        assert path in document["paths"], path


@pytest.fixture
async def gateway(aiohttp_server, database_url, db):
    return await start_gateway(aiohttp_server, make_settings(database_url))


async def test_document_and_docs_page_need_no_key_and_no_network(gateway):
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.u("/openapi.json")) as r:
            assert r.status == 200 and (await r.json()) == build_document()
        async with http.get(gateway.u("/docs")) as r:
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert not re.search(r"(https?:)?//", page), "the page must load nothing from elsewhere"
        assets = [url for url in re.findall(r'(?:src|href)="([^"]+)"', page) if url != "data:,"]
        assert sorted(assets) == ["docs/init.js", "docs/swagger-ui-bundle.js", "docs/swagger-ui.css"]
        for asset in assets:
            async with http.get(gateway.u("/" + asset)) as r:
                assert r.status == 200, asset
                body = await r.read()
                assert r.content_type == ("text/css" if asset.endswith(".css") else "text/javascript")
                assert len(body) > 100
        async with http.get(gateway.u("/docs/init.js")) as r:
            init = await r.text()
        assert "validatorUrl: null" in init and "http" not in init
        async with http.get(gateway.u("/docs/oauth2-redirect.html")) as r:
            assert r.status in (401, 404)  # only the three files are served
