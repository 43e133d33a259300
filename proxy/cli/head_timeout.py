"""A deadline on reading a request head, which aiohttp does not have (slowloris).

aiohttp times only idle keep-alive connections (`keepalive_timeout`, an hour by default, and
longer than nginx's upstream keep-alive on purpose), counted from the previous response, not from
the head's first byte: 1,000 clients sending a header byte a second each held a descriptor for an
hour. Here a head must be complete HEADER_READ_TIMEOUT seconds after it starts, or after the
connection opens; otherwise the connection is closed (within a quarter of that again: HeadWatch),
as nginx's `client_header_timeout` does.
The body has its own limits where it is read (passthrough/body.py read_body).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from proxy.passthrough.expect_continue import ignoring_unknown_expectations


class HeadWatch:
    """The server's connections whose head is being read, checked every quarter of the limit.

    One timer for the whole server, not one armed and cancelled per request (~4 µs each, on every
    keep-alive request: docs/benchmarks.md). A head still incomplete `limit` seconds after its first
    byte (or after the connection opened) has its connection closed within 1.25 × `limit`.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._step = limit / 4
        self._handlers: set[HeadTimeoutRequestHandler] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, handler: HeadTimeoutRequestHandler) -> None:
        self._handlers.add(handler)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._step, self._sweep)

    def discard(self, handler: HeadTimeoutRequestHandler) -> None:
        self._handlers.discard(handler)

    def _sweep(self) -> None:
        self._timer = None
        if not self._handlers:
            return  # the next connection starts the timer again
        loop = asyncio.get_running_loop()
        deadline = loop.time() - self.limit
        for handler in list(self._handlers):
            if handler.head_since is not None and handler.head_since <= deadline:
                handler.head_since = None
                handler.force_close()
        self._timer = loop.call_later(self._step, self._sweep)


class HeadTimeoutRequestHandler(RequestHandler):
    """aiohttp's connection handler, closing the connection when a head takes too long.

    Relies on two details of aiohttp 3.14's RequestHandler (web_protocol.py): `_request_count`
    grows as each head is parsed (a bad head included), and `_waiter` is pending while the
    connection waits for its next request. tests/cli/test_slow_clients.py pins both.
    """

    def __init__(self, manager: web.Server, *, head_watch: HeadWatch, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_watch = head_watch
        self.head_since: float | None = None  # loop time the head being read began; None: none is

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.head_since = self._loop.time()  # a client that connects and sends nothing, or too little
        self._head_watch.add(self)

    def data_received(self, data: bytes) -> None:
        if self.head_since is None and self._waiting_for_head():
            self.head_since = self._loop.time()  # the first byte of the next request on a kept-alive connection
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self.head_since = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._head_watch.discard(self)
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        waiter = self._waiter
        return waiter is not None and not waiter.done()


class _HeadTimeoutServer(web.Server):
    def __init__(self, *args: Any, header_read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_watch = HeadWatch(header_read_timeout)

    def __call__(self) -> RequestHandler:
        return HeadTimeoutRequestHandler(self, loop=self._loop, head_watch=self._head_watch, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """web.AppRunner whose connections have a head timeout and whose requests carry no Expect but
    100-continue (passthrough/expect_continue.py); the rest is aiohttp's own server."""

    def __init__(self, app: web.Application, *, header_read_timeout: float, **kwargs: Any) -> None:
        if not header_read_timeout > 0:
            raise ValueError("header_read_timeout must be greater than 0")
        super().__init__(app, **kwargs)
        self._header_read_timeout = header_read_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # runs the app's startup, as AppRunner does
        return _HeadTimeoutServer(
            server.request_handler,
            request_factory=ignoring_unknown_expectations(server.request_factory),
            handler_cancellation=server.handler_cancellation,
            loop=asyncio.get_running_loop(),
            header_read_timeout=self._header_read_timeout,
            **server._kwargs,
        )
