"""Text from outside made safe to store and to use as a metric label: valid code points, no NUL, bounded."""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
# PostgreSQL text cannot hold NUL (https://www.postgresql.org/docs/current/datatype-character.html), and a
# lone surrogate cannot be encoded as UTF-8 at all: asyncpg refuses the row, prometheus_client the scrape.
# Both reach us from JSON escapes ("\u0000", "\ud800") and from undecodable request path bytes.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Characters each request log text field may keep. model is also in the usage_daily unique index, whose entries
# PostgreSQL caps at about a third of a page (2704 bytes, "index row size exceeds maximum"): 512
# characters of at most 4 UTF-8 bytes each, plus the day and key id, stay below it.
# https://www.postgresql.org/docs/current/btree-implementation.html
MAX_ENDPOINT, MAX_METHOD, MAX_MODEL, MAX_ERROR, MAX_CLIENT_IP = 2048, 32, 512, 2000, 64


def safe_text(value: str, limit: int) -> str:
    """`value` cut to `limit` characters, each NUL and lone surrogate replaced by U+FFFD."""
    if len(value) <= limit and value.isascii() and "\x00" not in value:
        return value  # the usual case, checked cheaply
    return _UNSTORABLE.sub(REPLACEMENT, value[:limit])


def safe_optional(value: str | None, limit: int) -> str | None:
    return None if value is None else safe_text(value, limit)
