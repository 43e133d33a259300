"""GET /ready (no key): 200 when the gateway can serve, 503 with the reasons when it cannot.

Can serve = Ollama answers GET /api/version (with several nodes: one of them is healthy), and usage
records have somewhere to go: PostgreSQL answers SELECT 1, or else the journal directory is writable
(records wait there; known keys keep working from the cache); and limits can be enforced (not with
LIMITS_WHEN_DB_DOWN=closed while the limit ledger is away). A journal directory found unwritable at
start is not ready either, the database up or not: the next outage would lose records. Each check is
bounded by CHECK_TIMEOUT.
GET /health stays plain liveness.
/ready needs no key, so its answer is shared: one check at a time, reused for CACHE_SECONDS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from proxy.backends.registry import BACKENDS
from proxy.ledger.context import LIMITER
from proxy.ledger.limiter import CLOSED, LEDGER, LOCAL
from proxy.passthrough.upstream import UPSTREAM_ERRORS, upstream_url
from proxy.request_log.context import JOURNAL_DIR, RequestLogWriter
from proxy.request_log.journal import Journal
from proxy.request_log.record import RECORD_SINK
from proxy.state import POOL, SETTINGS, UPSTREAM_SESSION

PATH = "/ready"
CHECK_TIMEOUT = 2.0
OK = "ok"
CACHE_SECONDS = 1.0
Answer = tuple[int, dict]  # status, body


class SharedCheck:
    """The latest answer of `check`, reused for `ttl` seconds after it came; callers that arrive
    while it runs wait for that same run. Anyone can call /ready, and each call would otherwise
    cost a database query and a request to Ollama."""

    def __init__(
        self,
        check: Callable[[], Awaitable[Answer]],
        *,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._ttl = ttl
        self._clock = clock
        self._run: asyncio.Future[Answer] | None = None
        self._fresh_until = 0.0

    async def answer(self) -> Answer:
        run = self._run
        if run is None or (run.done() and self._clock() >= self._fresh_until):
            run = self._run = asyncio.ensure_future(self._check())
            run.add_done_callback(self._finished)
        # shield: a caller that goes away must not cancel the run the others wait on.
        return await asyncio.shield(run)

    def _finished(self, run: asyncio.Future) -> None:
        self._fresh_until = self._clock() + self._ttl
        if run.cancelled() or run.exception() is not None:
            self._run = None  # never reuse a failure of the check itself; the next call retries


async def _check(app: web.Application) -> Answer:
    database, ollama = await asyncio.gather(_database(app), _ollama(app))
    checks = {"database": database, "ollama": ollama}
    sink = app[RECORD_SINK]
    if isinstance(sink, RequestLogWriter) and sink.journal_error is not None:
        checks["journal"] = OK if await sink.probe_journal() else f"{sink.journal_error} (GATEWAY_DATA_DIR)"
    elif database != OK:
        checks["journal"] = await _journal(app)
    limiter = app[LIMITER]
    # Limits: shared through the ledger; or LIMITS_WHEN_DB_DOWN while it is away (`closed`: limited keys get 503).
    checks["limits"] = {LEDGER: "shared", LOCAL: f"this process's share, 1/{limiter.processes} (ledger away)"}.get(
        limiter.mode, "closed (ledger away)"
    )
    serving = (
        ollama == OK
        and checks.get("journal", OK) == OK
        and OK in (database, checks.get("journal"))
        and limiter.mode != CLOSED
    )
    return 200 if serving else 503, {"status": "ready" if serving else "unavailable", "checks": checks}


def ready_handler(app: web.Application) -> Callable[[web.Request], Awaitable[web.Response]]:
    shared = SharedCheck(lambda: _check(app))

    async def ready(request: web.Request) -> web.Response:
        status, body = await shared.answer()
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    return ready


async def _database(app: web.Application) -> str:
    pool = app.get(POOL)
    if pool is None:
        return "not connected"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await pool.fetchval("SELECT 1")
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g}s"
    except Exception as exc:  # whatever the driver raises, the answer is "not ready", never a 500
        return f"unreachable ({type(exc).__name__})"
    return OK


async def _ollama(app: web.Application) -> str:
    backends = app[BACKENDS]
    if backends.single is None:  # several nodes, polled: ready while one is healthy
        healthy = len(backends.healthy())
        return OK if healthy else f"no healthy node of {len(backends.nodes)}"
    url = upstream_url(app[SETTINGS].ollama_base_url, "/api/version")
    try:
        timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)
        async with app[UPSTREAM_SESSION].get(url, timeout=timeout) as response:
            await response.read()
            status = response.status
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g}s"
    except UPSTREAM_ERRORS as exc:
        return f"unreachable ({type(exc).__name__})"
    return OK if status == 200 else f"answered {status}"


async def _journal(app: web.Application) -> str:
    sink = app[RECORD_SINK]
    # A test's own sink has no journal: probe where the writer would keep it.
    journal = sink.journal if isinstance(sink, RequestLogWriter) else Journal(app[SETTINGS].data_dir / JOURNAL_DIR)
    try:
        await asyncio.to_thread(journal.probe)  # the same write, fsync and remove as the writer's own check
    except OSError:
        # SECURITY: no path in the answer; /ready needs no key, and the layout of the disk is no one's business.
        return "not writable"
    return OK


def setup_ready_routes(app: web.Application) -> None:
    app.router.add_get(PATH, ready_handler(app))
