"""Reading a JSON object from a request body with a size cap and a clear 4xx for anything else."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .gateway_error import GatewayError

ADMIN_BODY_LIMIT = 64 * 1024


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing with 413 as soon as it passes `limit` (declared or streamed)."""
    if request.content_length is not None and request.content_length > limit:
        raise GatewayError(413, f"request body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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
