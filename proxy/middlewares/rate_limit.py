"""Per-key limits on every keyed request: request rate, requests in flight, LLM tokens per day."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from proxy.errors import GatewayError
from proxy.keys.format import API_KEY
from proxy.limits import KeyLimiter
from proxy.passthrough.handler import FORWARDED

# An admitted request's RateLimit fields, added to whatever response it gets.
RATE_LIMIT_HEADERS = web.RequestKey("rate_limit_headers", dict[str, str])
# The limit that refused a request: "rate", "concurrency" or "tokens" (the usage record's `limit`).
REFUSED_BY = web.RequestKey("refused_by", str)


def rate_limit_middleware(*, limiter: KeyLimiter, clock: Callable[[], float] = time.time) -> Middleware:
    """Admit each request that carries a key against that key's current limits (the cached row).

    Rejects: a key over its rate, concurrency or daily token limit, with 429, `Retry-After` and
    the draft-11 `RateLimit`/`RateLimit-Policy` fields; REFUSED_BY names the limit.
    Requests without a key (public routes) pass untouched. An admitted request holds a
    concurrency slot until it ends, however it ends, and its measured prompt + completion tokens
    are charged to the key's UTC day afterwards, also when the client left mid-stream.
    `clock` is wall-clock UNIX time (the token quota resets at UTC midnight); tests inject one.
    """
    if not isinstance(limiter, KeyLimiter):
        raise TypeError(f"limiter must be a KeyLimiter, not {type(limiter).__name__}")
    if not callable(clock):
        raise TypeError("clock must be a callable returning UNIX time in seconds")
    admit, release, charge = limiter.admit, limiter.release, limiter.charge

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.get(API_KEY)
        if key is None:
            return await handler(request)
        key_id = key.id
        admission = admit(
            key_id,
            rate_per_hour=key.rate_limit,
            burst=key.burst,
            max_concurrent=key.max_concurrent,
            tokens_per_day=key.tokens_per_day,
            now=clock(),
        )
        if not admission.allowed:
            request[REFUSED_BY] = admission.reason
            # Names the limit: "rate limit exceeded: …", "concurrency limit …", "daily token quota …".
            raise GatewayError(429, admission.message, admission.headers)
        # Added by add_rate_limit_headers when the response is prepared: a streamed response's
        # headers leave inside the handler, before it returns here.
        request[RATE_LIMIT_HEADERS] = admission.headers
        try:
            return await handler(request)
        finally:
            # No await in here, so neither an error nor a cancellation (client gone, shutdown)
            # can skip the release; the pass-through has noted the tokens it relayed by now.
            release(key_id)
            forwarded = request.get(FORWARDED)
            tokens = forwarded.tokens_used if forwarded is not None else None
            if tokens:
                charge(key_id, tokens, clock())

    return rate_limit


async def add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: an admitted request's RateLimit fields, on whatever response it gets."""
    headers = request.get(RATE_LIMIT_HEADERS)
    if headers:
        response.headers.update(headers)
