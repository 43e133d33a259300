"""Outermost middleware: gives every request an id and a usage record, and hands the record on."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..request_id import HEADER, request_id_from
from ..request_record import CLIENT_CLOSED, RecordSink, RequestRecord
from ..typedefs import RECORD



def timing_middleware(*, sink: RecordSink) -> Middleware:
    """Every request that reaches the app yields exactly one record, whatever happens to it.

    The record is enqueued in `finally` with a synchronous call, so neither an exception nor
    the cancellation of a handler whose client went away can skip it.
    """

    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        record = RequestRecord(
            id=request_id_from(request.headers.get(HEADER)),
            created_at=datetime.now(timezone.utc),
            endpoint=request.path,
            method=request.method,
            client_ip=request.remote,
            bytes_in=request.content_length or 0,
        )
        request[RECORD] = record
        try:
            response = await handler(request)
            # A relay that saw its client leave has already said so (499); keep that.
            record.status_code = record.status_code or response.status
            return response
        except asyncio.CancelledError:
            record.status_code = CLIENT_CLOSED
            record.error = record.error or "client closed the request"
            raise
        finally:
            record.response_time = (time.perf_counter() - started) * 1000
            sink.enqueue(record)

    return timing


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches streamed responses, whose headers leave before the handler ends."""
    record = request.get(RECORD)
    if record is not None:
        response.headers[HEADER] = str(record.id)
