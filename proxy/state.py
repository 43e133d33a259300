"""Typed keys for the resources the whole app shares; each package declares the keys of what it owns."""

from __future__ import annotations

import asyncpg
from aiohttp import ClientSession, web

from proxy.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
UPSTREAM_SESSION = web.AppKey("upstream_session", ClientSession)
