"""API keys in PostgreSQL: create, read, update, revoke; only digests are stored."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web

from proxy.db.errors import unavailable_on_outage
from proxy.keys.format import KeyDigester, KeyRecord, display_prefix, generate_key

_COLUMNS = """id, prefix, name, role, rate_limit, models, is_active, expires_at, created_at, last_used_at,
    burst, max_concurrent, tokens_per_day, weight, max_queued, priority, state_version"""

INSERT_KEY = f"""
INSERT INTO api_keys (id, key_hash, prefix, name, role, rate_limit, models, expires_at,
                      burst, max_concurrent, tokens_per_day, weight, max_queued, priority)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING {_COLUMNS}
"""
SELECT_BY_DIGEST = f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = $1"
SELECT_BY_ID = f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1"
SELECT_BY_ID_FOR_UPDATE = f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1 FOR UPDATE"
# Not LIKE: `_` and `%` typed by a user (every key has an `_`) would be wildcards.
SELECT_BY_PREFIX = f"SELECT {_COLUMNS} FROM api_keys WHERE left(prefix, length($1)) = $1 ORDER BY created_at"
SELECT_ALL = f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id"
UPDATE_KEY = f"""
UPDATE api_keys
SET name = $2, role = $3, rate_limit = $4, models = $5, expires_at = $6, is_active = $7,
    burst = $8, max_concurrent = $9, tokens_per_day = $10, weight = $11, max_queued = $12, priority = $13
WHERE id = $1
RETURNING {_COLUMNS}
"""
# A demo key set in the environment is made usable again at every start, whatever was done to it.
ENSURE_KEY = f"""
INSERT INTO api_keys (id, key_hash, prefix, name, role, rate_limit)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (key_hash) DO UPDATE SET is_active = true, role = EXCLUDED.role, expires_at = NULL
RETURNING {_COLUMNS}
"""
# Every digest, for the cache's set of keys that exist (no plaintext, no other column).
SELECT_ALL_DIGESTS = "SELECT key_hash FROM api_keys"
SELECT_DIGEST_BY_ID = "SELECT key_hash, is_active FROM api_keys WHERE id = $1"
COUNT_ACTIVE_ADMINS = """
SELECT count(*) FROM api_keys
WHERE role = 'admin' AND is_active AND (expires_at IS NULL OR expires_at > now())
"""

UPDATABLE = (
    "name",
    "role",
    "rate_limit",
    "models",
    "expires_at",
    "is_active",
    "burst",
    "max_concurrent",
    "tokens_per_day",
    "weight",
    "max_queued",
    "priority",
)


class KeyRevoked(ValueError):
    """Revocation is final: a revoked (inactive) key is never made usable again; create a new one."""


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key: the plaintext exists only here, to be shown once."""

    key: str
    record: KeyRecord


class KeyStore:
    def __init__(self, pool: asyncpg.Pool, secret_key: str) -> None:
        self._pool = pool
        self._digester = KeyDigester(secret_key)

    def __repr__(self) -> str:
        return "KeyStore()"  # SECURITY: the secret stays out of reprs

    def digest(self, presented: str) -> bytes:
        return self._digester.digest(presented)

    async def create(
        self,
        *,
        name: str,
        role: str,
        rate_limit: int,
        models: list[str] | None = None,
        expires_at: Any = None,
        burst: int | None = None,
        max_concurrent: int | None = None,
        tokens_per_day: int | None = None,
        weight: float = 1.0,
        max_queued: int = 32,
        priority: str = "interactive",
    ) -> NewKey:
        key = generate_key()
        with unavailable_on_outage():
            row = await self._pool.fetchrow(
                INSERT_KEY,
                uuid.uuid4(),
                self.digest(key),
                display_prefix(key),
                name,
                role,
                rate_limit,
                models,
                expires_at,
                burst,
                max_concurrent,
                tokens_per_day,
                weight,
                max_queued,
                priority,
            )
        return NewKey(key, KeyRecord.from_row(row))

    async def ensure(self, key: str, *, name: str, role: str, rate_limit: int) -> KeyRecord:
        with unavailable_on_outage():
            row = await self._pool.fetchrow(
                ENSURE_KEY, uuid.uuid4(), self.digest(key), display_prefix(key), name, role, rate_limit
            )
        return KeyRecord.from_row(row)

    async def find_by_digest(self, digest: bytes) -> KeyRecord | None:
        with unavailable_on_outage():
            row = await self._pool.fetchrow(SELECT_BY_DIGEST, digest)
        return KeyRecord.from_row(row) if row else None

    async def all_digests(self) -> set[bytes]:
        with unavailable_on_outage():
            return {row["key_hash"] for row in await self._pool.fetch(SELECT_ALL_DIGESTS)}

    async def digest_and_active(self, key_id: UUID) -> tuple[bytes, bool] | None:
        """The key's digest and whether it is active (not revoked); None once it is deleted."""
        with unavailable_on_outage():
            row = await self._pool.fetchrow(SELECT_DIGEST_BY_ID, key_id)
        return (row["key_hash"], row["is_active"]) if row else None

    async def get(self, key_id: UUID) -> KeyRecord | None:
        with unavailable_on_outage():
            row = await self._pool.fetchrow(SELECT_BY_ID, key_id)
        return KeyRecord.from_row(row) if row else None

    async def find(self, reference: str) -> list[KeyRecord]:
        """For the CLI: the key's id, the full key itself, or the display prefix (or its start) shown
        by `keys list`. More than one record only for a prefix that several keys share."""
        try:
            key_id = UUID(reference)
        except ValueError:
            pass
        else:
            record = await self.get(key_id)
            return [record] if record else []
        record = await self.find_by_digest(self.digest(reference))  # the key as its owner holds it
        if record:
            return [record]
        if not reference:
            return []
        with unavailable_on_outage():
            rows = await self._pool.fetch(SELECT_BY_PREFIX, reference)
        return [KeyRecord.from_row(row) for row in rows]

    async def list(self) -> list[KeyRecord]:
        with unavailable_on_outage():
            rows = await self._pool.fetch(SELECT_ALL)
        return [KeyRecord.from_row(row) for row in rows]

    async def update(self, key_id: UUID, changes: dict[str, Any]) -> KeyRecord | None:
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
        with unavailable_on_outage():
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(SELECT_BY_ID_FOR_UPDATE, key_id)
                if row is None:
                    return None
                # Revocation is final, as with GitHub's and Stripe's keys: a key that leaked and was
                # revoked must not come back by a mistaken edit. (Demo keys from the environment are
                # the operator's own and are ensured at start instead; see ENSURE_KEY.)
                if changes.get("is_active") is True and not row["is_active"]:
                    raise KeyRevoked("a revoked key cannot be reactivated; create a new key instead")
                merged = {field: changes.get(field, row[field]) for field in UPDATABLE}
                row = await conn.fetchrow(UPDATE_KEY, key_id, *(merged[f] for f in UPDATABLE))
        return KeyRecord.from_row(row)

    async def revoke(self, key_id: UUID) -> KeyRecord | None:
        return await self.update(key_id, {"is_active": False})

    async def count_active_admins(self) -> int:
        with unavailable_on_outage():
            return await self._pool.fetchval(COUNT_ACTIVE_ADMINS)


KEY_STORE = web.AppKey("key_store", KeyStore)
