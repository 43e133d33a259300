"""At start, one GET /api/version to Ollama: a gateway that cannot reach it says so at once.

The gateway serves anyway (Ollama may simply start later; until then requests get 502), but a new
user learns from the first screen that OLLAMA_BASE_URL points at nothing, not from the first 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from proxy.passthrough.upstream import UPSTREAM_ERRORS, upstream_url
from proxy.state import SETTINGS, UPSTREAM_SESSION

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 10.0  # seconds; the probe runs beside startup, never delaying it


async def ollama_probe_context(app: web.Application) -> AsyncIterator[None]:
    """Registered after the upstream session exists; the probe is cancelled if the gateway stops first."""
    task = asyncio.create_task(probe_ollama(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def probe_ollama(app: web.Application) -> bool:
    """Log a WARNING naming OLLAMA_BASE_URL unless Ollama answers GET /api/version with 200."""
    settings = app[SETTINGS]
    url = upstream_url(settings.ollama_base_url, "/api/version")
    base = settings.ollama_display_url
    try:
        async with app[UPSTREAM_SESSION].get(url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)) as response:
            status = response.status
    except UPSTREAM_ERRORS as exc:
        log.warning(
            "Ollama at %s (OLLAMA_BASE_URL) is unreachable: %s; the gateway answers 502 until it is up",
            base,
            _reason(exc),
        )
        return False
    if status != 200:
        log.warning("Ollama at %s (OLLAMA_BASE_URL) answered GET /api/version with %d: is it Ollama?", base, status)
        return False
    return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {PROBE_TIMEOUT:g}s"
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        # The errno's own text: asyncio's strerror is "Connect call failed ('127.0.0.1', 11434)".
        return os.strerror(exc.os_error.errno)
    return str(exc) or type(exc).__name__
