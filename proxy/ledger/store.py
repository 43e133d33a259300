"""The limit ledger's statements (sql/005_limit_ledger.sql): lease, give back, heartbeat, sweep."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from proxy.db.errors import DatabaseUnavailable, unavailable_on_outage

# A ledger call that takes longer than this counts as PostgreSQL being away: a request waits for a
# lease at most this long before the LIMITS_WHEN_DB_DOWN rule decides.
CALL_TIMEOUT = 2.0
# A holder whose heartbeat is older than this is taken for dead and its slots are reclaimed. With a
# beat every HEARTBEAT_SECONDS and a sweep as often, a dead process's slots are back within 12 s.
HOLDER_TIMEOUT_SECONDS = 10
HEARTBEAT_SECONDS = 2.0
# pg_try_advisory_xact_lock key of the sweeper; any constant works, the same in every process.
SWEEPER_LOCK_ID = 0x6C65646765720001  # "ledger" 1

LEASE = """
SELECT rate_granted, rate_level, slots_granted, slots_in_use, tokens_granted, tokens_used
FROM limit_lease($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""
RETURN = "SELECT limit_return($1, $2, $3, $4, $5, $6, $7, $8, $9)"
REGISTER = """
INSERT INTO limit_holders (holder, host, pid) VALUES ($1, $2, $3)
ON CONFLICT (holder) DO UPDATE SET heartbeat_at = clock_timestamp()
"""
RESTORE_SLOTS = """
INSERT INTO limit_slots (api_key_id, holder, slots)
SELECT key_id, $1, slots FROM unnest($2::uuid[], $3::int[]) AS held (key_id, slots)
WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = key_id)
ON CONFLICT (api_key_id, holder) DO UPDATE SET slots = EXCLUDED.slots
"""
# The beat, and the live holders in a stable order: this process's place among them gives its share
# of every limit while the ledger is away (limits/lease_size.process_share).
HEARTBEAT = f"""
WITH beat AS (
    UPDATE limit_holders SET heartbeat_at = clock_timestamp(), activity = $2::jsonb WHERE holder = $1
    RETURNING holder
)
SELECT (SELECT count(*) FROM beat) AS beating,
       array(SELECT holder FROM limit_holders
             WHERE heartbeat_at > clock_timestamp() - interval '{HOLDER_TIMEOUT_SECONDS} seconds'
             ORDER BY holder) AS live
"""
SWEEP = f"""
DELETE FROM limit_holders WHERE heartbeat_at < clock_timestamp() - interval '{HOLDER_TIMEOUT_SECONDS} seconds'
RETURNING host, pid
"""
LEAVE = "DELETE FROM limit_holders WHERE holder = $1"
# What the other live processes reported with their last beat (sql/011_process_activity.sql).
# Three beats: a process that died stops counting within 6 s, before the sweeper takes its slots.
ACTIVITY_ELSEWHERE = f"""
SELECT activity FROM limit_holders
WHERE holder <> $1 AND heartbeat_at > clock_timestamp() - interval '{3 * HEARTBEAT_SECONDS:g} seconds'
"""
# Node capacity (sql/007_node_slots.sql): slots on an Ollama node, leased and given back by name.
NODE_LEASE = "SELECT granted, in_use FROM node_slot_lease($1, $2, $3, $4)"
NODE_RETURN = "SELECT node_slot_return($1, $2, $3)"
RESTORE_NODE_SLOTS = """
INSERT INTO node_slots (node, holder, slots)
SELECT node, $1, slots FROM unnest($2::text[], $3::int[]) AS held (node, slots)
ON CONFLICT (node, holder) DO UPDATE SET slots = EXCLUDED.slots
"""
BUCKETS = "SELECT api_key_id, amount, stamp FROM limit_ledger WHERE kind = 'rate' AND api_key_id = ANY($1::uuid[])"


class KeyGone(Exception):
    """The key was deleted while its request waited for a lease."""


class HolderGone(Exception):
    """The sweeper took this process for dead (no heartbeat for HOLDER_TIMEOUT_SECONDS) and reclaimed its slots."""


@dataclass(slots=True)
class Grant:
    """A lease's answer: what was granted of each kind, and the shared state it left."""

    rate: int
    rate_level: float  # tokens left in the shared bucket (a fraction included)
    slots: int
    slots_in_use: int  # over every process, this grant included
    tokens: int
    tokens_used: int  # granted today over every process, this grant included


@dataclass(slots=True)
class Want:
    """One key's request to the ledger: its limits and how much of each kind (0 = none of it)."""

    rate_per_second: float = 0.0
    burst: int = 0
    rate: int = 0
    max_concurrent: int = 0
    slots: int = 0
    tokens_per_day: int = 0
    tokens: int = 0
    tokens_min: int = 0  # nothing unless at least this many (a request's whole reservation)


class LedgerStore:
    """One process's calls to the ledger: it is the `holder` of what it leases."""

    def __init__(self, pool: asyncpg.Pool, *, holder: UUID | None = None) -> None:
        self._pool = pool
        self.holder = holder or uuid4()
        self.host = socket.gethostname()
        self.pid = os.getpid()

    async def lease(self, key_id: UUID, want: Want, now: float, day: date) -> Grant:
        """Raises KeyGone for a key deleted meanwhile, HolderGone when a sweep took this process for dead."""
        try:
            return await self._lease(key_id, want, now, day)
        except DatabaseUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, asyncpg.ForeignKeyViolationError):
                if "holder" in (cause.constraint_name or ""):
                    raise HolderGone from None
                raise KeyGone from None
            raise

    async def _lease(self, key_id: UUID, want: Want, now: float, day: date) -> Grant:
        row = await self._call(
            LEASE,
            self.holder,
            key_id,
            now,
            day,
            want.rate_per_second,
            want.burst,
            want.rate,
            want.max_concurrent,
            want.slots,
            want.tokens_per_day,
            want.tokens,
            want.tokens_min,
        )
        return Grant(
            row["rate_granted"],
            row["rate_level"] or 0.0,
            row["slots_granted"],
            row["slots_in_use"] or 0,
            row["tokens_granted"],
            row["tokens_used"] or 0,
        )

    async def give_back(
        self,
        key_id: UUID,
        now: float,
        day: date,
        *,
        rate_per_second: float = 0.0,
        burst: int = 0,
        rate: int = 0,
        slots: int = 0,
        tokens: int = 0,
    ) -> None:
        """Return unused rate tokens and slots; `tokens` < 0 charges LLM tokens used beyond a reservation."""
        await self._call(RETURN, self.holder, key_id, now, day, rate_per_second, burst, rate, slots, tokens)

    async def lease_node(self, node: str, capacity: int, want: int) -> tuple[int, int]:
        """(slots granted, slots in use on the node over every process); HolderGone after a sweep."""
        try:
            row = await self._call(NODE_LEASE, self.holder, node, capacity, want)
        except DatabaseUnavailable as exc:
            if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):
                raise HolderGone from None
            raise
        return row["granted"], row["in_use"]

    async def give_back_node(self, node: str, slots: int) -> None:
        await self._call(NODE_RETURN, self.holder, node, slots)

    async def restore_node_slots(self, in_use: dict[str, int]) -> None:
        """After registering again: the node slots this process's requests still use are held again."""
        if in_use:
            async with self._connection() as conn:
                await conn.execute(RESTORE_NODE_SLOTS, self.holder, list(in_use), list(in_use.values()))

    async def register(self, slots_in_use: dict[UUID, int] | None = None) -> None:
        """Announce this process (again, after a sweep took it for dead: then with the slots it still uses)."""
        async with self._connection() as conn, conn.transaction():
            await conn.execute(REGISTER, self.holder, self.host, self.pid)
            if slots_in_use:
                await conn.execute(RESTORE_SLOTS, self.holder, list(slots_in_use), list(slots_in_use.values()))

    async def heartbeat(self, activity: dict[str, Any] | None = None) -> tuple[bool, list[UUID]]:
        """(whether this holder was still registered, the live holders in order); `activity` is what
        this process is doing, kept with its beat for the others to read (activity_elsewhere)."""
        row = await self._call(HEARTBEAT, self.holder, json.dumps(activity or {}, separators=(",", ":")))
        return bool(row["beating"]), list(row["live"])

    async def activity_elsewhere(self) -> list[dict[str, Any]]:
        """The activity the other live processes reported with their last beat (every 2 s)."""
        async with self._connection() as conn:
            rows = await conn.fetch(ACTIVITY_ELSEWHERE, self.holder)
        return [json.loads(row["activity"]) for row in rows]

    async def sweep(self) -> list[tuple[str, int]] | None:
        """Reclaim dead holders' slots, if this process wins the sweeper's lock; None when another sweeps."""
        async with self._connection() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SWEEPER_LOCK_ID):
                return None
            return [(row["host"], row["pid"]) for row in await conn.fetch(SWEEP)]

    async def buckets(self, key_ids: list[UUID]) -> dict[UUID, tuple[float, float]]:
        """The shared buckets of these keys: key -> (tokens, as of UNIX time)."""
        async with self._connection() as conn:
            rows = await conn.fetch(BUCKETS, key_ids)
        return {row["api_key_id"]: (row["amount"], row["stamp"]) for row in rows}

    async def leave(self) -> None:
        await self._call(LEAVE, self.holder)

    async def _call(self, query: str, *args: object) -> asyncpg.Record:
        async with self._connection() as conn:
            return await conn.fetchrow(query, *args)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one ledger call, bounded by CALL_TIMEOUT from waiting for the
        connection to the last row; an outage or the timeout leaves as DatabaseUnavailable."""
        with unavailable_on_outage():
            async with asyncio.timeout(CALL_TIMEOUT), self._pool.acquire() as conn:
                yield conn
