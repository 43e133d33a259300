"""POST /api/auth/token: a short-lived bearer token for the key presented, e.g. for a browser app;
GET /api/auth/key: the key behind a key or token (what a signed-in page shows as "you")."""

from __future__ import annotations

import time

from aiohttp import web

from proxy.errors import forbidden
from proxy.keys.access_tokens import TOKEN_SIGNER
from proxy.keys.format import API_KEY
from proxy.middlewares.auth import TOKEN_AUTH
from proxy.state import SETTINGS

PATH = "/api/auth/token"
KEY_PATH = "/api/auth/key"


async def issue_token(request: web.Request) -> web.Response:
    """Valid ACCESS_TOKEN_EXPIRE_MINUTES, never past the key's own expiry, for the key's current role
    and state (any later change of either voids it)."""
    if request.get(TOKEN_AUTH):
        # Otherwise a token could renew itself forever, outliving the intent of its lifetime.
        raise forbidden("a token cannot be exchanged for another; present the key itself")
    key = request[API_KEY]
    now = int(time.time())
    expires_at = now + request.app[SETTINGS].access_token_expire_minutes * 60
    if key.expires_at is not None:
        expires_at = min(expires_at, int(key.expires_at.timestamp()))
    token = request.app[TOKEN_SIGNER].issue(key.id, key.role, key.state_version, expires_at)
    # RFC 6749 §5.1: a response carrying a token must not be cached.
    return web.json_response(
        {"access_token": token, "token_type": "bearer", "expires_in": expires_at - now},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


async def own_key(request: web.Request) -> web.Response:
    """Any key, its own record: role, limits, models, expiry; never the key itself."""
    return web.json_response(request[API_KEY].to_json(), headers={"Cache-Control": "no-store"})


def setup_auth_token_routes(app: web.Application) -> None:
    app.router.add_post(PATH, issue_token)
    app.router.add_get(KEY_PATH, own_key)
