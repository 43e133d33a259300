"""The models a request body names (JSON or multipart), found without stalling the event loop.

Small bodies (nearly all) are parsed inline. A larger one is parsed in a separate process: a
thread would not help, since `json.loads` holds the interpreter lock from start to end, and a
95 MB body of millions of keys froze every other request for 10 s (the email package's multipart
parser, pure Python, takes ~1 s per 20 MB of audio). Only what the gateway needs comes back (the
model fields, by `requested_models` / `multipart_model`), never the parsed object. A streaming
parser in this process would still hold the lock, or run in pure Python at a small fraction of
`json.loads`'s speed; another process is the one way to keep the loop free.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from aiohttp import web

from proxy.errors import GatewayError
from proxy.passthrough.body import parse_json_object
from proxy.passthrough.model_policy import MODEL_FIELDS, multipart_model, requested_models

# json.loads takes about 1 ms for this much: inline costs less than the trip to the worker.
INLINE_PARSE_LIMIT = 256 * 1024


def json_models(body: bytes | bytearray, fields: tuple[str, ...] = MODEL_FIELDS) -> list[str]:
    """The models a JSON object body names in `fields`, the one Ollama acts on first; 400 when it is
    not a JSON object."""
    return requested_models(parse_json_object(body), fields)


def form_models(content_type: str, body: bytes | bytearray) -> list[str]:
    """The model a multipart form names; 400 when it is not well-formed multipart."""
    model = multipart_model(content_type, body)
    return [model] if model else []


def _scan(parse: Callable[..., list[str]], *args: Any) -> tuple[int, str, list[str]]:
    """In the worker: (status, message, models); exceptions do not pickle back with their status."""
    try:
        return 200, "", parse(*args)
    except GatewayError as exc:
        return exc.status, exc.message, []
    except MemoryError:
        return 413, "request body is too large to parse", []


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group; the gateway shuts the worker down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class BodyParser:
    """Finds the models request bodies name, parsing the large ones in one lazily started worker process."""

    def __init__(self, *, inline_limit: int = INLINE_PARSE_LIMIT) -> None:
        self._inline_limit = inline_limit
        self._pool: ProcessPoolExecutor | None = None

    async def json_models(self, body: bytes | bytearray, fields: tuple[str, ...] = MODEL_FIELDS) -> list[str]:
        if len(body) <= self._inline_limit:
            return json_models(body, fields)
        return await self._in_worker(json_models, body, fields)

    async def form_models(self, content_type: str, body: bytes | bytearray) -> list[str]:
        if len(body) <= self._inline_limit:
            return form_models(content_type, body)
        return await self._in_worker(form_models, content_type, body)

    async def _in_worker(self, parse: Callable[..., list[str]], *args: Any) -> list[str]:
        pool = self._pool or self._start()
        try:
            status, message, models = await asyncio.get_running_loop().run_in_executor(pool, _scan, parse, *args)
        except BrokenProcessPool:
            # The worker died (killed for memory, say): the next large body starts a new one. Only
            # the broken pool is dropped, never one another request has started since.
            if self._pool is pool:
                self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise GatewayError(503, "request body could not be parsed; try again", {"Retry-After": "1"}) from None
        if status != 200:
            raise GatewayError(status, message)
        return models

    def _start(self) -> ProcessPoolExecutor:
        # spawn: a forked copy of a process running an event loop, asyncpg and threads is unsafe.
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_interrupts
        )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


BODY_PARSER = web.AppKey("body_parser", BodyParser)


async def body_parser_context(app: web.Application) -> AsyncIterator[None]:
    app[BODY_PARSER] = parser = BodyParser()
    yield
    await asyncio.to_thread(parser.close)  # a parse under way finishes first; the loop stays free
