"""The application factory: a table of contents of the gateway."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from aiohttp import web

from proxy.backends.poller import backends_context, create_backends
from proxy.backends.registry import BACKENDS
from proxy.db.pool import pool_context
from proxy.keys.access_tokens import TOKEN_SIGNER, TokenSigner
from proxy.keys.bootstrap import startup_keys_context
from proxy.keys.cache import KEY_CACHE, KeyCache
from proxy.keys.events import key_events_context
from proxy.keys.store import KEY_STORE, KeyStore
from proxy.ledger.context import LIMITER, PROCESS_ACTIVITY, ledger_context
from proxy.ledger.limiter import SharedLimiter
from proxy.middlewares.auth import auth_middleware
from proxy.middlewares.cors import add_cors_headers, cors_middleware
from proxy.middlewares.errors import errors_middleware, remember_started_response
from proxy.middlewares.plugins import load_plugins
from proxy.middlewares.rate_limit import add_rate_limit_headers, rate_limit_middleware
from proxy.middlewares.timing import add_request_id, timing_middleware
from proxy.observability.access_log import log_access
from proxy.observability.metrics import METRICS, GatewayMetrics
from proxy.passthrough.body_models import body_parser_context
from proxy.passthrough.handler import setup_passthrough_routes
from proxy.passthrough.routes import PUBLIC_PATHS as OLLAMA_PUBLIC_PATHS
from proxy.passthrough.server_timing import add_server_timing
from proxy.passthrough.upstream import upstream_session_context
from proxy.queue.gate import FAIR_QUEUE, close_fair_queue, create_fair_queue
from proxy.request_log.context import create_writer, request_log_context
from proxy.request_log.observers import ObservedSink
from proxy.request_log.record import RECORD_SINK, RecordSink
from proxy.routes.auth_token import setup_auth_token_routes
from proxy.routes.backends import process_activity, setup_backend_routes
from proxy.routes.console import ASSET_PATHS as CONSOLE_ASSET_PATHS
from proxy.routes.console import PAGE_PATH as CONSOLE_PATH
from proxy.routes.console import setup_console_routes
from proxy.routes.docs import ASSET_PATHS as DOCS_ASSET_PATHS
from proxy.routes.docs import PAGE_PATH as DOCS_PATH
from proxy.routes.docs import SPEC_PATH as OPENAPI_PATH
from proxy.routes.docs import setup_docs_routes
from proxy.routes.health import PATH as HEALTH_PATH
from proxy.routes.health import setup_health_routes
from proxy.routes.keys import setup_key_routes
from proxy.routes.logs import setup_log_routes
from proxy.routes.metrics import PATH as METRICS_PATH
from proxy.routes.metrics import setup_metrics_routes
from proxy.routes.models import setup_model_routes
from proxy.routes.ready import PATH as READY_PATH
from proxy.routes.ready import setup_ready_routes
from proxy.routes.redoc import ASSET_PATHS as REDOC_ASSET_PATHS
from proxy.routes.redoc import PAGE_PATH as REDOC_PATH
from proxy.routes.redoc import setup_redoc_routes
from proxy.routes.stats import setup_stats_routes
from proxy.routes.trailing_slash import setup_trailing_slash_redirects, slashed
from proxy.routes.usage import setup_usage_routes
from proxy.settings import Settings
from proxy.state import POOL, SETTINGS

# Reachable without a key: liveness, readiness, the API docs, the console's files (it signs in
# itself, then calls the API with a token), and the probes the stock `ollama` CLI
# sends without one. /metrics authenticates itself (an admin key, or METRICS_TOKEN).
_PUBLIC_ADDRESSES = (
    HEALTH_PATH,
    READY_PATH,
    OPENAPI_PATH,
    DOCS_PATH,
    *DOCS_ASSET_PATHS,
    REDOC_PATH,
    *REDOC_ASSET_PATHS,
    METRICS_PATH,
    *OLLAMA_PUBLIC_PATHS,
)
# Each with a trailing slash too, redirected to the address without it (routes/trailing_slash.py).
# The console lives under /ui/ (its files are relative to it); /ui redirects there.
PUBLIC_PATHS = (*_PUBLIC_ADDRESSES, *slashed(_PUBLIC_ADDRESSES), "/ui", CONSOLE_PATH, *CONSOLE_ASSET_PATHS)


def create_app(
    settings: Settings, *, sink: RecordSink | None = None, limits_clock: Callable[[], float] = time.time
) -> web.Application:
    """Build the gateway. `settings.database_url` and `settings.secret_key` must be resolved.

    `limits_clock` is the wall clock the per-key limits run on; tests inject a fake one.
    """
    assert settings.database_url and settings.secret_key, "resolve the database and secret first (cli/database.py)"
    plugins = load_plugins(settings)  # first: a bad GATEWAY_PLUGINS stops startup before anything opens
    app = web.Application(client_max_size=settings.max_body_size)
    app[SETTINGS] = settings
    app[BACKENDS] = create_backends(app)  # a bad OLLAMA_BACKENDS file stops startup here too
    app[RECORD_SINK] = sink or create_writer(settings)  # tests may pass their own sink
    # Shared by every process through the limit ledger (proxy/ledger/), once ledger_context opens it.
    app[LIMITER] = SharedLimiter(None, when_down=settings.limits_when_db_down, clock=limits_clock)
    app[FAIR_QUEUE] = create_fair_queue(app)  # node slots leased through the same ledger
    # Sent with each heartbeat, so /api/backends shows every process's requests, not one's.
    app[PROCESS_ACTIVITY] = partial(process_activity, app[BACKENDS], app[FAIR_QUEUE])
    app[METRICS] = GatewayMetrics(
        writer=app[RECORD_SINK],
        pool=partial(app.get, POOL),
        limiter=app[LIMITER],
        backends=app[BACKENDS],
        fair_queue=app[FAIR_QUEUE],
    )
    app[TOKEN_SIGNER] = TokenSigner(settings.secret_key)
    # The timing middleware's sink: the usage log, then metrics and the access line from the same record.
    observers = [app[METRICS].observe, log_access] if settings.access_log else [app[METRICS].observe]
    observed = ObservedSink(app[RECORD_SINK], observers)

    # Resources in dependency order; cleanup runs in reverse, so the pool closes last.
    app.cleanup_ctx.append(pool_context)
    app.cleanup_ctx.append(request_log_context)  # drains before the pool closes
    app.cleanup_ctx.append(ledger_context)  # gives leases back once requests have drained
    app.cleanup_ctx.append(_key_store_context)
    app.cleanup_ctx.append(key_events_context)
    app.cleanup_ctx.append(startup_keys_context)
    app.cleanup_ctx.append(upstream_session_context)
    app.cleanup_ctx.append(backends_context)  # polls the nodes (several only) with the upstream session
    app.cleanup_ctx.append(body_parser_context)  # a worker process, started by the first huge body

    # Timing is outermost so it sees (and records) every rejection; errors render rejections
    # as JSON before timing reads the status; auth comes before anything that is per key.
    # No CORS_ORIGINS, no CORS layer at all: nothing to answer, and nothing spent per request.
    cors = [cors_middleware(origins=settings.cors_origins)] if settings.cors_origins else []
    app.middlewares.extend(
        [
            timing_middleware(sink=observed, trusted_proxies=settings.trusted_proxies),
            errors_middleware(),
            *cors,  # before auth: browsers send preflights without a key
            auth_middleware(public_paths=PUBLIC_PATHS, signer=app[TOKEN_SIGNER]),
            rate_limit_middleware(limiter=app[LIMITER]),  # after auth: limits are per key
            *plugins,  # GATEWAY_PLUGINS last: they see the key, within its limits
        ]
    )
    cors_headers = [add_cors_headers] if settings.cors_origins else []
    app.on_response_prepare.append(
        _each_response(
            remember_started_response,
            add_request_id,
            add_rate_limit_headers,
            *cors_headers,
            add_server_timing,
            app[METRICS].on_response_prepare,
        )
    )
    app.on_startup.append(app[METRICS].on_startup)
    app.on_shutdown.append(close_fair_queue)

    setup_health_routes(app)
    setup_ready_routes(app)
    setup_metrics_routes(app)
    setup_docs_routes(app)
    setup_redoc_routes(app)
    setup_console_routes(app)
    setup_trailing_slash_redirects(app, _PUBLIC_ADDRESSES)
    setup_auth_token_routes(app)
    setup_key_routes(app)
    setup_stats_routes(app)
    setup_usage_routes(app)
    setup_log_routes(app)
    setup_model_routes(app)
    setup_backend_routes(app)
    setup_passthrough_routes(app)  # last: Ollama's own routes
    return app


async def _key_store_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[KEY_STORE] = store = KeyStore(app[POOL], settings.secret_key)
    operator_keys = [key for key in (settings.demo_admin_key, settings.demo_user_key) if key]
    app[KEY_CACHE] = cache = KeyCache(store, ttl=settings.key_cache_ttl, operator_keys=operator_keys)
    await cache.load_known()  # before the first request: a forged key then never costs a query
    yield


ResponseHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def _each_response(*hooks: Callable[[web.Request, web.StreamResponse], None]) -> ResponseHook:
    """The gateway's response hooks as one on_response_prepare receiver: aiohttp awaits each receiver
    it holds, and these are plain functions, so one coroutine per response instead of one per hook."""

    if any(inspect.iscoroutinefunction(hook) for hook in hooks):
        raise TypeError("response hooks run as plain functions: a coroutine function would never run")

    async def each(request: web.Request, response: web.StreamResponse) -> None:
        for hook in hooks:
            hook(request, response)

    return each
