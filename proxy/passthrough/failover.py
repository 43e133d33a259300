"""Sending a request to the best node, and to the next ones while no byte of an answer has come.

Tried again on the next candidate (at most MAX_FAILOVERS more): a connection that fails, no answer
within the read timeout, a 502, 503 or 504, and a 404 for a model the node listed (its list was
stale). Never once an answer is being relayed: the client may already hold part of it. A body
streamed from the client (a blob upload) cannot be sent twice, so it gets one node only.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from aiohttp import ClientTimeout, web
from multidict import CIMultiDict

from proxy.backends.node import Node
from proxy.backends.registry import BACKENDS, HEADER, MAX_FAILOVERS, Outcome
from proxy.keys.format import API_KEY
from proxy.passthrough.routes import Access, OllamaRoute, Placement
from proxy.passthrough.upstream import KEEPALIVE_CLIENT, UPSTREAM_ERRORS, Answer, upstream_failure, upstream_url
from proxy.state import SETTINGS, UPSTREAM_SESSION

RETRIED_STATUSES = frozenset({502, 503, 504})
ONE_WRITE = 64 * 1024  # a request body this small is sent in one go: its time to Ollama is not worth a timer


def pinned_node(request: web.Request, route: OllamaRoute) -> Node | None:
    """The node an admin names in X-Ollama-Backend, on an admin route; None without the header."""
    name = request.headers.get(HEADER)
    if name is None or route.access is not Access.ADMIN:
        return None
    return request.app[BACKENDS].named(name)


def candidates(request: web.Request, route: OllamaRoute, model: str | None) -> list[Node]:
    backends = request.app[BACKENDS]
    pinned = pinned_node(request, route)
    if pinned is not None:
        return [pinned]
    if route.placement is Placement.FIRST_NODE:
        return [backends.first_healthy()]
    key = request.get(API_KEY)
    return backends.candidates(model, key.id if key is not None else None)


async def send(
    request: web.Request,
    nodes: list[Node],
    payload: Any,
    headers: CIMultiDict[str],
    model: str | None,
    *,
    move_slot: Callable[[Node], bool] | None = None,
) -> tuple[Answer, Node]:
    """The first answer worth relaying, and the node that gave it (begun: the caller ends it).

    `move_slot`: a request holding a node slot (the fair queue) moves it to the node it fails over to;
    False would end the failover there, with the failure it had as the answer."""
    app = request.app
    backends, session, keepalive, settings = (
        app[BACKENDS],
        app[UPSTREAM_SESSION],
        app.get(KEEPALIVE_CLIENT),
        app[SETTINGS],
    )
    uploading = payload is request.content
    small = not uploading and (payload is None or len(payload) <= ONE_WRITE)
    attempts = nodes[:1] if uploading else nodes[: 1 + MAX_FAILOVERS]
    for index, node in enumerate(attempts):
        last = index == len(attempts) - 1
        backends.begin(node)
        url = upstream_url(node.config.url, request.rel_url)
        try:
            # A small body leaves in one write: the read timeout bounds the wait for the head of the
            # answer, and the relay's watch (silence.py) the silences of its body, with no timer per chunk.
            if small and keepalive is not None and url.scheme == "http":
                upstream = await keepalive.request(request.method, url, headers, payload)  # watched as well
            elif small:
                async with asyncio.timeout(settings.upstream_read_timeout):
                    upstream = await session.request(
                        request.method,
                        url,
                        headers=headers,
                        data=payload,
                        allow_redirects=False,
                        timeout=_headers_only(settings.upstream_connect_timeout),
                    )
            else:
                # A large or streamed body may take longer than the read timeout to send: aiohttp's
                # sock_read starts counting once it is sent.
                upstream = await session.request(
                    request.method, url, headers=headers, data=payload, allow_redirects=False
                )
        except UPSTREAM_ERRORS as exc:
            outcome = Outcome.SILENT if isinstance(exc, asyncio.TimeoutError) else Outcome.UNREACHABLE
            backends.end(node, outcome, model=model)
            if last or (move_slot is not None and not move_slot(attempts[index + 1])):
                raise upstream_failure(exc, settings) from None
            continue
        except BaseException:  # cancelled (the client left) while waiting for an answer
            backends.abandon(node)
            raise
        if last:
            return upstream, node
        if upstream.status in RETRIED_STATUSES:
            outcome = Outcome.FAILED
        elif upstream.status == 404 and model is not None:
            outcome = Outcome.MODEL_MISSING
        else:
            return upstream, node
        if move_slot is not None and not move_slot(attempts[index + 1]):
            return upstream, node
        upstream.release()
        backends.end(node, outcome, model=model)
    raise AssertionError("unreachable: the last attempt returns or raises")


@functools.cache  # one value per process in practice
def _headers_only(connect_timeout: float) -> ClientTimeout:
    return ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=None)


def final_outcome(status: int, model: str | None) -> Outcome:
    """What the relayed answer says of its node."""
    if status in RETRIED_STATUSES:
        return Outcome.FAILED
    if status == 404 and model is not None:
        return Outcome.MODEL_MISSING
    return Outcome.ANSWERED
