"""Header values as they arrive: any byte at all, so anything the gateway acts on is checked first.

aiohttp decodes every header value as UTF-8 with `surrogateescape` (aiohttp http_parser.py), so a
byte that is not UTF-8 reaches the application as a lone surrogate, which `str.encode()` refuses
and which a log line or a response header cannot carry. The gateway's own values (credentials,
request ids, addresses, origins, header names) are ASCII by their definitions, so anything else
is treated as absent rather than decoded, repaired or echoed.
"""

from __future__ import annotations

import re

# VCHAR (RFC 5234 B.1), the visible ASCII characters: what a credential is made of (RFC 6750 §2.1
# b64token is a subset; our keys and tokens, and operator keys, are visible ASCII by construction).
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
# tchar (RFC 9110 §5.6.2): a field name, e.g. in Access-Control-Request-Headers.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def visible_ascii(value: str | None) -> str | None:
    """`value` if it is one or more visible ASCII characters (no space, no control), else None."""
    return value if value is not None and _VISIBLE_ASCII.fullmatch(value) else None


def is_token(value: str) -> bool:
    return _TOKEN.fullmatch(value) is not None
