"""The application factory: a table of contents of the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from .bootstrap_keys import startup_keys_context
from .db import pool_context
from .key_cache import KeyCache
from .key_events import key_events_context
from .key_store import KeyStore
from .middlewares.auth import auth_middleware
from .middlewares.errors import errors_middleware
from .middlewares.timing import add_request_id, timing_middleware
from .request_record import LoggingSink, RecordSink
from .ollama_routes import PUBLIC_PATHS as OLLAMA_PUBLIC_PATHS
from .routes.health import PATH as HEALTH_PATH
from .routes.health import setup_health_routes
from .routes.passthrough import setup_passthrough_routes
from .routes.keys import setup_key_routes
from .settings import Settings
from .upstream import upstream_session_context
from .typedefs import KEY_CACHE, KEY_STORE, POOL, RECORD_SINK, SETTINGS

# Reachable without a key: liveness, and the probes the stock `ollama` CLI sends without one.
PUBLIC_PATHS = (HEALTH_PATH, *OLLAMA_PUBLIC_PATHS)


def create_app(settings: Settings, *, sink: RecordSink | None = None) -> web.Application:
    """Build the gateway. `settings.database_url` and `settings.secret_key` must be resolved."""
    assert settings.database_url and settings.secret_key, "resolve the database and secret first (cli.py)"
    app = web.Application(client_max_size=settings.max_body_size)
    app[SETTINGS] = settings
    app[RECORD_SINK] = sink or LoggingSink()

    # Resources in dependency order; cleanup runs in reverse, so the pool closes last.
    app.cleanup_ctx.append(pool_context)
    app.cleanup_ctx.append(_key_store_context)
    app.cleanup_ctx.append(key_events_context)
    app.cleanup_ctx.append(startup_keys_context)
    app.cleanup_ctx.append(upstream_session_context)

    # Timing is outermost so it sees (and records) every rejection; errors render rejections
    # as JSON before timing reads the status; auth comes before anything that is per key.
    app.middlewares.extend([
        timing_middleware(sink=app[RECORD_SINK]),
        errors_middleware(),
        auth_middleware(public_paths=PUBLIC_PATHS),
    ])
    app.on_response_prepare.append(add_request_id)

    setup_health_routes(app)
    setup_key_routes(app)
    setup_passthrough_routes(app)
    return app


async def _key_store_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[KEY_STORE] = store = KeyStore(app[POOL], settings.secret_key)
    app[KEY_CACHE] = KeyCache(store, ttl=settings.key_cache_ttl)
    yield
