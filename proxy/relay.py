"""Relaying Ollama's answer chunk by chunk, with usage measured on the side."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import web

from .request_record import CLIENT_CLOSED, RequestRecord
from .upstream import UPSTREAM_ERRORS, downstream_response_headers
from .usage import UsageTap

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
    chunk, so the client sees a truncated body and never a fabricated clean end (reliability.md §4).
    """
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                  headers=downstream_response_headers(upstream.headers))
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    tap = UsageTap(upstream.headers.get("Content-Type", ""), status=upstream.status, request_bytes=request_bytes)
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            if record.ttfb is None:
                record.ttfb = (time.perf_counter() - started) * 1000
            tap.feed(chunk)
            record.bytes_out += len(chunk)
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


def _note_usage(record: RequestRecord, tap: UsageTap) -> None:
    usage = tap.finish()
    record.prompt_tokens = usage.prompt_tokens
    record.completion_tokens = usage.completion_tokens
    record.usage_estimated = usage.estimated
    if usage.error and record.error is None:
        record.error = usage.error
