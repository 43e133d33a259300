"""GET /metrics: Prometheus exposition, for an admin key (or its token) or the METRICS_TOKEN bearer.

Public to the auth middleware, so a scraper holding only METRICS_TOKEN is not refused there; this
handler authenticates instead. A scrape is never rate limited and never counted against a key.
"""

from __future__ import annotations

import hmac
import time

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from proxy.errors import forbidden
from proxy.keys.access_tokens import TOKEN_SIGNER
from proxy.middlewares.auth import authenticate, presented_key
from proxy.observability.metrics import METRICS
from proxy.state import SETTINGS

PATH = "/metrics"


async def get_metrics(request: web.Request) -> web.Response:
    if not _metrics_token(request):
        key = await authenticate(request, request.app[TOKEN_SIGNER], time.time())
        if not key.is_admin:
            raise forbidden("metrics need an admin key or METRICS_TOKEN")
    # Prometheus negotiates: OpenMetrics when it asks for it, the classic text format otherwise.
    encode, content_type = choose_encoder(request.headers.get("Accept"))
    return web.Response(body=encode(request.app[METRICS].registry), headers={"Content-Type": content_type})


def _metrics_token(request: web.Request) -> bool:
    expected = request.app[SETTINGS].metrics_token
    presented = presented_key(request)
    if not expected or presented is None:
        return False
    # SECURITY: constant-time; bytes, since compare_digest refuses non-ASCII str.
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected.encode())


def setup_metrics_routes(app: web.Application) -> None:
    app.router.add_get(PATH, get_metrics)
