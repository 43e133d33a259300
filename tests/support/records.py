"""Request records for the usage log tests, and waiting for the writer without timing thresholds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from proxy.db.migrations import migrate
from proxy.db.pool import create_pool
from proxy.request_log.record import RequestRecord
from tests.support.polling import wait_until

__all__ = ["make_record", "migrated_pool", "wait_until"]


def make_record(**overrides: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created_at": datetime.now(UTC),
        "endpoint": "/api/chat",
        "method": "POST",
        "client_ip": "127.0.0.1",
        "status_code": 200,
        "model": "llama3.2",
        "prompt_tokens": 11,
        "completion_tokens": 5,
        "response_time": 42.0,
    }
    values.update(overrides)
    return RequestRecord(**values)


async def migrated_pool(dsn: str) -> asyncpg.Pool:
    """A pool on the test database with the schema applied (the gateway does this at start)."""
    pool = await create_pool(dsn)
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool
