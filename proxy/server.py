"""Running the app on a socket until SIGTERM/SIGINT, then shutting down in order."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

# Handlers whose client went away are cancelled, which closes their upstream request, so
# Ollama stops generating for nobody (reliability.md §4).
RUNNER_OPTIONS: dict[str, Any] = {
    "handler_cancellation": True,
    "access_log": None,  # the request log is the access log; aiohttp's would repeat it
    "shutdown_timeout": 30.0,
}


async def serve_app(app: web.Application, host: str, port: int, banner: list[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, **RUNNER_OPTIONS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        for line in banner:
            log.info("%s", line)
        log.info("listening on http://%s:%d", host, port)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
