"""One batch of request records into PostgreSQL: rows, the rollups of every table (rollup_tables.py) and
last_used_at, in one transaction."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

import asyncpg

from proxy.request_log.record import RequestRecord
from proxy.request_log.rollup import last_used, rollups
from proxy.request_log.rollup_upsert import upsert_rollups

COLUMNS = (
    "id",
    "created_at",
    "api_key_id",
    "endpoint",
    "method",
    "model",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "tokens_used",
    "usage_estimated",
    "response_time",
    "ttfb",
    "bytes_in",
    "bytes_out",
    "client_ip",
    "error",
    "node",
    "queue_ms",
)

# COPY has no ON CONFLICT, so the batch lands in a staging table first
# (https://www.postgresql.org/docs/current/sql-copy.html). Made once per connection and emptied at
# each commit: creating it per batch (ON COMMIT DROP) cost 12% of the throughput. IF NOT EXISTS
# also covers a pooler (PgBouncer) handing us another server connection.
CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS request_log_staging (LIKE request_log INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""
# A retried batch (commit sent, acknowledgement lost) conflicts on (id, created_at) and is skipped;
# RETURNING names the rows inserted now, the only ones the rollups may count.
INSERT_FROM_STAGING = """
INSERT INTO request_log (id, created_at, api_key_id, endpoint, method, model, status_code, prompt_tokens,
                         completion_tokens, tokens_used, usage_estimated, response_time, ttfb, bytes_in,
                         bytes_out, client_ip, error, node, queue_ms)
SELECT id, created_at, api_key_id, endpoint, method, model, status_code, prompt_tokens,
       completion_tokens, tokens_used, usage_estimated, response_time, ttfb, bytes_in,
       bytes_out, client_ip, error, node, queue_ms
FROM request_log_staging
ON CONFLICT DO NOTHING
RETURNING id, created_at
"""
# Only ever forward in time; the api_keys trigger ignores last_used_at-only changes (001_initial.sql).
TOUCH_KEYS = """
UPDATE api_keys AS k SET last_used_at = t.used
FROM unnest($1::uuid[], $2::timestamptz[]) AS t(id, used)
WHERE k.id = t.id AND (k.last_used_at IS NULL OR k.last_used_at < t.used)
"""

# Column limits: a number PostgreSQL would refuse must not poison a whole batch. Text is made
# storable once, where records are made and where they are read back from the journal
# (RequestRecord.make_storable); a record that bypassed both is refused and set aside by the writer.
_SMALLINT, _INT, _BIGINT = 2**15 - 1, 2**31 - 1, 2**63 - 1


async def write_batch(conn: asyncpg.Connection, records: Sequence[RequestRecord]) -> int:
    """Write `records` idempotently; return how many were new (the rest were already there)."""
    async with conn.transaction():
        await conn.execute(CREATE_STAGING)
        await conn.copy_records_to_table("request_log_staging", records=[to_row(r) for r in records], columns=COLUMNS)
        rows = await conn.fetch(INSERT_FROM_STAGING)
        if len(rows) == len(records):
            new = list(records)  # the usual case: nothing was there already
        else:
            inserted = {(row["id"], row["created_at"]) for row in rows}
            new = [r for r in records if _claim(inserted, r)]
        if new:
            await upsert_rollups(conn, rollups(new))
        key_ids, times = last_used(new)
        if key_ids:
            # Last: the key rows stay locked until COMMIT, and gateways share them.
            await conn.execute(TOUCH_KEYS, key_ids, times)
    return len(new)


def _claim(inserted: set, record: RequestRecord) -> bool:
    # Each inserted row counts once, even if a batch carried its record twice.
    key = (record.id, record.created_at)
    if key in inserted:
        inserted.discard(key)
        return True
    return False


def to_row(record: RequestRecord) -> tuple:
    """The record as a COPY row, with every number made acceptable to its column."""
    return (
        record.id,
        record.created_at,
        record.api_key_id,
        record.endpoint,
        record.method,
        record.model,
        _clamp(record.status_code, _SMALLINT),
        _clamp(record.prompt_tokens, _INT),
        _clamp(record.completion_tokens, _INT),
        _clamp(record.tokens_used, _INT),
        bool(record.usage_estimated),
        record.response_time,
        record.ttfb,
        _clamp(record.bytes_in, _BIGINT),
        _clamp(record.bytes_out, _BIGINT),
        _address(record.client_ip),
        record.error,
        record.node,
        record.queue_ms,
    )


def _clamp(value: int | None, limit: int) -> int | None:
    if value is None or (type(value) is int and 0 <= value <= limit):
        return value
    return max(0, min(int(value), limit))


@functools.lru_cache(maxsize=4096)  # the same clients come back; parsing is most of a row's cost
def _address(value: str | None) -> bytes | None:
    """The address packed (4 or 16 bytes): asyncpg's inet encoder re-parses an address object from
    its text form, but takes packed bytes directly, five times faster."""
    if not value:
        return None
    try:
        return ipaddress.ip_address(value).packed
    except ValueError:  # a unix socket peer, or anything else that is not an address
        return None
