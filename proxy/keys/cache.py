"""In-process cache of keys by digest, so a known key costs no database round trip."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from uuid import UUID

from aiohttp import web

from proxy.db.errors import DatabaseUnavailable
from proxy.keys.format import MAX_PRESENTED_LENGTH, KeyRecord, has_key_format
from proxy.keys.store import KeyStore
from proxy.limits.token_bucket import TokenBucket

log = logging.getLogger(__name__)

NEGATIVE_TTL = 5.0  # unknown keys: short, so a key created elsewhere works almost at once
MAX_NEGATIVE_ENTRIES = 10_000  # bounded, so a flood of random keys cannot grow memory
# SECURITY: the key checksum is public, so anyone can make endless distinct well-formed keys. The
# cache knows the digest of every key in the database, so such a key costs no query; only a digest
# it does not know (a key created on another host whose NOTIFY is still on its way, or while the
# listener is down) is looked up, within this budget. Bound: at most UNKNOWN_LOOKUP_BURST +
# UNKNOWN_LOOKUPS_PER_SECOND x seconds database queries per process for keys the gateway does not
# know, whatever the flood; past it such a key gets the plain 401 without a query.
UNKNOWN_LOOKUPS_PER_SECOND = 10
UNKNOWN_LOOKUP_BURST = 20


class KeyStoreUnavailable(RuntimeError):
    """The database cannot be asked and the key is not known: refuse, never fail open."""


class KeyCache:
    """digest (or key id, for tokens) -> KeyRecord (or None if unknown), each entry fresh for `ttl` seconds.

    Changes reach the cache three ways: the admin API invalidates directly, other processes
    through NOTIFY (see events.py), and the TTL as the backstop for a lost notification.
    The digests of all keys are held too (~100 bytes a key), kept current the same ways, so that a
    forged key is refused from memory (see UNKNOWN_LOOKUPS_PER_SECOND).
    A known key past its TTL keeps answering from memory while one background query refreshes it,
    so a slow or absent database never stalls a request for a key the gateway knows.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        ttl: float,
        operator_keys: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        # Keys not of our own format (DEMO_*_KEY) are known by digest here, so no other string
        # that is not a well-formed gateway key ever costs a database query.
        self._operator_digests = frozenset(store.digest(key) for key in operator_keys)
        # Keyed by digest (bytes) for presented keys, by id (UUID) for short-lived tokens.
        self._entries: dict[bytes | UUID, tuple[KeyRecord | None, float]] = {}
        self._negative_count = 0
        self._loading: dict[bytes | UUID, asyncio.Task[KeyRecord | None]] = {}
        # Bumped by every invalidation: a query that was under way then must not store what it read.
        self._generation = 0
        self._known: set[bytes] = set()  # digest of every key in the database, whatever its state
        self._unknown_lookups = TokenBucket(UNKNOWN_LOOKUPS_PER_SECOND * 3600, UNKNOWN_LOOKUP_BURST, clock())
        self.unknown_refused = 0  # unknown keys answered without a query, the budget being spent

    async def load_known(self) -> None:
        """(Re)load the digest of every key: at start, and whenever notifications may have been missed."""
        try:
            known = await self._store.all_digests()
        except DatabaseUnavailable as exc:
            log.warning("cannot load key digests (%s); unknown keys are looked up within the budget", exc)
            return
        self._known = known

    def learn(self, digest: bytes) -> None:
        """A key exists with this digest (just created here, or announced by NOTIFY)."""
        self._known.add(digest)

    async def lookup(self, presented: str) -> KeyRecord | None:
        if not presented or len(presented) > MAX_PRESENTED_LENGTH or not presented.isascii():
            return None  # not ASCII: not a key, and not digestible (a lone surrogate cannot be encoded)
        digest = self._store.digest(presented)
        if not has_key_format(presented) and digest not in self._operator_digests:
            return None
        if digest not in self._known and digest not in self._operator_digests and not self._may_look_up(digest):
            self.unknown_refused += 1
            return None
        fresh = self._fresh(digest)
        record = fresh[0] if fresh else await self._cached(digest, partial(self._store.find_by_digest, digest))
        if record is not None:
            self._known.add(digest)
        return record

    def _may_look_up(self, digest: bytes) -> bool:
        """An unknown digest: answered from a fresh negative entry, else only within the budget."""
        entry = self._entries.get(digest)
        if entry is not None and entry[0] is None and entry[1] > self._clock():
            return True  # no query: the cache answers None
        return self._unknown_lookups.try_acquire(self._clock()).allowed

    async def lookup_id(self, key_id: UUID) -> KeyRecord | None:
        """The key a verified token names: cached like a presented key, and invalidated with it."""
        fresh = self._fresh(key_id)
        return fresh[0] if fresh else await self._cached(key_id, partial(self._store.get, key_id))

    def _fresh(self, cache_key: bytes | UUID) -> tuple[KeyRecord | None, float] | None:
        """The entry while it is fresh: nearly every request is answered so, with no coroutine or loader made."""
        entry = self._entries.get(cache_key)
        return entry if entry is not None and entry[1] > self._clock() else None

    async def _cached(
        self, cache_key: bytes | UUID, load: Callable[[], Awaitable[KeyRecord | None]]
    ) -> KeyRecord | None:
        entry = self._entries.get(cache_key)
        if entry is not None:
            record, fresh_until = entry
            if fresh_until > self._clock():
                return record
            if record is not None:
                self._refresh(cache_key, load)
                return record
        # shield: a client that leaves cancels its own wait, never the query other requests share.
        return await asyncio.shield(self._refresh(cache_key, load))

    def _refresh(
        self, cache_key: bytes | UUID, load: Callable[[], Awaitable[KeyRecord | None]]
    ) -> asyncio.Task[KeyRecord | None]:
        task = self._loading.get(cache_key)
        if task is None:  # one database query however many requests want the same key
            task = asyncio.create_task(self._load(cache_key, load, self._generation))
            self._loading[cache_key] = task
            task.add_done_callback(partial(self._loaded, cache_key))
        return task

    def _loaded(self, cache_key: bytes | UUID, task: asyncio.Task[KeyRecord | None]) -> None:
        if self._loading.get(cache_key) is task:
            del self._loading[cache_key]
        if not task.cancelled():
            task.exception()  # retrieved here; waiters see it through their own await

    async def _load(
        self, cache_key: bytes | UUID, load: Callable[[], Awaitable[KeyRecord | None]], generation: int
    ) -> KeyRecord | None:
        try:
            record = await load()
        except DatabaseUnavailable as exc:
            stale = self._entries.get(cache_key)
            if stale is not None and stale[0] is not None:
                log.warning("key store unreachable (%s); serving a known key from cache", exc)
                return stale[0]
            raise KeyStoreUnavailable(str(exc)) from exc
        if generation == self._generation:
            self._store_entry(cache_key, record)
        return record

    def _store_entry(self, cache_key: bytes | UUID, record: KeyRecord | None) -> None:
        if record is None:
            if self._negative_count >= MAX_NEGATIVE_ENTRIES:
                self._drop_negatives()
            self._negative_count += 1
            self._entries[cache_key] = (None, self._clock() + NEGATIVE_TTL)
        else:
            self._entries[cache_key] = (record, self._clock() + self._ttl)

    def _drop_negatives(self) -> None:
        self._entries = {d: e for d, e in self._entries.items() if e[0] is not None}
        self._negative_count = 0

    def invalidate(self, key_id: UUID) -> None:
        """Forget one key (and every unknown-key entry: the change may be that key's creation)."""
        self._generation += 1
        self._entries = {d: e for d, e in self._entries.items() if e[0] is not None and e[0].id != key_id}
        self._negative_count = 0

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._negative_count = 0


KEY_CACHE = web.AppKey("key_cache", KeyCache)
