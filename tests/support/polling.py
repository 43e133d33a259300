"""Waiting for a real condition, polled, with a deadline that only stops a broken test from hanging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_INTERVAL = 0.02  # how often the condition is looked at, not how long anything may take
LIMIT = 60.0  # no performance bound: the usual wait is a few polls


async def wait_until(condition: Callable[[], bool], what: str, limit: float = LIMIT) -> None:
    """Poll until `condition()` holds."""
    async with asyncio.timeout(limit):
        while not condition():
            await asyncio.sleep(POLL_INTERVAL)
    assert condition(), what


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = LIMIT) -> None:
    """Poll until `await check()` holds, for conditions that take a request or a query to see."""
    async with asyncio.timeout(limit):
        while not await check():
            await asyncio.sleep(POLL_INTERVAL)


def wait_until_sync(condition: Callable[[], bool], what: str = "the condition", limit: float = LIMIT) -> None:
    """`wait_until` for tests that run no event loop (the browser tests drive a sync Playwright)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {limit} s: {what}"
        time.sleep(POLL_INTERVAL)
