"""Relaying Ollama's answer chunk by chunk, with usage measured on the side."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import web

from proxy.request_log.record import CLIENT_CLOSED, RequestRecord
from proxy.passthrough.upstream import UPSTREAM_ERRORS, downstream_response_headers
from proxy.passthrough.usage_tap import UsageTap

log = logging.getLogger(__name__)



async def relay_response(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    record: RequestRecord,
    *,
    started: float,
    request_bytes: int,
) -> web.StreamResponse:
    """Send the upstream status, headers and body as they arrive: nothing buffered, added or removed.

    If Ollama dies or goes silent mid-stream, the client connection is cut without the final
    chunk, so the client sees a truncated body and never a fabricated clean end, as nginx does
    (https://github.com/nginx/nginx-tests/blob/master/proxy_unfinished.t).
    """
    tap = UsageTap(upstream.headers.get("Content-Type", ""), status=upstream.status, request_bytes=request_bytes)
    whole = _whole_body(request, upstream)
    if whole is not None:
        return await _relay_whole(request, upstream, record, tap, whole, started)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                  headers=downstream_response_headers(upstream.headers))
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    await response.prepare(request)
    content = upstream.content
    try:
        async for chunk in content.iter_any():
            if record.ttfb is None:
                record.ttfb = (time.perf_counter() - started) * 1000
            tap.feed(chunk)
            record.bytes_out += len(chunk)
            if content.at_eof():  # the last chunk: it and the end of the body leave in one write
                await response.write_eof(chunk)
                break
            await response.write(chunk)
    except ConnectionResetError:
        # The client left between two chunks (handler cancellation usually comes first).
        upstream.close()
        record.status_code = CLIENT_CLOSED
        record.error = "client closed the request"
        return response
    except UPSTREAM_ERRORS as exc:
        upstream.close()
        record.error = "upstream timed out mid-response" if isinstance(exc, asyncio.TimeoutError) else (
            "upstream connection lost mid-response")
        log.warning("request %s: %s; cutting the client stream", record.id, record.error)
        if request.transport is not None:
            request.transport.abort()
        return response
    finally:
        _note_usage(record, tap)
    if record.ttfb is None:
        record.ttfb = (time.perf_counter() - started) * 1000
    await response.write_eof()
    return response


def _whole_body(request: web.Request, upstream: aiohttp.ClientResponse) -> bytes | None:
    """The body, when all of it came in with the headers (most answers that are not streams), else None.

    HEAD and bodiless statuses keep the streaming path, which copies Ollama's Content-Length as is.
    """
    content = upstream.content
    if (upstream.content_length is None or not content.is_eof() or content.total_bytes != upstream.content_length
            or request.method == "HEAD" or upstream.status < 200 or upstream.status in (204, 304)):
        return None
    return content.read_nowait()


async def _relay_whole(request: web.Request, upstream: aiohttp.ClientResponse, record: RequestRecord,
                       tap: UsageTap, body: bytes, started: float) -> web.Response:
    # A web.Response sends its headers with its body: one write to the client instead of two,
    # and nothing waits, since every byte is here already.
    record.ttfb = (time.perf_counter() - started) * 1000
    record.bytes_out += len(body)
    tap.feed(body)
    _note_usage(record, tap)
    response = web.Response(status=upstream.status, reason=upstream.reason, body=body,
                            headers=downstream_response_headers(upstream.headers))
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionResetError:
        record.status_code = CLIENT_CLOSED
        record.error = "client closed the request"
    return response


_MAX_TOKENS = 2**31 - 1  # the request_log columns are integers


def _tokens(value: int | None) -> int | None:
    return None if value is None else min(max(value, 0), _MAX_TOKENS)


def _note_usage(record: RequestRecord, tap: UsageTap) -> None:
    usage = tap.finish()
    record.prompt_tokens = _tokens(usage.prompt_tokens)
    record.completion_tokens = _tokens(usage.completion_tokens)
    record.usage_estimated = usage.estimated
    record.model = usage.model or record.model  # what Ollama ran, over how the request spelled it
    if usage.error and record.error is None:
        record.error = usage.error
