"""GET /api/models: the models this key may use, read from Ollama's /api/tags (every node's) and filtered."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from proxy.backends.registry import BACKENDS
from proxy.errors import GatewayError
from proxy.keys.format import API_KEY
from proxy.passthrough.listing_filter import read_listing
from proxy.passthrough.merged_listing import merged_body
from proxy.passthrough.model_policy import key_may_use
from proxy.passthrough.routes import Listing
from proxy.passthrough.upstream import UPSTREAM_ERRORS, upstream_failure, upstream_url
from proxy.state import SETTINGS, UPSTREAM_SESSION


async def list_models(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    allowed = partial(key_may_use, request[API_KEY])
    if request.app[BACKENDS].single is None:
        _, body = await merged_body(request, Listing.NATIVE, "/api/tags", allowed)
        return web.Response(body=body, content_type="application/json")
    try:
        async with request.app[UPSTREAM_SESSION].get(upstream_url(settings.ollama_base_url, "/api/tags")) as upstream:
            if upstream.status != 200:
                raise GatewayError(502, f"Ollama answered {upstream.status} to /api/tags")
            body = await read_listing(upstream, Listing.NATIVE, allowed)
    except UPSTREAM_ERRORS as exc:
        raise upstream_failure(exc, settings) from None
    return web.Response(body=body, content_type="application/json")


def setup_model_routes(app: web.Application) -> None:
    app.router.add_get("/api/models", list_models)
