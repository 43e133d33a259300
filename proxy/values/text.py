"""Text from outside made safe to store and to use as a metric label: valid code points, no NUL, bounded."""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
# PostgreSQL text cannot hold NUL (https://www.postgresql.org/docs/current/datatype-character.html), and a
# lone surrogate cannot be encoded as UTF-8 at all: asyncpg refuses the row, prometheus_client the scrape.
# Both reach us from JSON escapes ("\u0000", "\ud800") and from undecodable request path bytes.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def safe_text(value: str, limit: int) -> str:
    """`value` cut to `limit` characters, each NUL and lone surrogate replaced by U+FFFD."""
    if len(value) <= limit and value.isascii() and "\x00" not in value:
        return value  # the usual case, checked cheaply
    return _UNSTORABLE.sub(REPLACEMENT, value[:limit])


def safe_optional(value: str | None, limit: int) -> str | None:
    return None if value is None else safe_text(value, limit)
