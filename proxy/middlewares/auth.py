"""Key authentication: `Authorization: Bearer <key or token>` or `x-api-key: <key>`, resolved from the cache."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from proxy.errors import GatewayError, unauthorized
from proxy.keys.access_tokens import TokenSigner, looks_like_token
from proxy.keys.cache import KEY_CACHE, KeyStoreUnavailable
from proxy.keys.format import API_KEY, KeyRecord
from proxy.values.headers import visible_ascii

TOKEN_AUTH = web.RequestKey("token_auth", bool)  # authenticated by a short-lived token, not the key

log = logging.getLogger(__name__)


def presented_key(request: web.Request) -> str | None:
    """The key a client sent, or None; two different credentials are refused as ambiguous.

    SECURITY: only visible ASCII counts as a credential (every key and token is made of it), so
    nothing downstream ever digests, compares or logs a value that holds undecodable bytes.
    """
    headers = request.headers
    authorizations = headers.getall("Authorization", ())
    api_keys = headers.getall("x-api-key", ())
    if len(authorizations) + len(api_keys) != 1:
        return None
    if authorizations:
        scheme, _, credentials = authorizations[0].strip().partition(" ")
        return visible_ascii(credentials.strip()) if scheme.lower() == "bearer" else None
    return visible_ascii(api_keys[0].strip())


def auth_middleware(
    *, public_paths: Iterable[str], signer: TokenSigner, clock: Callable[[], float] = time.time
) -> Middleware:
    """Admit only holders of a usable key or of a token exchanged for one, except on `public_paths`
    (GET/HEAD only).

    Rejects: missing, malformed, unknown, inactive and expired keys, and tokens that are expired,
    tampered with or whose key is no longer usable, all with the same 401 body (the reason is
    logged, never the credential). A known key costs no database round trip.
    """
    if not isinstance(signer, TokenSigner):
        raise TypeError(f"signer must be a TokenSigner, not {type(signer).__name__}")
    public = frozenset(public_paths)

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public and request.method in ("GET", "HEAD"):
            return await handler(request)
        await authenticate(request, signer, clock())
        return await handler(request)

    return auth


async def authenticate(request: web.Request, signer: TokenSigner, now: float) -> KeyRecord:
    """Resolve the request's credential to a usable key, note it on the request, or raise 401/503.

    Also for routes that are public to the middleware but take a key besides their own credential
    (GET /metrics).
    """
    credential = presented_key(request)
    if credential is None:
        log.info("401 %s %s: no usable credentials", request.method, request.path)
        raise unauthorized()
    token = None
    if looks_like_token(credential):
        token = signer.verify(credential, now)
        if token is None:
            log.info("401 %s %s: token expired, tampered with or not ours", request.method, request.path)
            raise unauthorized()
    cache = request.app[KEY_CACHE]
    try:
        record = await (cache.lookup_id(token.key_id) if token else cache.lookup(credential))
    except KeyStoreUnavailable:
        raise GatewayError(503, "key store unavailable; try again shortly", {"Retry-After": "5"}) from None
    if record is None or not record.usable():
        reason = "unknown key" if record is None else f"key {record.id} inactive or expired"
        log.info("401 %s %s: %s", request.method, request.path, reason)
        raise unauthorized()
    if token is not None:
        # A token never outlives a change of its key's role or active state, even one undone since.
        if token.role != record.role or token.state_version != record.state_version:
            log.info(
                "401 %s %s: token issued to key %s before a change of its role or state",
                request.method,
                request.path,
                record.id,
            )
            raise unauthorized()
        request[TOKEN_AUTH] = True
    request[API_KEY] = record
    return record
