"""Outermost middleware: gives every request an id, and assembles its usage record once it has ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from multidict import istr

from proxy.keys.format import API_KEY
from proxy.middlewares.client_address import Network, client_address
from proxy.middlewares.errors import ERROR_MESSAGE
from proxy.middlewares.rate_limit import REFUSED_BY
from proxy.middlewares.request_id import HEADER, request_id_from
from proxy.passthrough.handler import FORWARDED
from proxy.passthrough.relay import CLIENT_LEFT
from proxy.request_log.record import CLIENT_CLOSED, REQUEST_START, RecordSink, RequestRecord, RequestStart

X_REAL_IP = istr("X-Real-IP")


def timing_middleware(*, sink: RecordSink, trusted_proxies: Sequence[Network] = ()) -> Middleware:
    """Every request that reaches the app yields exactly one record, whatever happens to it.

    The record is built from what each stage put on the request under its own key, and enqueued
    in `finally` with a synchronous call, so neither an exception nor the cancellation of a handler
    whose client went away can skip it. Its text fields are made storable first
    (RequestRecord.make_storable), whatever the client sent. Its client address is the peer's, or
    what a peer in `trusted_proxies` forwarded (see client_address.py).
    """
    trusted = tuple(trusted_proxies)
    if not all(isinstance(network, (IPv4Network, IPv6Network)) for network in trusted):
        raise TypeError("trusted_proxies must be ipaddress networks")

    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = request[REQUEST_START] = RequestStart(
            request_id_from(request.headers.get(HEADER)), datetime.now(UTC), time.perf_counter()
        )
        client_ip = _client_ip(request, trusted)
        status, cancelled = 0, False  # an exception that no middleware rendered leaves no status
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # a redirect, raised as aiohttp does, passes the errors middleware
            status = exc.status
            raise
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            record = _record(request, start, client_ip, status, cancelled)
            record.make_storable()
            sink.enqueue(record)

    return timing


def _record(
    request: web.Request, start: RequestStart, client_ip: str | None, status: int, cancelled: bool
) -> RequestRecord:
    """The request's record, from each stage's own key: auth's key, the limiter's refusal, the
    errors middleware's message, and what the pass-through named and measured."""
    key = request.get(API_KEY)
    error = request.get(ERROR_MESSAGE)
    record = RequestRecord(
        id=start.id,
        created_at=start.arrived_at,
        endpoint=request.path,
        method=request.method,
        client_ip=client_ip,
        bytes_in=request.content_length or 0,
        api_key_id=key.id if key is not None else None,
        status_code=CLIENT_CLOSED if cancelled else status,
        response_time=(time.perf_counter() - start.clock) * 1000,
        error=error,
        # Only a refusal sets it, and a refusal is always a 429: no lookup otherwise.
        limit=request.get(REFUSED_BY) if status == 429 else None,
    )
    forwarded = request.get(FORWARDED)
    if forwarded is not None:
        record.bytes_in = forwarded.bytes_in
        record.model = forwarded.model
        record.node = forwarded.node
        record.queue_ms = forwarded.queue_ms
        relayed = forwarded.relayed
        if relayed is not None:
            record.ttfb = relayed.ttfb
            record.bytes_out = relayed.bytes_out
            record.prompt_tokens = relayed.prompt_tokens
            record.completion_tokens = relayed.completion_tokens
            record.usage_estimated = relayed.usage_estimated
            record.model = relayed.model or record.model  # what Ollama ran, over how the request spelled it
            record.error = relayed.error or error  # the relay saw it first
            if relayed.client_left:
                record.status_code = CLIENT_CLOSED
    if cancelled and record.error is None:
        record.error = CLIENT_LEFT
    return record


def _client_ip(request: web.Request, trusted: tuple[Network, ...]) -> str | None:
    if not trusted:  # no proxy in front: no header work on the hot path
        return request.remote
    headers = request.headers
    # Repeated headers are one list (RFC 9110 §5.3), in the order they came.
    return client_address(
        request.remote,
        forwarded_for=",".join(headers.getall(hdrs.X_FORWARDED_FOR, ())),
        real_ip=",".join(headers.getall(X_REAL_IP, ())),
        trusted=trusted,
    )


def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches streamed responses, whose headers leave before the handler ends."""
    start = request.get(REQUEST_START)
    if start is not None:
        response.headers[HEADER] = str(start.id)
