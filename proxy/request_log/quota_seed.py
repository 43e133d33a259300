"""At startup, restore each key's tokens used today into the in-memory daily quota, from the usage rollups."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date
from uuid import UUID

import asyncpg
from aiohttp import web

from proxy.db.errors import DatabaseUnavailable
from proxy.state import KEY_LIMITER, POOL
from proxy.values.utc_day import utc_day_at

log = logging.getLogger(__name__)

# request_log.stats.tokens_used_today: tokens per key on the given UTC day, from the rollups.
TokensUsedToday = Callable[[asyncpg.Pool, date], Awaitable[Mapping[UUID, int]]]
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def quota_seed_context(tokens_used_today: TokensUsedToday, *, clock: Callable[[], float] = time.time) -> CleanupContext:
    """A cleanup context that seeds app[KEY_LIMITER]; register it after the pool and the log writer.

    Without it a restart would hand every key a fresh daily token quota. The UTC day comes from
    the limits' own clock and is read once: the rollups are asked for that day, and the counts
    are kept for it, so at midnight they are dropped with the rest, never carried into a new day.
    A database error leaves the quotas unseeded, with a warning, rather than stopping the start.
    """

    async def seed(app: web.Application) -> AsyncIterator[None]:
        day = utc_day_at(clock())
        try:
            counts = await tokens_used_today(app[POOL], day)
        except DatabaseUnavailable as exc:
            log.warning("daily token counts not restored (%s): quotas start from zero", exc)
        else:
            limiter = app[KEY_LIMITER]
            for key_id, tokens in counts.items():
                limiter.seed(key_id, tokens, day)
            log.info("restored today's token counts for %d key(s)", len(counts))
        yield

    return seed
