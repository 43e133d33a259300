"""Reading raw request_log rows, newest first, with keyset pagination (for GET /api/logs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from proxy.db.errors import unavailable_on_outage

# Keyset pagination on (created_at, id), served by the request_log_time_id index: page N costs
# the same as page 1, and rows written meanwhile never shift a page. Unset filters are NULL.
SELECT_LOGS = """
SELECT id, created_at, api_key_id, endpoint, method, model, status_code, prompt_tokens, completion_tokens,
       tokens_used, usage_estimated, response_time, ttfb, bytes_in, bytes_out, client_ip, error, node,
       queue_ms
FROM request_log
WHERE ($1::uuid IS NULL OR api_key_id = $1)
  AND ($2::text IS NULL OR model = $2)
  AND ($3::smallint IS NULL OR status_code = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $8
"""


@dataclass(frozen=True, slots=True)
class LogFilter:
    key_id: UUID | None = None
    model: str | None = None
    status: int | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    after: tuple[datetime, UUID] | None = None  # the last row of the previous page


async def fetch_logs(pool: asyncpg.Pool, where: LogFilter, limit: int) -> tuple[list[asyncpg.Record], bool]:
    """Up to `limit` rows, and whether more rows follow."""
    after_time, after_id = where.after or (None, None)
    with unavailable_on_outage():
        rows = await pool.fetch(
            SELECT_LOGS,
            where.key_id,
            where.model,
            where.status,
            where.since,
            where.until,
            after_time,
            after_id,
            limit + 1,
        )
    return rows[:limit], len(rows) > limit


def row_to_json(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "created_at": row["created_at"].isoformat(),
        "api_key_id": str(row["api_key_id"]) if row["api_key_id"] else None,
        "endpoint": row["endpoint"],
        "method": row["method"],
        "model": row["model"],
        "status_code": row["status_code"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "tokens_used": row["tokens_used"],
        "usage_estimated": row["usage_estimated"],
        "response_time_ms": row["response_time"],
        "ttfb_ms": row["ttfb"],
        "bytes_in": row["bytes_in"],
        "bytes_out": row["bytes_out"],
        "client_ip": str(row["client_ip"]) if row["client_ip"] is not None else None,
        "error": row["error"],
        "node": row["node"],
        "queue_ms": row["queue_ms"],
    }
