"""/api/tags, /api/ps and /v1/models over several nodes: one listing, each model once, in node order.

Every healthy node is asked at once; a node that fails to answer is left out of this answer (the
poller decides its health). What a key may not use is removed, as with one node.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import aiohttp
from aiohttp import web

from proxy.backends.node import Node
from proxy.backends.registry import BACKENDS
from proxy.errors import GatewayError
from proxy.keys.format import API_KEY
from proxy.passthrough.body import read_stream
from proxy.passthrough.listing_filter import LISTING_LIMIT, filter_listing
from proxy.passthrough.model_policy import key_may_use
from proxy.passthrough.relay import Relayed
from proxy.passthrough.routes import Listing
from proxy.passthrough.upstream import UPSTREAM_ERRORS, upstream_request_headers, upstream_url
from proxy.state import UPSTREAM_SESSION
from proxy.values.model_name import normalize_model

LISTING_TIMEOUT = aiohttp.ClientTimeout(total=10)  # a node that hangs must not hold every listing
_FIELDS = {Listing.NATIVE: ("models", ("name", "model")), Listing.OPENAI: ("data", ("id",))}


async def merged_listing(request: web.Request, kind: Listing, forwarded: Any) -> web.Response:
    key = request.get(API_KEY)
    allowed = partial(key_may_use, key) if key is not None and key.models is not None else None
    content_type, body = await merged_body(request, kind, request.rel_url.raw_path_qs, allowed)
    if forwarded is not None:
        forwarded.relayed = Relayed(bytes_out=len(body))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def merged_body(request: web.Request, kind: Listing, target: str, allowed: Any) -> tuple[str, bytes]:
    """The content type of the first answer, and the merged listing; 503 or 502 when no node answers."""
    nodes = request.app[BACKENDS].healthy()
    if not nodes:
        raise GatewayError(503, "no Ollama node is available", {"Retry-After": "2"})
    headers = upstream_request_headers(request.headers, drop_length=True)
    answers = await asyncio.gather(*(_listing(request, node, target, headers) for node in nodes))
    answered = [(node, answer) for node, answer in zip(nodes, answers, strict=True) if answer is not None]
    if not answered:
        raise GatewayError(502, "no Ollama node answered with its model list")
    content_type = answered[0][1][0]
    listings = [data for _, (_, data) in answered]
    if kind is Listing.NATIVE and target.startswith("/api/tags"):
        for node, (_, data) in answered:
            node.set_models(_names(data, kind))  # a fresh list, for free
    body = json.dumps(merge(listings, kind), separators=(",", ":")).encode()  # compact, as Go writes it
    if allowed is not None:
        body = filter_listing(body, kind, allowed) or body
    return content_type, body


def merge(listings: list[dict], kind: Listing) -> dict:
    """The first listing's shape, with every model of every listing once (first seen wins)."""
    field, names = _FIELDS[kind]
    merged = dict(listings[0])
    seen: set[str] = set()
    entries: list[Any] = []
    for listing in listings:
        for entry in listing.get(field) or ():
            name = _name(entry, names)
            if name is not None and name not in seen:
                seen.add(name)
                entries.append(entry)
    # Ollama's /v1/models sends `null` for no model (ToListCompletion's nil slice, openai/openai.go).
    merged[field] = entries if entries or any(isinstance(x.get(field), list) for x in listings) else None
    if kind is Listing.NATIVE and merged[field] is None:
        merged[field] = []
    return merged


def _name(entry: Any, fields: tuple[str, ...]) -> str | None:
    if isinstance(entry, dict):
        for field in fields:
            if isinstance(entry.get(field), str):
                return normalize_model(entry[field])
    return None


def _names(data: dict, kind: Listing) -> list[str]:
    field, names = _FIELDS[kind]
    return [
        entry[names[0]]
        for entry in data.get(field) or ()
        if isinstance(entry, dict) and isinstance(entry.get(names[0]), str)
    ]


async def _listing(request: web.Request, node: Node, target: str, headers: Any) -> tuple[str, dict] | None:
    try:
        async with request.app[UPSTREAM_SESSION].get(
            upstream_url(node.config.url, target), headers=headers, timeout=LISTING_TIMEOUT
        ) as answer:
            if answer.status != 200:
                return None
            body = await read_stream(answer.content, LISTING_LIMIT)
            content_type = answer.headers.get("Content-Type", "application/json")
    except UPSTREAM_ERRORS:
        return None
    try:
        data = json.loads(body) if body is not None else None
    except ValueError:
        return None
    return (content_type, data) if isinstance(data, dict) else None
