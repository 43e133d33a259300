"""In-process cache of keys by digest, so a known key costs no database round trip."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
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
    """digest -> KeyRecord (or None for an unknown key), each entry fresh for `ttl` seconds.

    Changes reach the cache three ways: the admin API invalidates directly, other processes
    through NOTIFY (see key_events.py), and the TTL as the backstop for a lost notification.
    While the database is down, expired entries keep serving: known keys keep working.
    """

    def __init__(self, store: KeyStore, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[bytes, tuple[KeyRecord | None, float]] = {}
        self._negative_count = 0
        self._loading: dict[bytes, asyncio.Future[KeyRecord | None]] = {}

    async def lookup(self, presented: str) -> KeyRecord | None:
        if not plausible_key(presented):
            return None
        digest = self._store.digest(presented)
        entry = self._entries.get(digest)
        if entry is not None and entry[1] > self._clock():
            return entry[0]
        loading = self._loading.get(digest)
        if loading is not None:  # one database query however many requests missed at once
            return await asyncio.shield(loading)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._loading[digest] = future
        try:
            record = await self._load(digest, entry)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed here; waiters get it through shield
            raise
        finally:
            del self._loading[digest]

    async def _load(self, digest: bytes, stale: tuple[KeyRecord | None, float] | None) -> KeyRecord | None:
        try:
            record = await self._store.find_by_digest(digest)
        except DATABASE_ERRORS as exc:
            if stale is not None and stale[0] is not None:
                log.warning("key store unreachable (%s); serving a known key from cache", type(exc).__name__)
                return stale[0]
            raise KeyStoreUnavailable(str(type(exc).__name__)) from exc
        self._store_entry(digest, record)
        return record

    def _store_entry(self, digest: bytes, record: KeyRecord | None) -> None:
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
