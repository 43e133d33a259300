"""Relaying Ollama's answer chunk by chunk, with usage measured on the side."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial

from aiohttp import ServerTimeoutError, web

from proxy.passthrough.upstream import SILENCES, UPSTREAM_ERRORS, Answer, downstream_response_headers
from proxy.passthrough.usage_tap import Usage, UsageTap
from proxy.request_log.record import request_id

log = logging.getLogger(__name__)

CLIENT_LEFT = "client closed the request"


@dataclass(slots=True)
class Relayed:
    """What relaying one answer measured; complete once relay_response has ended, however it ended."""

    ttfb: float | None = None  # ms from the upstream request to Ollama's first body byte
    bytes_out: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_estimated: bool = False
    model: str | None = None  # the model Ollama's answer names: what it ran
    error: str | None = None
    client_left: bool = False  # the client went away before the last byte (nginx's 499)

    @property
    def tokens_used(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


async def relay_response(
    request: web.Request,
    upstream: Answer,
    relayed: Relayed,
    *,
    started: float,
    request_bytes: int,
) -> web.StreamResponse:
    """Send the upstream status, headers and body as they arrive: nothing buffered, added or removed.

    What it measures goes into `relayed`, which only it writes: filled in `finally`, so a cancelled
    relay (the client left) still reports the tokens Ollama spent. If Ollama dies or goes silent
    mid-stream, the client connection is cut without the final chunk, so the client sees a
    truncated body and never a fabricated clean end, as nginx does
    (https://github.com/nginx/nginx-tests/blob/master/proxy_unfinished.t).
    """
    content_type = upstream.headers.get("Content-Type", "")
    whole = _whole_body(request, upstream)
    if whole is not None:
        usage = UsageTap.whole(content_type, whole, status=upstream.status, request_bytes=request_bytes)
        return await _relay_whole(request, upstream, relayed, usage, whole, started)
    tap = UsageTap(content_type, status=upstream.status, request_bytes=request_bytes)
    response = web.StreamResponse(
        status=upstream.status, reason=upstream.reason, headers=downstream_response_headers(upstream.headers)
    )
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    content = upstream.content
    ttfb, bytes_out = None, 0
    watch = request.app[SILENCES].watch(partial(_cut_silent, upstream))
    try:
        await response.prepare(request)  # inside: a client may be gone before its headers leave
        async for chunk in content.iter_any():
            watch.heard()
            if ttfb is None:
                ttfb = (time.perf_counter() - started) * 1000
            tap.feed(chunk)
            bytes_out += len(chunk)
            watch.writing = True
            if content.at_eof():  # the last chunk: it and the end of the body leave in one write
                await response.write_eof(chunk)
                break
            await response.write(chunk)
            watch.writing = False
    except ConnectionResetError:
        # The client left before the headers or between two chunks (handler cancellation usually
        # comes first).
        upstream.close()
        relayed.client_left, relayed.error = True, CLIENT_LEFT
        return response
    except UPSTREAM_ERRORS as exc:
        upstream.close()
        relayed.error = (
            "upstream timed out mid-response"
            if isinstance(exc, asyncio.TimeoutError)
            else ("upstream connection lost mid-response")
        )
        log.warning("request %s: %s; cutting the client stream", request_id(request), relayed.error)
        if request.transport is not None:
            request.transport.abort()
        return response
    finally:
        watch.stop()
        relayed.ttfb, relayed.bytes_out = ttfb, bytes_out
        _note_usage(relayed, tap.finish())
    if relayed.ttfb is None:
        relayed.ttfb = (time.perf_counter() - started) * 1000
    await response.write_eof()
    return response


def _cut_silent(upstream: Answer) -> None:
    """What aiohttp's own read timeout does: the body's reader fails with a ServerTimeoutError (an
    asyncio.TimeoutError), and the connection is closed."""
    upstream.content.set_exception(ServerTimeoutError("Ollama sent nothing within the read timeout"))
    upstream.close()


def _whole_body(request: web.Request, upstream: Answer) -> bytes | None:
    """The body, when all of it came in with the headers (most answers that are not streams), else None.

    HEAD and bodiless statuses keep the streaming path, which copies Ollama's Content-Length as is.
    """
    content = upstream.content
    if (
        upstream.content_length is None
        or not content.is_eof()
        or content.total_bytes != upstream.content_length
        or request.method == "HEAD"
        or upstream.status < 200
        or upstream.status in (204, 304)
    ):
        return None
    return content.read_nowait()


async def _relay_whole(
    request: web.Request, upstream: Answer, relayed: Relayed, usage: Usage, body: bytes, started: float
) -> web.Response:
    # A web.Response sends its headers with its body: one write to the client instead of two,
    # and nothing waits, since every byte is here already.
    relayed.ttfb = (time.perf_counter() - started) * 1000
    relayed.bytes_out = len(body)
    _note_usage(relayed, usage)
    response = web.Response(
        status=upstream.status, reason=upstream.reason, body=body, headers=downstream_response_headers(upstream.headers)
    )
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionResetError:
        relayed.client_left, relayed.error = True, CLIENT_LEFT
    return response


_MAX_TOKENS = 2**31 - 1  # the request_log columns are integers


def _tokens(value: int | None) -> int | None:
    return None if value is None else min(max(value, 0), _MAX_TOKENS)


def _note_usage(relayed: Relayed, usage: Usage) -> None:
    relayed.prompt_tokens = _tokens(usage.prompt_tokens)
    relayed.completion_tokens = _tokens(usage.completion_tokens)
    relayed.usage_estimated = usage.estimated
    relayed.model = usage.model
    if usage.error and relayed.error is None:
        relayed.error = usage.error
