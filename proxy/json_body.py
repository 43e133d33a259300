"""Reading a JSON object from a request body with a size cap and a clear 4xx for anything else."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import StreamReader, web

from .gateway_error import GatewayError

ADMIN_BODY_LIMIT = 64 * 1024


async def read_stream(stream: StreamReader, limit: int) -> bytes | None:
    """Everything the stream holds, or None as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    async for chunk in stream.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing with 413 as soon as it passes `limit` (declared or streamed)."""
    declared = request.content_length
    body = None if declared is not None and declared > limit else await read_stream(request.content, limit)
    if body is None:
        raise GatewayError(413, f"request body exceeds {limit} bytes")
    return body


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise GatewayError(400, "missing request body")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested input
        raise GatewayError(400, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "request body must be a JSON object")
    return data


async def read_json_object(request: web.Request, limit: int = ADMIN_BODY_LIMIT) -> dict[str, Any]:
    return parse_json_object(await read_body(request, limit))
