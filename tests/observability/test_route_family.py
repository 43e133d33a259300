"""Route families: a fixed label set whatever path a client sends."""

from __future__ import annotations

import pytest
from aiohttp import web

from proxy.observability.route_family import RouteFamilies
from proxy.passthrough.handler import setup_passthrough_routes
from proxy.routes.health import setup_health_routes
from proxy.routes.keys import setup_key_routes


@pytest.fixture
def families():
    app = web.Application()
    setup_health_routes(app)
    setup_key_routes(app)
    setup_passthrough_routes(app)
    learnt = RouteFamilies()
    learnt.learn(app.router)
    return learnt


@pytest.mark.parametrize(
    "path, family",
    [
        ("/api/chat", "native"),
        ("/api/tags", "native"),
        ("/", "native"),
        ("/api/blobs/sha256:00", "native"),
        ("/api/experimental/anything/at/all", "native"),
        ("/v1/chat/completions", "openai"),
        ("/v1/models/a%2Fb", "openai"),
        ("/v1/messages", "anthropic"),
        ("/health", "gateway"),
        ("/api/keys", "gateway"),
        ("/api/keys/123", "gateway"),
        ("/wp-login.php", "other"),
        ("/healthz", "other"),
    ],
)
def test_family_of_a_path(families, path, family):
    assert families.of(path) == family
