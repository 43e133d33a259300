"""The connection to Ollama: one client session, the request headers sent, and what failures mean."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy.errors import GatewayError
from proxy.passthrough.keepalive_client import KeepAliveAnswer, KeepAliveClient, usable
from proxy.passthrough.silence import Silences
from proxy.settings import Settings
from proxy.state import SETTINGS, UPSTREAM_SESSION

# RFC 9110 §7.6.1 hop-by-hop fields: they describe one connection, never the next one.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"})
# Plus the gateway's own credentials: Ollama must never see a gateway key (a cloud model would even
# forward it to ollama.com: copyProxyRequestHeaders in
# https://github.com/ollama/ollama/blob/v0.32.15/server/cloud_proxy.go).
# CORS is the gateway's alone (CORS_ORIGINS): Ollama answers 403 to an Origin outside its own
# list, and its Access-Control-* fields would grant localhost origins the gateway does not.
_REQUEST_DROP = _HOP_BY_HOP | {
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "authorization",
    "x-api-key",
    "origin",
    "x-ollama-backend",  # the gateway's: which node an admin operation is for
}
_RESPONSE_DROP = _HOP_BY_HOP | {
    "proxy-authenticate",
    "content-length",
    "date",
    "server",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-expose-headers",
    "access-control-max-age",
}


# The body is re-sent from memory: aiohttp sets its length itself.
_REQUEST_DROP_LENGTH = _REQUEST_DROP | {"content-length"}


@functools.lru_cache(maxsize=256)  # per request, and nearly always "" or "keep-alive"
def _dropped(fixed: frozenset[str], connection: str) -> frozenset[str]:
    """`fixed` and every field the Connection header names (RFC 9110 §7.6.1)."""
    return fixed | frozenset(t.strip().lower() for t in connection.split(",") if t.strip())


def upstream_request_headers(headers: CIMultiDictProxy[str], *, drop_length: bool) -> CIMultiDict[str]:
    """The client's headers less hop-by-hop ones and its credentials; Host comes from the upstream URL,
    since Ollama on loopback answers 403 to a foreign Host
    (allowedHostsMiddleware, https://github.com/ollama/ollama/blob/v0.32.15/server/routes.go)."""
    fixed = _REQUEST_DROP_LENGTH if drop_length else _REQUEST_DROP
    drop = _dropped(fixed, ",".join(headers.getall("Connection", ()))) if "Connection" in headers else fixed
    forwarded = CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in drop])
    for name, value in forwarded.items():
        if not value.isascii():
            _check_forwardable(name, value)
    return forwarded


def _check_forwardable(name: str, value: str) -> None:
    """400 for a value that is not UTF-8: aiohttp decoded its bytes with surrogateescape, and its
    client cannot send them back as they came (its C writer silently drops them, its Python writer
    raises), so the request Ollama would see is not the one the client sent."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise GatewayError(400, f"header {name!r} holds bytes that are not UTF-8") from None


def downstream_response_headers(headers: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
    """Ollama's response fields less hop-by-hop ones and those the gateway sets itself; pairs, since
    the response copies them into its own CIMultiDict anyway."""
    drop = (
        _dropped(_RESPONSE_DROP, ",".join(headers.getall("Connection", ())))
        if "Connection" in headers
        else _RESPONSE_DROP
    )
    return [(k, v) for k, v in headers.items() if k.lower() not in drop]


def upstream_url(base: URL, target: URL | str) -> URL:
    """Base URL (with any path prefix) + the client's raw path and query, `%2F` and all.

    Only the path and query of `target` are used: an absolute-form request line
    (`GET http://elsewhere/… HTTP/1.1`) cannot point the gateway at another host.
    """
    if isinstance(target, str):
        target = URL(target, encoded=True)
    if target.raw_query_string:
        return URL(str(base).rstrip("/") + target.raw_path_qs, encoded=True)
    return _joined(base, target.raw_path)


@functools.lru_cache(maxsize=256)  # nearly every inference request is one of a few paths on a few nodes
def _joined(base: URL, raw_path: str) -> URL:
    return URL(str(base).rstrip("/") + raw_path, encoded=True)


def upstream_failure(exc: BaseException, settings: Settings) -> GatewayError:
    """Ollama refused, vanished or stayed silent before answering: 502 or 504, never a traceback."""
    if isinstance(exc, asyncio.TimeoutError):
        return GatewayError(504, f"Ollama did not answer within {settings.upstream_read_timeout:g}s")
    return GatewayError(502, "Ollama is unreachable")


UPSTREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
# Ollama's answer, from the session or the keep-alive client: the same status, reason, headers,
# content_length, content (an aiohttp StreamReader), close() and release().
Answer = aiohttp.ClientResponse | KeepAliveAnswer
READ_BUFSIZE = 256 * 1024
KEEPALIVE_CLIENT = web.AppKey("keepalive_client", KeepAliveClient)
# Every wait on Ollama under OLLAMA_READ_TIMEOUT, on one timer (silence.py).
SILENCES = web.AppKey("silences", Silences)


async def upstream_session_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
        # No total: pulls and long generations run for many minutes. sock_read is the longest
        # silence allowed between two reads
        # (https://docs.aiohttp.org/en/stable/client_reference.html#aiohttp.ClientTimeout).
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=settings.upstream_connect_timeout, sock_read=settings.upstream_read_timeout
        ),
        auto_decompress=False,  # relay bytes as Ollama sent them
        cookie_jar=aiohttp.DummyCookieJar(),
        # Send exactly the client's headers: no User-Agent, Accept or Accept-Encoding of our own.
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        read_bufsize=READ_BUFSIZE,
    )
    app[UPSTREAM_SESSION] = session
    app[SILENCES] = silences = Silences(settings.upstream_read_timeout)
    # Inference requests (a small body in memory, a plain-HTTP node) skip the session's per-request objects.
    client = None
    if usable():
        app[KEEPALIVE_CLIENT] = client = KeepAliveClient(
            connect_timeout=settings.upstream_connect_timeout, read_bufsize=READ_BUFSIZE, silences=silences
        )
    yield
    if client is not None:
        client.close()
    await session.close()
    silences.close()
