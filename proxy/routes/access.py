"""Role checks for handlers behind the auth middleware."""

from __future__ import annotations

from aiohttp import web

from proxy.errors import forbidden
from proxy.keys.format import API_KEY, KeyRecord


def require_admin(request: web.Request) -> KeyRecord:
    key = request[API_KEY]
    if not key.is_admin:
        raise forbidden("this route needs an admin key")
    return key
