"""One batch of request records into PostgreSQL: rows, the rollups of every table (rollup_tables.py) and
last_used_at, in one transaction."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from proxy.request_log.record import RequestRecord
from proxy.request_log.rollup import last_used, rollups
from proxy.request_log.rollup_upsert import upsert_rollups

# The incoming table's columns, in COPY order. Two of them travel in forms cheaper to encode than their
# own, and INSERT_FROM_INCOMING converts them: created_at as microseconds since the epoch, client_ip as
# text. asyncpg's binary encoders for timestamptz and inet cost ~7 k instructions a value each (inet parses
# through Python's ipaddress module, timestamptz compares with ±infinity and converts time zones): a
# quarter of all the writer did per record, measured under callgrind.
COLUMNS = (
    "id",
    "created_us",
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

# COPY has no ON CONFLICT, so the batch lands in a temporary table first
# (https://www.postgresql.org/docs/current/sql-copy.html). Made once per connection and emptied at
# each commit: creating it per batch (ON COMMIT DROP) cost 12% of the throughput. IF NOT EXISTS
# also covers a pooler (PgBouncer) handing us another server connection. NOT NULL as in request_log.
CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS request_log_incoming (
    id uuid NOT NULL, created_us bigint NOT NULL, api_key_id uuid, endpoint text NOT NULL, method text NOT NULL,
    model text, status_code smallint NOT NULL, prompt_tokens integer, completion_tokens integer,
    tokens_used integer, usage_estimated boolean NOT NULL, response_time double precision,
    ttfb double precision, bytes_in bigint, bytes_out bigint, client_ip text, error text, node text,
    queue_ms double precision
) ON COMMIT DELETE ROWS
"""
# A retried batch (commit sent, acknowledgement lost) conflicts on (id, created_at) and is skipped.
# created_at is exact: whole seconds through to_timestamp (a float8 that holds them and their product by
# 10^6 exactly, to the year 9999), then the microseconds.
INSERT_FROM_STAGING = """
INSERT INTO request_log (id, created_at, api_key_id, endpoint, method, model, status_code, prompt_tokens,
                         completion_tokens, tokens_used, usage_estimated, response_time, ttfb, bytes_in,
                         bytes_out, client_ip, error, node, queue_ms)
SELECT id, to_timestamp(created_us / 1000000) + (created_us % 1000000) * interval '1 microsecond',
       api_key_id, endpoint, method, model, status_code, prompt_tokens, completion_tokens, tokens_used,
       usage_estimated, response_time, ttfb, bytes_in, bytes_out, client_ip::inet, error, node, queue_ms
FROM request_log_incoming
ON CONFLICT DO NOTHING
"""
# When some rows were there already: which ones are new, the only ones the rollups may count.
INSERT_NAMING_NEW_ROWS = INSERT_FROM_STAGING + "RETURNING id, created_at\n"
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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


async def write_batch(conn: asyncpg.Connection, records: Sequence[RequestRecord]) -> int:
    """Write `records` idempotently; return how many were new (the rest were already there)."""
    rows = [to_row(r) for r in records]
    try:
        return await _write(conn, records, rows, naming_new_rows=False)
    except _SomeWereThere:  # rolled back: again, learning which rows are new
        return await _write(conn, records, rows, naming_new_rows=True)


class _SomeWereThere(Exception):
    """The insert skipped rows already in request_log (a retried batch)."""


async def _write(
    conn: asyncpg.Connection, records: Sequence[RequestRecord], rows: list[tuple], *, naming_new_rows: bool
) -> int:
    async with conn.transaction():
        await conn.execute(CREATE_STAGING)
        await conn.copy_records_to_table("request_log_incoming", records=rows, columns=COLUMNS)
        if not naming_new_rows:
            # Nearly always every row is new, and the command tag says so ("INSERT 0 <rows>"): no row
            # comes back to be decoded.
            if int((await conn.execute(INSERT_FROM_STAGING)).rpartition(" ")[2]) != len(records):
                raise _SomeWereThere
            new = list(records)
        else:
            inserted = {(row["id"], row["created_at"]) for row in await conn.fetch(INSERT_NAMING_NEW_ROWS)}
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
    """The record as a COPY row of the incoming table, with every number made acceptable to its column.
    A created_at without a time zone raises a TypeError: the writer sets such a record aside."""
    return (
        record.id,
        (record.created_at - _EPOCH) // _MICROSECOND,
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


@functools.lru_cache(maxsize=4096)  # the same clients come back
def _address(value: str | None) -> str | None:
    """The address as PostgreSQL's inet reads it, or None for what is no address."""
    if not value:
        return None
    try:
        # Through the packed form: an IPv6 zone ("fe80::1%eth0") is the host's business, not inet's.
        return str(ipaddress.ip_address(ipaddress.ip_address(value).packed))
    except ValueError:  # a unix socket peer, or anything else that is not an address
        return None
