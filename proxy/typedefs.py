"""Typed keys for everything the app and each request share (no string keys anywhere)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import ClientSession, web

if TYPE_CHECKING:
    from .apikeys import KeyRecord
    from .key_cache import KeyCache
    from .key_store import KeyStore
    from .request_record import RecordSink, RequestRecord
    from .settings import Settings

SETTINGS = web.AppKey("settings", "Settings")
POOL = web.AppKey("pool", asyncpg.Pool)
KEY_STORE = web.AppKey("key_store", "KeyStore")
KEY_CACHE = web.AppKey("key_cache", "KeyCache")
UPSTREAM_SESSION = web.AppKey("upstream_session", ClientSession)
RECORD_SINK = web.AppKey("record_sink", "RecordSink")

API_KEY = web.RequestKey("api_key", "KeyRecord")
RECORD = web.RequestKey("record", "RequestRecord")
