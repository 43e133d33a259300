"""Typed keys for everything the app and each request share (no string keys anywhere)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import ClientSession, web

if TYPE_CHECKING:
    from proxy.keys.access_tokens import TokenSigner
    from proxy.keys.format import KeyRecord
    from proxy.keys.cache import KeyCache
    from proxy.passthrough.body_models import BodyParser
    from proxy.keys.store import KeyStore
    from proxy.limits import KeyLimiter
    from proxy.observability.metrics import GatewayMetrics
    from proxy.request_log.record import RecordSink, RequestRecord
    from proxy.observability.server_timing import UpstreamTiming
    from proxy.settings import Settings

SETTINGS = web.AppKey("settings", "Settings")
POOL = web.AppKey("pool", asyncpg.Pool)
KEY_STORE = web.AppKey("key_store", "KeyStore")
KEY_CACHE = web.AppKey("key_cache", "KeyCache")
UPSTREAM_SESSION = web.AppKey("upstream_session", ClientSession)
RECORD_SINK = web.AppKey("record_sink", "RecordSink")
KEY_LIMITER = web.AppKey("key_limiter", "KeyLimiter")
METRICS = web.AppKey("metrics", "GatewayMetrics")
TOKEN_SIGNER = web.AppKey("token_signer", "TokenSigner")
BODY_PARSER = web.AppKey("body_parser", "BodyParser")

API_KEY = web.RequestKey("api_key", "KeyRecord")
RECORD = web.RequestKey("record", "RequestRecord")
RATE_LIMIT_HEADERS = web.RequestKey("rate_limit_headers", dict[str, str])
CORS_ORIGIN = web.RequestKey("cors_origin", str)  # an allowed Origin, echoed on the response
TOKEN_AUTH = web.RequestKey("token_auth", bool)  # authenticated by a short-lived token, not the key
UPSTREAM_TIMING = web.RequestKey("upstream_timing", "UpstreamTiming")
# A response whose headers are out: the errors middleware cuts it rather than answer twice.
STARTED_RESPONSE = web.RequestKey("started_response", web.StreamResponse)
