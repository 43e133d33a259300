"""CORS for browser frontends: preflights answered without a key, allowed origins echoed on answers."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from proxy.values.headers import is_token, visible_ascii

CORS_ORIGIN = web.RequestKey("cors_origin", str)  # an allowed Origin, echoed on the response

# What Ollama itself allows (envconfig AllowedHeaders), plus the gateway's x-api-key, the request
# id and the Anthropic SDK's headers (/v1/messages is served too). x-stainless-* go by prefix.
ALLOWED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "user-agent",
        "accept",
        "x-requested-with",
        "openai-beta",
        "x-api-key",
        "x-request-id",
        "anthropic-version",
        "anthropic-beta",
        "anthropic-dangerous-direct-browser-access",
    }
)
_ALLOWED_PREFIX = "x-stainless-"
ALLOWED_METHODS = "GET, HEAD, POST, PATCH, DELETE, OPTIONS"
# Readable by the page's script: request id, limits, timing.
EXPOSED_HEADERS = (
    "X-Request-ID, Retry-After, RateLimit, RateLimit-Policy, Olg-RateLimit, Olg-RateLimit-Policy, Server-Timing"
)
MAX_AGE = "600"  # seconds a browser may reuse a preflight answer (Chromium caps it at 7200)


def cors_middleware(*, origins: Iterable[str]) -> Middleware:
    """Answer the preflight (`OPTIONS` + `Access-Control-Request-Method`) of an allowed origin with
    204 and the CORS fields, before auth (browsers send preflights without credentials); mark every
    other request from an allowed origin for `add_cors_headers`.

    Other origins get no CORS fields at all, so the browser keeps the answer from the page. `*`
    allows every origin (echoed, never a literal `*`); never in production.
    """
    allowed = frozenset(origins)
    any_origin = "*" in allowed

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        # An origin is ASCII by construction (RFC 6454 §6.2): anything else is no origin we allow,
        # and is never echoed back, even with `*`.
        origin = visible_ascii(request.headers.get("Origin"))
        if origin is None or not (any_origin or origin in allowed):
            return await handler(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return _preflight(request, origin)
        request[CORS_ORIGIN] = origin
        return await handler(request)

    return cors


def _preflight(request: web.Request, origin: str) -> web.Response:
    requested = request.headers.get("Access-Control-Request-Headers", "")
    names = [name.strip() for name in requested.split(",") if name.strip()]
    # Only field names (tchar, RFC 9110 §5.6.2) are echoed: the x-stainless-* prefix admits any suffix.
    granted = [
        n for n in names if is_token(n) and (n.lower() in ALLOWED_HEADERS or n.lower().startswith(_ALLOWED_PREFIX))
    ]
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Max-Age": MAX_AGE,
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    if granted:
        headers["Access-Control-Allow-Headers"] = ", ".join(granted)
    return web.Response(status=204, headers=headers)


def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: reaches streamed answers too, whose headers leave inside the handler."""
    origin = request.get(CORS_ORIGIN)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers.add("Vary", "Origin")
