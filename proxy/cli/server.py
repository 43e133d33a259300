"""Running the app on a socket until SIGTERM/SIGINT/SIGHUP, then shutting down in order."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

from proxy.cli.head_timeout import GatewayRunner
from proxy.signals import stop_signals_on_loop
from proxy.state import SETTINGS

log = logging.getLogger(__name__)
T = TypeVar("T")

# Handlers whose client went away are cancelled, which closes their upstream request, so
# Ollama stops generating for nobody (https://github.com/ollama/ollama/issues/1695;
# https://docs.aiohttp.org/en/stable/web_advanced.html#peer-disconnection).
RUNNER_OPTIONS: dict[str, Any] = {
    "handler_cancellation": True,
    "access_log": None,  # the request log is the access log; aiohttp's would repeat it
    "shutdown_timeout": 30.0,
    # Bodies are relayed as the client sent them, Content-Encoding included (zstd on /v1). With
    # aiohttp's default, a gzip body would be inflated yet forwarded still labelled gzip.
    "auto_decompress": False,
}


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when it is installed (fewer CPU µs per request: docs/benchmarks.md),
    else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def event_loop_name() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


# Objects allocated minus freed before a young-generation collection (CPython's default is 700).
# Almost everything a request allocates is freed by reference counting when it ends; at 700 the
# collector ran every request or two, tracing the objects of every request in flight and promoting
# them, for ~25 µs a request (measured with tests/bench: docs/benchmarks.md). Cycles still go at
# most 20,000 objects later.
GC_THRESHOLD = (20_000, 20, 10)


def _tune_gc() -> None:
    # What exists once the app is up (modules, routes, pools) lives as long as the process: freeze
    # it out of the collector's scans.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


# Connections the kernel completes and holds until the loop accepts them. aiohttp's default, 128, was
# overflowed by a thousand streams opened at once while the loop was busy relaying others: the kernel
# dropped the handshakes beyond it and reset some of those clients. 2048, as gunicorn and uvicorn default
# (https://docs.gunicorn.org/en/stable/settings.html#backlog); Linux caps it at net.core.somaxconn.
LISTEN_BACKLOG = 2048


async def serve_app(app: web.Application, host: str, port: int, banner: list[str], *, reuse_port: bool = False) -> None:
    """Serve until SIGTERM/SIGINT/SIGHUP. `reuse_port`: several processes share the port (serve --workers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    restore_signals = stop_signals_on_loop(loop, stop.set)  # SIGHUP too: a closed terminal drains like a stop
    runner = GatewayRunner(app, header_read_timeout=app[SETTINGS].header_read_timeout, **RUNNER_OPTIONS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG, reuse_port=reuse_port or None)
        await site.start()
        _tune_gc()
        for line in banner:
            log.info("%s", line)
        log.info("listening on http://%s:%d", host, port)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        restore_signals()
