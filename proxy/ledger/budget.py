"""A request's share of its key's daily token quota: reserved before it goes upstream, settled after."""

from __future__ import annotations

from collections.abc import Hashable

from aiohttp import web

from proxy.ledger.limiter import SharedLimiter


class TokenBudget:
    """Set on a request whose key has `tokens_per_day`. The pass-through reserves once it knows the
    body (the request's own cap on output, else an estimate); the limits middleware settles it with
    the tokens Ollama reported, once the request has ended."""

    __slots__ = ("_limiter", "_key_id", "_tokens_per_day", "reserved")

    def __init__(self, limiter: SharedLimiter, key_id: Hashable, tokens_per_day: int) -> None:
        self._limiter = limiter
        self._key_id = key_id
        self._tokens_per_day = tokens_per_day
        self.reserved = 0

    async def reserve(self, wanted: int) -> None:
        """Reserve up to `wanted` tokens (at least one); 429 when today's quota is used up."""
        if self.reserved == 0 and wanted > 0:
            self.reserved = await self._limiter.reserve_tokens(self._key_id, self._tokens_per_day, wanted)


TOKEN_BUDGET = web.RequestKey("token_budget", TokenBudget)
