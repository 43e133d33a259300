"""Every Ollama route, forwarded unchanged once the key may use it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web

from proxy.backends.registry import BACKENDS, Outcome
from proxy.errors import GatewayError, forbidden
from proxy.keys.format import API_KEY, KeyRecord
from proxy.ledger.budget import TOKEN_BUDGET
from proxy.passthrough.body import read_body
from proxy.passthrough.body_models import BODY_PARSER
from proxy.passthrough.expect_continue import defer_continue, send_continue
from proxy.passthrough.failover import candidates, final_outcome, pinned_node, send
from proxy.passthrough.fan_out import fan_out
from proxy.passthrough.listing_filter import read_listing
from proxy.passthrough.merged_listing import merged_listing
from proxy.passthrough.model_policy import key_may_use
from proxy.passthrough.relay import Relayed, relay_response
from proxy.passthrough.routes import ROUTES, Access, Listing, OllamaRoute, Placement
from proxy.passthrough.server_timing import UPSTREAM_TIMING, upstream_timing
from proxy.passthrough.token_estimate import tokens_to_reserve
from proxy.passthrough.upstream import Answer, upstream_failure, upstream_request_headers
from proxy.queue.gate import FAIR_QUEUE, Slot
from proxy.request_log.record import REQUEST_START
from proxy.state import SETTINGS
from proxy.values.model_name import is_cloud_model


@dataclass(slots=True)
class Forwarded:
    """What the pass-through learned of one request: what it named, and what relaying its answer measured."""

    model: str | None  # as the request spelled it; Relayed.model says what Ollama ran
    bytes_in: int
    relayed: Relayed | None = None  # once Ollama answered
    node: str | None = None  # the node that answered (several for a merged listing or a fan-out: None)
    queue_ms: float | None = None  # how long it waited in the fair queue for a node slot; None: never

    @property
    def tokens_used(self) -> int | None:
        return self.relayed.tokens_used if self.relayed is not None else None


FORWARDED = web.RequestKey("forwarded", Forwarded)


async def _read_request(request: web.Request, route: OllamaRoute) -> tuple[bytearray, list[str] | None]:
    """The body, and the models it names: None when it cannot be read (a compressed body)."""
    settings = request.app[SETTINGS]
    body = await read_body(request, settings.max_body_size if route.form_body else settings.max_json_body_size)
    if _compressed(request):
        return body, None  # zstd on /v1 (middleware/openai.go): forwarded as sent, model unreadable
    parser = request.app[BODY_PARSER]
    if route.form_body:
        return body, await parser.form_models(request.headers.get("Content-Type", ""), body)
    return body, await parser.json_models(body, route.model_fields)


def _compressed(request: web.Request) -> bool:
    return request.headers.get("Content-Encoding", "identity").strip().lower() != "identity"


def _check_route(request: web.Request, route: OllamaRoute, key: KeyRecord | None) -> None:
    """Raise 403 (or 400) when the key may not use this route at all: before its body is read, so
    nothing is uploaded, parsed or invited (100 Continue) for a request refused anyway."""
    if route.access is Access.PUBLIC or key is None:
        return
    if route.access is Access.ADMIN and not key.is_admin:
        raise forbidden(f"{request.method} {request.path} needs an admin key")
    if (route.json_body or route.form_body) and _compressed(request) and (key.models is not None or not key.is_admin):
        # An unreadable body could name any model, a cloud one included.
        raise GatewayError(
            400, "compressed request bodies are accepted from admin keys without a model allow-list only"
        )


def _check_models(route: OllamaRoute, models: list[str], key: KeyRecord | None) -> None:
    """Raise 403 when the request names a model the key may not use."""
    if route.access is Access.PUBLIC or key is None:
        return
    for model in models:
        if not key_may_use(key, model):
            raise forbidden(f"model '{model}' is not allowed for this key")


def _models(request: web.Request, route: OllamaRoute, body_models: list[str] | None) -> list[str]:
    return [request.match_info["model"]] if route.path_model else body_models or []


async def forward(route: OllamaRoute, request: web.Request) -> web.StreamResponse:
    key = request.get(API_KEY)  # None on a public route
    _check_route(request, route, key)
    if route.json_body or route.form_body:
        body, body_models = await _read_request(request, route)
        payload: Any = body
        bytes_in = len(body)
    else:
        body, body_models = b"", None
        # Streamed straight through: blob uploads of several GB never sit in memory.
        payload = request.content if request.body_exists else None
        bytes_in = request.content_length or 0
    models = _models(request, route, body_models)
    forwarded = request[FORWARDED] = Forwarded(models[0] if models else None, bytes_in)
    _check_models(route, models, key)
    # Only a key with a daily token quota has a budget: no lookup that would miss for the others.
    budget = request.get(TOKEN_BUDGET) if key is not None and key.tokens_per_day is not None else None
    if budget is not None and route.json_body and route.access is Access.ANY_KEY:
        await budget.reserve(tokens_to_reserve(body))  # 429 when the key's day has no tokens left

    backends = request.app[BACKENDS]
    model = models[0] if models else None
    if backends.single is None:
        if route.placement is Placement.EVERY_NODE and pinned_node(request, route) is None:
            return await fan_out(request, body, forwarded)
        if route.listing is not Listing.NONE and request.method != "HEAD":
            return await merged_listing(request, route.listing, forwarded)
        nodes = candidates(request, route, model)
    else:
        nodes = [pinned_node(request, route) or backends.single]
    if payload is request.content:
        await send_continue(request)  # the streamed body is invited once the request is accepted

    queue = request.app[FAIR_QUEUE]
    slot: Slot | None = None
    if route.inference and queue.active and model is not None and not is_cloud_model(model):
        # A free node slot at once (synchronous), else a place in the fair queue (429/503 beyond its bounds).
        slot = queue.take(nodes, key) or await queue.wait(nodes, key, model, len(body), forwarded)
        nodes = slot.order(nodes)
    started = time.perf_counter()
    headers = upstream_request_headers(request.headers, drop_length=route.json_body or route.form_body)
    try:
        upstream, node = await send(
            request, nodes, payload, headers, model, move_slot=partial(queue.take_on, slot) if slot else None
        )
    except BaseException:
        if slot is not None:
            queue.release(slot, None, None)
        raise
    forwarded.node = node.name
    request[UPSTREAM_TIMING] = upstream_timing(request[REQUEST_START], started)  # Server-Timing, overhead metric
    try:
        if (
            route.listing is not Listing.NONE
            and request.method != "HEAD"
            and key is not None
            and key.models is not None
        ):
            return await _filtered_listing(request, upstream, route.listing, key, forwarded)
        relayed = forwarded.relayed = Relayed()
        return await relay_response(request, upstream, relayed, started=started, request_bytes=len(body))
    except BaseException:
        # Cancelled (the client left) or failed: close the upstream connection now, so Ollama
        # stops generating for nobody (https://github.com/ollama/ollama/issues/1695).
        upstream.close()
        raise
    finally:
        upstream.release()
        outcome = final_outcome(upstream.status, model)
        served = model if upstream.status < 300 or outcome is not Outcome.ANSWERED else None
        backends.end(node, outcome, model=served, key_id=key.id if key is not None else None)
        if route.access is Access.ADMIN:
            backends.refresh_tags(node)  # a pull, create, copy or delete changed what it holds
        if slot is not None:  # the key's fair-queue counter is charged what Ollama reported
            relayed = forwarded.relayed
            queue.release(slot, *((relayed.prompt_tokens, relayed.completion_tokens) if relayed else (None, None)))


async def _filtered_listing(
    request: web.Request, upstream: Answer, kind: Listing, key: KeyRecord, forwarded: Forwarded
) -> web.Response:
    settings = request.app[SETTINGS]
    try:  # sent without aiohttp's sock_read (failover.send): the silence limit is kept here
        body = await read_listing(upstream, kind, partial(key_may_use, key), idle=settings.upstream_read_timeout)
    except TimeoutError as exc:
        raise upstream_failure(exc, settings) from None
    forwarded.relayed = Relayed(bytes_out=len(body))
    return web.Response(
        status=upstream.status,
        body=body,
        headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")},
    )


def setup_passthrough_routes(app: web.Application) -> None:
    for route in ROUTES:
        handler = partial(forward, route)
        for method in route.methods:
            if method == "GET":
                app.router.add_get(route.path, handler, expect_handler=defer_continue)  # HEAD too
            else:
                app.router.add_route(method, route.path, handler, expect_handler=defer_continue)
