"""Model listings cut down to what a key may use (/api/tags, /api/ps, /v1/models)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from proxy.errors import GatewayError
from proxy.passthrough.body import read_stream
from proxy.passthrough.routes import Listing
from proxy.passthrough.upstream import Answer

LISTING_LIMIT = 16 * 1024 * 1024  # far above any real model list; a bound all the same


def filter_listing(body: bytes, kind: Listing, allowed: Callable[[str], bool]) -> bytes | None:
    """The body with disallowed models removed, or None if it is not a listing we understand."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if kind is Listing.NATIVE and isinstance(data.get("models"), list):
        data["models"] = [m for m in data["models"] if _allowed(m, ("name", "model"), allowed)]
    elif kind is Listing.OPENAI and "data" in data:
        # Ollama sends `null` for an empty list (ToListCompletion's nil slice,
        # https://github.com/ollama/ollama/blob/v0.32.15/openai/openai.go); keep that shape.
        if isinstance(data["data"], list):
            data["data"] = [m for m in data["data"] if _allowed(m, ("id",), allowed)]
    else:
        return None
    # Compact, as Go's encoding/json writes it.
    return json.dumps(data, separators=(",", ":")).encode()


def _allowed(entry: Any, fields: tuple[str, ...], allowed: Callable[[str], bool]) -> bool:
    if not isinstance(entry, dict):
        return False
    names = [entry[f] for f in fields if isinstance(entry.get(f), str)]
    return bool(names) and any(allowed(name) for name in names)


async def read_listing(
    upstream: Answer, kind: Listing, allowed: Callable[[str], bool], *, idle: float = math.inf
) -> bytes:
    """Ollama's listing body, filtered when it is a 200 listing; any other answer unchanged. TimeoutError
    when Ollama stays silent `idle` seconds."""
    body = await read_stream(upstream.content, LISTING_LIMIT, idle=idle)
    if body is None:
        raise GatewayError(502, "Ollama's model list is too large to filter")
    if upstream.status != 200:
        return body
    filtered = filter_listing(body, kind, allowed)
    return filtered if filtered is not None else body
