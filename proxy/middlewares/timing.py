"""Outermost middleware: gives every request an id and a usage record, and hands the record on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from ipaddress import IPv4Network, IPv6Network

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from multidict import istr

from proxy.middlewares.client_address import Network, client_address
from proxy.middlewares.request_id import HEADER, request_id_from
from proxy.request_log.record import CLIENT_CLOSED, RecordSink, RequestRecord
from proxy.request_log.record import RECORD

X_REAL_IP = istr("X-Real-IP")


def timing_middleware(*, sink: RecordSink, trusted_proxies: Sequence[Network] = ()) -> Middleware:
    """Every request that reaches the app yields exactly one record, whatever happens to it.

    The record is enqueued in `finally` with a synchronous call, so neither an exception nor
    the cancellation of a handler whose client went away can skip it. Its text fields are made
    storable first (request_record.make_storable), whatever the client sent. Its client address is
    the peer's, or what a peer in `trusted_proxies` forwarded (see client_address.py).
    """
    trusted = tuple(trusted_proxies)
    if not all(isinstance(network, (IPv4Network, IPv6Network)) for network in trusted):
        raise TypeError("trusted_proxies must be ipaddress networks")

    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        record = RequestRecord(
            id=request_id_from(request.headers.get(HEADER)),
            created_at=datetime.now(timezone.utc),
            endpoint=request.path,
            method=request.method,
            client_ip=_client_ip(request, trusted),
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
            record.make_storable()
            sink.enqueue(record)

    return timing


def _client_ip(request: web.Request, trusted: tuple[Network, ...]) -> str | None:
    if not trusted:  # no proxy in front: no header work on the hot path
        return request.remote
    headers = request.headers
    # Repeated headers are one list (RFC 9110 §5.3), in the order they came.
    return client_address(request.remote,
                          forwarded_for=",".join(headers.getall(hdrs.X_FORWARDED_FOR, ())),
                          real_ip=",".join(headers.getall(X_REAL_IP, ())), trusted=trusted)


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches streamed responses, whose headers leave before the handler ends."""
    record = request.get(RECORD)
    if record is not None:
        response.headers[HEADER] = str(record.id)
