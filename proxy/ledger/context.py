"""Each process's part in the ledger: its heartbeat, the elected sweeper, expiring leases, and the
switch to LIMITS_WHEN_DB_DOWN and back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from proxy.db.errors import DatabaseUnavailable
from proxy.ledger.limiter import SharedLimiter
from proxy.ledger.node_slots import NODE_SLOTS, NodeSlots
from proxy.ledger.store import HEARTBEAT_SECONDS, LedgerStore
from proxy.state import POOL

log = logging.getLogger(__name__)

LIMITER = web.AppKey("limiter", SharedLimiter)
# What this process is doing, sent with each heartbeat for the others to read (store.activity_elsewhere).
Activity = Callable[[], dict[str, Any]]
PROCESS_ACTIVITY = web.AppKey("process_activity", Activity)
# Leases outlive their time by at most this much before they go back.
EXPIRE_SECONDS = 0.5


async def ledger_context(app: web.Application) -> AsyncIterator[None]:
    """Register after the pool; requests have drained by the time it gives everything back."""
    limiter = app[LIMITER]
    node_slots = app.get(NODE_SLOTS)
    store = limiter.store = LedgerStore(app[POOL])
    try:
        await store.register()
    except DatabaseUnavailable as exc:
        limiter.ledger_lost(exc)
    task = asyncio.create_task(maintain(limiter, store, node_slots, app.get(PROCESS_ACTIVITY)), name="limit-ledger")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(DatabaseUnavailable):
        await limiter.give_back_all()
        if node_slots is not None:
            await node_slots.give_back_all()
        await store.leave()


async def maintain(
    limiter: SharedLimiter, store: LedgerStore, node_slots: NodeSlots | None = None, activity: Activity | None = None
) -> None:
    beat_due = 0.0
    while True:
        limiter.expire()
        if node_slots is not None:
            node_slots.expire()
        if time.monotonic() >= beat_due:
            beat_due = time.monotonic() + HEARTBEAT_SECONDS
            await beat(limiter, store, node_slots, activity)
        await asyncio.sleep(EXPIRE_SECONDS)


async def beat(
    limiter: SharedLimiter, store: LedgerStore, node_slots: NodeSlots | None = None, activity: Activity | None = None
) -> None:
    """One heartbeat and one sweep; an outage switches the limits to LIMITS_WHEN_DB_DOWN."""
    try:
        doing = activity() if activity is not None else None
    except Exception:  # a figure for the console must never stop the heartbeat the limits live on
        log.exception("process activity for the heartbeat failed; beating without it")
        doing = None
    try:
        registered, live = await store.heartbeat(doing)
        if not registered:
            await limiter.rejoin()
            if node_slots is not None:
                await node_slots.rejoin()
            registered, live = await store.heartbeat(doing)
        reclaimed = await store.sweep()
        limiter.saw_buckets(await store.buckets(limiter.keys_held()))
    except DatabaseUnavailable as exc:
        limiter.ledger_lost(exc)
        return
    index = live.index(store.holder) if store.holder in live else 0
    limiter.ledger_back(len(live) or 1, index)
    for host, pid in reclaimed or ():
        log.warning("reclaimed the limit slots of gateway process %s (pid %d): no heartbeat", host, pid)
