"""Key authentication: `Authorization: Bearer <key>` or `x-api-key: <key>`, resolved from the cache."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..gateway_error import GatewayError, unauthorized
from ..key_cache import KeyStoreUnavailable
from ..typedefs import API_KEY, KEY_CACHE, RECORD

log = logging.getLogger(__name__)


def presented_key(request: web.Request) -> str | None:
    """The key a client sent, or None; two different credentials are refused as ambiguous."""
    headers = request.headers
    authorizations = headers.getall("Authorization", ())
    api_keys = headers.getall("x-api-key", ())
    if len(authorizations) + len(api_keys) != 1:
        return None
    if authorizations:
        scheme, _, credentials = authorizations[0].strip().partition(" ")
        return credentials.strip() if scheme.lower() == "bearer" else None
    return api_keys[0].strip()


def auth_middleware(*, public_paths: Iterable[str]) -> Middleware:
    """Admit only holders of a usable key, except on `public_paths` (GET/HEAD only).

    Rejects: missing, malformed, unknown, inactive and expired keys, all with the same 401
    body (the reason is logged, never the key). A known key costs no database round trip.
    """
    public = frozenset(public_paths)

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public and request.method in ("GET", "HEAD"):
            return await handler(request)
        key = presented_key(request)
        if key is None:
            log.info("401 %s %s: no usable credentials", request.method, request.path)
            raise unauthorized()
        try:
            record = await request.app[KEY_CACHE].lookup(key)
        except KeyStoreUnavailable:
            raise GatewayError(503, "key store unavailable; try again shortly", {"Retry-After": "5"}) from None
        if record is None or not record.usable():
            reason = "unknown key" if record is None else f"key {record.id} inactive or expired"
            log.info("401 %s %s: %s", request.method, request.path, reason)
            raise unauthorized()
        request[API_KEY] = record
        request[RECORD].api_key_id = record.id
        return await handler(request)

    return auth
