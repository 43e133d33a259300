"""Requests written byte for byte on a socket, for what no HTTP client will send."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import BaseTestServer


async def exchange(
    server: BaseTestServer, head: bytes, body: bytes = b"", *, timeout: float = 10, head_only: bool = False
) -> bytes:
    """Send `head` (no final blank line) and `body` on one connection; everything that comes back,
    or with `head_only` the response head (when the server is still waiting for the rest of a body)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await (reader.readuntil(b"\r\n\r\n") if head_only else reader.read(-1))
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
