"""GET /api/models: the models this key may use, read from Ollama's /api/tags and filtered."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from ..gateway_error import GatewayError
from ..json_body import read_stream
from ..listing_filter import LISTING_LIMIT, filter_listing
from ..model_policy import key_may_use
from ..ollama_routes import Listing
from ..typedefs import API_KEY, SETTINGS, UPSTREAM_SESSION
from ..upstream import UPSTREAM_ERRORS, upstream_failure, upstream_url



async def list_models(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        async with request.app[UPSTREAM_SESSION].get(upstream_url(settings.ollama_base_url, "/api/tags")) as upstream:
            body = await read_stream(upstream.content, LISTING_LIMIT)
            status = upstream.status
    except UPSTREAM_ERRORS as exc:
        raise upstream_failure(exc, settings) from None
    allowed = partial(key_may_use, request[API_KEY])
    filtered = filter_listing(body, Listing.NATIVE, allowed) if status == 200 and body is not None else None
    if filtered is None:
        raise GatewayError(502, f"Ollama answered {status} without a readable model list")
    return web.Response(body=filtered, content_type="application/json")


def setup_model_routes(app: web.Application) -> None:
    app.router.add_get("/api/models", list_models)
