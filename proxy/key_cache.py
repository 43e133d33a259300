"""In-process cache of keys by digest, so a known key costs no database round trip."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from uuid import UUID

from .apikeys import KeyRecord, plausible_key
from .db import DATABASE_ERRORS
from .key_store import KeyStore

log = logging.getLogger(__name__)

NEGATIVE_TTL = 5.0  # unknown keys: short, so a key created elsewhere works almost at once
MAX_NEGATIVE_ENTRIES = 10_000  # bounded, so a flood of random keys cannot grow memory


class KeyStoreUnavailable(RuntimeError):
    """The database cannot be asked and the key is not known: refuse, never fail open."""


class KeyCache:
    """digest (or key id, for tokens) -> KeyRecord (or None if unknown), each entry fresh for `ttl` seconds.

    Changes reach the cache three ways: the admin API invalidates directly, other processes
    through NOTIFY (see key_events.py), and the TTL as the backstop for a lost notification.
    While the database is down, expired entries keep serving: known keys keep working.
    """

    def __init__(self, store: KeyStore, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        # Keyed by digest (bytes) for presented keys, by id (UUID) for short-lived tokens.
        self._entries: dict[bytes | UUID, tuple[KeyRecord | None, float]] = {}
        self._negative_count = 0
        self._loading: dict[bytes | UUID, asyncio.Future[KeyRecord | None]] = {}

    async def lookup(self, presented: str) -> KeyRecord | None:
        if not plausible_key(presented):
            return None
        digest = self._store.digest(presented)
        return await self._cached(digest, partial(self._store.find_by_digest, digest))

    async def lookup_id(self, key_id: UUID) -> KeyRecord | None:
        """The key a verified token names: cached like a presented key, and invalidated with it."""
        return await self._cached(key_id, partial(self._store.get, key_id))

    async def _cached(self, cache_key: bytes | UUID,
                      load: Callable[[], Awaitable[KeyRecord | None]]) -> KeyRecord | None:
        entry = self._entries.get(cache_key)
        if entry is not None and entry[1] > self._clock():
            return entry[0]
        loading = self._loading.get(cache_key)
        if loading is not None:  # one database query however many requests missed at once
            return await asyncio.shield(loading)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._loading[cache_key] = future
        try:
            record = await self._load(cache_key, load, entry)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed here; waiters get it through shield
            raise
        finally:
            del self._loading[cache_key]

    async def _load(self, cache_key: bytes | UUID, load: Callable[[], Awaitable[KeyRecord | None]],
                    stale: tuple[KeyRecord | None, float] | None) -> KeyRecord | None:
        try:
            record = await load()
        except DATABASE_ERRORS as exc:
            if stale is not None and stale[0] is not None:
                log.warning("key store unreachable (%s); serving a known key from cache", type(exc).__name__)
                return stale[0]
            raise KeyStoreUnavailable(str(type(exc).__name__)) from exc
        self._store_entry(cache_key, record)
        return record

    def _store_entry(self, digest: bytes | UUID, record: KeyRecord | None) -> None:
        if record is None:
            if self._negative_count >= MAX_NEGATIVE_ENTRIES:
                self._drop_negatives()
            self._negative_count += 1
            self._entries[digest] = (None, self._clock() + NEGATIVE_TTL)
        else:
            self._entries[digest] = (record, self._clock() + self._ttl)

    def _drop_negatives(self) -> None:
        self._entries = {d: e for d, e in self._entries.items() if e[0] is not None}
        self._negative_count = 0

    def put(self, presented: str, record: KeyRecord) -> None:
        self._store_entry(self._store.digest(presented), record)

    def invalidate(self, key_id: UUID) -> None:
        """Forget one key (and every unknown-key entry: the change may be that key's creation)."""
        self._entries = {d: e for d, e in self._entries.items() if e[0] is not None and e[0].id != key_id}
        self._negative_count = 0

    def clear(self) -> None:
        self._entries.clear()
        self._negative_count = 0
