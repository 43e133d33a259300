"""Per-key limits on every keyed request: request rate, requests in flight, LLM tokens per day,
shared by every gateway process through the limit ledger (proxy/ledger/)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from proxy.errors import GatewayError
from proxy.keys.format import API_KEY
from proxy.ledger.budget import TOKEN_BUDGET, TokenBudget
from proxy.ledger.limiter import SharedLimiter
from proxy.passthrough.handler import FORWARDED

# An admitted request's RateLimit fields, added to whatever response it gets.
RATE_LIMIT_HEADERS = web.RequestKey("rate_limit_headers", dict[str, str])
# The limit that refused a request: "rate", "concurrency" or "tokens" (the usage record's `limit`).
REFUSED_BY = web.RequestKey("refused_by", str)


def rate_limit_middleware(*, limiter: SharedLimiter) -> Middleware:
    """Admit each request that carries a key against that key's current limits (the cached row).

    Rejects: a key over its rate, concurrency or daily token limit, with 429, `Retry-After` and
    the draft-11 `RateLimit`/`RateLimit-Policy` fields; REFUSED_BY names the limit.
    Requests without a key (public routes) pass untouched. An admitted request holds a
    concurrency slot until it ends, however it ends; a key with a daily token quota gets a
    TOKEN_BUDGET the pass-through reserves from, settled here with the tokens Ollama reported,
    also when the client left mid-stream.
    """
    if not isinstance(limiter, SharedLimiter):
        raise TypeError(f"limiter must be a SharedLimiter, not {type(limiter).__name__}")
    try_admit, admit, release, settle = limiter.try_admit, limiter.admit, limiter.release, limiter.settle

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.get(API_KEY)
        if key is None:
            return await handler(request)
        key_id, tokens_per_day = key.id, key.tokens_per_day
        limits = (key.rate_limit, key.burst, key.max_concurrent, tokens_per_day)
        # Nearly always answered from what this process has leased; else one lease from the ledger.
        admission = try_admit(key_id, *limits) or await admit(key_id, *limits)
        if not admission.allowed:
            request[REFUSED_BY] = admission.reason
            # Names the limit: "rate limit exceeded: …", "concurrency limit …", "daily token quota …".
            raise GatewayError(429, admission.message, admission.headers)
        # Added by add_rate_limit_headers when the response is prepared: a streamed response's
        # headers leave inside the handler, before it returns here.
        request[RATE_LIMIT_HEADERS] = admission.headers
        budget = None
        if tokens_per_day is not None:
            budget = request[TOKEN_BUDGET] = TokenBudget(limiter, key_id, tokens_per_day)
        try:
            return await handler(request)
        except GatewayError as exc:
            if exc.status == 429 and budget is not None and not budget.reserved:
                request[REFUSED_BY] = "tokens"  # the reservation found nothing left today
                del request[RATE_LIMIT_HEADERS]  # the refusal's own fields say what is left
            raise
        finally:
            # No await in here, so neither an error nor a cancellation (client gone, shutdown)
            # can skip the release; the pass-through has noted the tokens it relayed by now.
            release(key_id, admission)
            if budget is not None:
                forwarded = request.get(FORWARDED)
                settle(key_id, budget.reserved, (forwarded.tokens_used if forwarded else None) or 0, admission)

    return rate_limit


def add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: an admitted request's RateLimit fields, on whatever response it gets."""
    headers = request.get(RATE_LIMIT_HEADERS)
    if headers:
        response.headers.update(headers)
