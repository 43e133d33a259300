"""Checking that a stream arrives paced, line by line, rather than buffered and delivered at the end."""

from __future__ import annotations

import time
from typing import Any

import aiohttp


async def line_arrivals(http: aiohttp.ClientSession, url: str, **request: Any) -> list[float]:
    """POST and note when each NDJSON line arrives, in seconds from the request."""
    arrivals, started = [], time.monotonic()
    async with http.post(url, **request) as response:
        assert response.status == 200
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n" in buffer:
                _, buffer = buffer.split(b"\n", 1)
                arrivals.append(time.monotonic() - started)
    return arrivals


def assert_paced(arrivals: list[float], interval: float) -> None:
    """A buffering hop delivers everything at the end; paced delivery spreads the lines over the whole
    generation. A structural check, not a speed limit."""
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert len(arrivals) >= 8
    assert gaps[len(gaps) // 2] > interval / 2
    assert arrivals[0] < arrivals[-1] - interval * (len(arrivals) - 3)
