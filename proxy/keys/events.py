"""Listens for key changes from any process (NOTIFY api_keys_changed): drops them from the cache, and
tells the limits when a key is revoked or deleted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from uuid import UUID

import asyncpg
from aiohttp import web

from proxy.db.errors import DATABASE_ERRORS, DatabaseUnavailable
from proxy.keys.cache import KEY_CACHE, KeyCache
from proxy.keys.store import KEY_STORE, KeyStore
from proxy.ledger.context import LIMITER
from proxy.state import SETTINGS

log = logging.getLogger(__name__)

CHANNEL = "api_keys_changed"
MAX_BACKOFF = 30.0


class KeyEventListener:
    """One dedicated connection (LISTEN does not survive a pool's connection reuse).

    NOTIFY has no replay: whenever the connection is (re)made, events may have been missed,
    so the whole cache is flushed and the set of key digests reloaded. The cache TTL covers the
    time the listener is down. A notified key's digest is fetched (one query per key change), so
    a key created on another host is known here, and usable, even amid a flood of forged keys.
    The same query tells whether the key was revoked or deleted: then `on_retired(key_id)` is called,
    so whatever this process keeps for the key (its limits' state) goes with it. Revocation is final
    (store.KeyRevoked), so nothing kept for such a key is ever needed again.
    """

    def __init__(
        self, dsn: str, cache: KeyCache, store: KeyStore, *, on_retired: Callable[[UUID], None] = lambda key_id: None
    ) -> None:
        self._dsn = dsn
        self._cache = cache
        self._store = store
        self._on_retired = on_retired
        self._lost = asyncio.Event()
        # Set once LISTEN is on and the cache has been flushed and the key digests reloaded;
        # cleared when the connection goes. Until it is set, a reconnect may still flush the cache.
        self.connected = asyncio.Event()
        self._learning: set[asyncio.Task[None]] = set()

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        try:
            key_id = UUID(payload)
        except ValueError:
            self._cache.clear()
            return
        self._cache.invalidate(key_id)
        task = asyncio.get_running_loop().create_task(self._learn(key_id))
        self._learning.add(task)
        task.add_done_callback(self._learning.discard)

    async def _learn(self, key_id: UUID) -> None:
        try:
            found = await self._store.digest_and_active(key_id)
        except DatabaseUnavailable as exc:  # the key is then looked up within the budget; reconnect reloads all
            log.warning("cannot fetch a changed key's digest (%s)", exc)
            return
        if found is None or not found[1]:
            self._on_retired(key_id)
        if found is not None:
            self._cache.learn(found[0])

    def _on_terminate(self, conn: object) -> None:
        self._lost.set()

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
            except DATABASE_ERRORS as exc:
                log.warning("key change listener cannot connect (%s); retrying in %.0fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self._lost.clear()
            connected_at = time.monotonic()
            try:
                conn.add_termination_listener(self._on_terminate)
                await conn.add_listener(CHANNEL, self._on_notify)
                self._cache.clear()
                await self._cache.load_known()
                self.connected.set()
                await self._lost.wait()
                log.warning("key change listener lost its connection; reconnecting")
            except DATABASE_ERRORS:
                pass
            finally:
                self.connected.clear()
                for task in self._learning:
                    task.cancel()
                with contextlib.suppress(*DATABASE_ERRORS):
                    await conn.close(timeout=2)
            # A session that ended at once (LISTEN refused, a database that drops every connection)
            # waits like a failed connect, rather than flushing the cache and reloading in a loop.
            if time.monotonic() - connected_at < MAX_BACKOFF:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                backoff = 0.5


KEY_EVENTS = web.AppKey("key_events", KeyEventListener)


async def key_events_context(app: web.Application) -> AsyncIterator[None]:
    listener = app[KEY_EVENTS] = KeyEventListener(
        app[SETTINGS].database_url, app[KEY_CACHE], app[KEY_STORE], on_retired=app[LIMITER].forget
    )
    task = asyncio.create_task(listener.run(), name="key-events")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
