"""Request records for the usage log tests, and waiting for the writer without timing thresholds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import asyncpg

from proxy.db.pool import create_pool
from proxy.db.migrations import migrate
from proxy.request_log.record import RequestRecord


def make_record(**overrides: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created_at": datetime.now(timezone.utc),
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


async def wait_until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll until `condition()` holds. `limit` only stops a broken test from hanging; it is no
    performance bound (the usual wait is a flush interval or two)."""
    async with asyncio.timeout(limit):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


async def migrated_pool(dsn: str) -> asyncpg.Pool:
    """A pool on the test database with the schema applied (the gateway does this at start)."""
    pool = await create_pool(dsn)
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool
