"""Requests whose body is in memory, sent to a plain-HTTP node over pooled keep-alive connections.

Inference requests (a JSON body of a few KB) are nearly all the gateway forwards, and aiohttp's
ClientSession spent ~60 µs of CPU on each, against ~10 µs for the least a keep-alive client can do
(tests/bench/bench_upstream_client.py): a ClientRequest, a ClientResponse, a payload object, a
connection key, traces and cookie handling per request. This client keeps only what such a request
needs and leaves the protocol to aiohttp: each connection is aiohttp's own ResponseHandler, so status
line, headers, chunked bodies and Content-Length are parsed by the same (C) parser, with the same
limits, and the body arrives in the same StreamReader a ClientResponse hands out. What it does
itself: write the request in one `write`, skip 1xx answers, and keep connections for the next
request (RFC 9112 §9.3) unless the answer or its reading says not to.

Uploads streamed from the client, bodies over failover.ONE_WRITE and https:// nodes keep the session,
and so does everything if an aiohttp release changes the ResponseHandler calls used here (`usable()`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import time
from collections.abc import Iterable
from functools import partial

from aiohttp import ClientOSError, ClientResponseError, RequestInfo, ServerDisconnectedError, ServerTimeoutError
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy.errors import GatewayError
from proxy.passthrough.silence import Silences

IDLE_SECONDS = 30.0  # as the session's keepalive_timeout: an idle connection is closed after this long
_NO_BODY_LENGTH = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})  # aiohttp's ClientRequest.GET_METHODS
# Sent again once on a new connection when a kept one turns out closed, as aiohttp's session does
# (client.py IDEMPOTENT_METHODS; RFC 9112 §9.3.1): Ollama or a proxy in front may close an idle
# connection just as a request leaves on it.
_RETRIED_ON_A_NEW_CONNECTION = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def usable() -> bool:
    """ResponseHandler is aiohttp's client protocol, not its public API: checked once at start-up, so
    a release that changes what is used here falls back to the session instead of failing requests."""
    try:
        params = inspect.signature(ResponseHandler.set_response_params).parameters
    except (TypeError, ValueError):
        return False
    wanted = {"skip_payload", "read_until_eof", "auto_decompress", "read_bufsize"}
    return wanted <= params.keys() and all(
        callable(getattr(ResponseHandler, name, None)) for name in ("read", "close", "is_connected")
    )


class KeepAliveAnswer:
    """Ollama's answer: what the relay reads of a ClientResponse (status, reason, headers,
    content_length, content), and close() or release() for its connection."""

    __slots__ = ("status", "reason", "headers", "content", "content_length", "_protocol", "_client", "_node")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: CIMultiDictProxy[str],
        content: StreamReader,
        protocol: ResponseHandler,
        client: KeepAliveClient,
        node: tuple[str, int],
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content
        length = headers.get("Content-Length")
        self.content_length = int(length) if length is not None else None  # the parser accepts digits only
        self._protocol: ResponseHandler | None = protocol
        self._client = client
        self._node = node

    def close(self) -> None:
        """Drop the connection: Ollama stops generating for a client that left."""
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None

    def release(self) -> None:
        """The connection goes back to its pool if the whole answer was read and may be reused, else closed."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            self._client.give_back(self._node, protocol)


class KeepAliveClient:
    """One pool of idle connections per node (host and port), most recently used first.

    The wait for an answer's head is one of `silences`' watches: a node that sends nothing for the read
    timeout fails the request with a ServerTimeoutError (an asyncio.TimeoutError), as the session's
    sock_read does, and costs no timer of its own."""

    def __init__(self, *, connect_timeout: float, read_bufsize: int, silences: Silences) -> None:
        self._connect_timeout = connect_timeout
        self._read_bufsize = read_bufsize
        self._silences = silences
        self._idle: dict[tuple[str, int], list[tuple[ResponseHandler, float]]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(
        self, method: str, url: URL, headers: CIMultiDict[str], body: bytes | bytearray | None
    ) -> KeepAliveAnswer:
        """Send the request and wait for the head of its answer, within the connect timeout and the
        read timeout. Raises what aiohttp's client raises: ClientError subclasses, OSError,
        asyncio.TimeoutError."""
        data = _request_bytes(method, url, headers, body)  # a field with a line break: 400, nothing sent
        node = (url.raw_host or "", url.port or 80)
        protocol = self._reuse(node)
        if protocol is not None:
            try:
                message, content = await self._exchange(protocol, method, url, headers, data)
                return KeepAliveAnswer(message.code, message.reason, message.headers, content, protocol, self, node)
            except (ServerDisconnectedError, ClientOSError):
                if method not in _RETRIED_ON_A_NEW_CONNECTION:
                    raise
        protocol = await self._connect(*node)
        message, content = await self._exchange(protocol, method, url, headers, data)
        return KeepAliveAnswer(message.code, message.reason, message.headers, content, protocol, self, node)

    async def _exchange(
        self, protocol: ResponseHandler, method: str, url: URL, headers: CIMultiDict[str], data: bytes
    ) -> tuple:
        """Write the request and read the head of its answer; the connection is closed on any failure."""
        try:
            protocol.set_response_params(
                skip_payload=method == "HEAD",
                # As the session: an answer with neither a length nor chunks ends with its connection.
                read_until_eof=True,
                auto_decompress=False,
                read_bufsize=self._read_bufsize,
            )
            assert protocol.transport is not None
            protocol.transport.write(data)
            watch = self._silences.watch(partial(_no_answer, protocol))
            try:
                while True:
                    message, content = await protocol.read()
                    if not 100 <= message.code <= 199 or message.code == 101:
                        return message, content  # a 1xx is an interim answer (RFC 9110 §15.2); the real one follows
                    watch.heard()
            finally:
                watch.stop()
        except HttpProcessingError as exc:
            # A malformed head (status line, fields, length): a ClientError, as ClientResponse.start makes it.
            protocol.close()
            info = RequestInfo(url, method, CIMultiDictProxy(headers), url)
            raise ClientResponseError(info, (), status=exc.code, message=exc.message, headers=exc.headers) from exc
        except BaseException:
            protocol.close()
            raise

    def give_back(self, node: tuple[str, int], protocol: ResponseHandler) -> None:
        """Keep the connection for the next request to `node` if its answer was read to the end and
        nothing says to close it (Connection: close, HTTP/1.0, an error, bytes beyond the answer)."""
        if self._closed or protocol.should_close or not protocol.is_connected():
            protocol.close()
            return
        # time.monotonic, not the loop's time: asyncio.get_running_loop() costs a getpid(2) system call
        # on every call in CPython 3.11 (_asynciomodule.c, get_running_loop), and this runs per request.
        self._idle.setdefault(node, []).append((protocol, time.monotonic()))
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._sweep)

    def _reuse(self, node: tuple[str, int]) -> ResponseHandler | None:
        pool = self._idle.get(node)
        if not pool:
            return None
        now = time.monotonic()
        while pool:
            protocol, since = pool.pop()
            if now - since < IDLE_SECONDS and protocol.is_connected() and not protocol.should_close:
                return protocol
            protocol.close()  # Ollama closed it while it was idle, or it idled too long
        return None

    async def _connect(self, host: str, port: int) -> ResponseHandler:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            _, protocol = await loop.create_connection(lambda: ResponseHandler(loop), host, port)
        return protocol

    def _sweep(self) -> None:
        """Close connections idle for IDLE_SECONDS; runs while any connection sits in a pool."""
        self._sweeper = None
        now = time.monotonic()
        for pool in self._idle.values():
            keep = []
            for protocol, since in pool:
                if now - since < IDLE_SECONDS and protocol.is_connected():
                    keep.append((protocol, since))
                else:
                    protocol.close()
            pool[:] = keep
        if any(self._idle.values()):
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._sweep)

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for pool in self._idle.values():
            for protocol, _ in pool:
                protocol.close()
            pool.clear()


def _no_answer(protocol: ResponseHandler) -> None:
    # What the session's sock_read does when it runs out (ResponseHandler._on_read_timeout).
    protocol.set_exception(ServerTimeoutError("Ollama sent no answer within the read timeout"))


def _request_bytes(method: str, url: URL, headers: CIMultiDict[str], body: bytes | bytearray | None) -> bytes:
    """The request line, Host, the forwarded fields, the node's credentials and the body's length, as
    aiohttp's ClientRequest writes them, then the body: one buffer, one write."""
    # Host without the scheme's default port, as aiohttp and browsers write it (RFC 9110 §7.2).
    lines = [f"{method} {url.raw_path_qs} HTTP/1.1", f"Host: {url.host_port_subcomponent}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if url.raw_user is not None or url.raw_password is not None:  # `http://:token@host` too
        lines.append(_credentials_line(url.user or "", url.password or ""))
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method not in _NO_BODY_LENGTH and "Content-Length" not in headers:
        lines.append("Content-Length: 0")
    _check_no_line_breaks(lines)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head + body if body else head


def _check_no_line_breaks(lines: Iterable[str]) -> None:
    """400 for a field that would split into two (aiohttp's writer refuses them too, with a ValueError):
    aiohttp's server parser already rejects CR and LF in a client's fields, so this is a second lock."""
    for line in lines:
        if "\r" in line or "\n" in line or "\x00" in line:
            raise GatewayError(400, "a header holds a line break or NUL")


@functools.lru_cache(maxsize=64)  # one per node
def _credentials_line(user: str, password: str) -> str:
    """Basic credentials from the node's URL (`http://user:pass@host`), encoded as the session's
    BasicAuth encodes them (latin-1)."""
    pair = f"{user}:{password}".encode("latin1")
    return f"Authorization: Basic {base64.b64encode(pair).decode('ascii')}"
