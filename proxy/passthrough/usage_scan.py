"""Numbers and the model found in an Ollama answer by byte scans, for lines and bodies too big to parse."""

from __future__ import annotations

import functools
import json
import re

from proxy.passthrough.usage_fields import MODEL_CHARS

# Bounded: int() of a huge digit run raises (Python caps int-from-string length); counts are
# clamped to the request_log integer columns later anyway.
_DIGITS = re.compile(rb"\d{1,18}")
# Go's encoder writes `model` first in native answers (GenerateResponse, ChatResponse, EmbedResponse in
# https://github.com/ollama/ollama/blob/v0.32.15/api/types.go), so in their final line or body it is
# found without a parse.
_LEADING_MODEL = re.compile(rb'\{"model":("(?:[^"\\]|\\.){1,%d}")' % MODEL_CHARS)
LOOSE_DONE = re.compile(rb'"done"\s*:\s*true')


def leading_model(data: bytes | bytearray) -> str | None:
    match = _LEADING_MODEL.match(data)
    return _string(match.group(1)) if match else None


def last_int(data: bytes | bytearray, names: tuple[str, ...]) -> int | None:
    """The number after the last `"name":` of the first name that has one: a scan, not a parse."""
    for name in names:
        key = _json_key(name)
        at = data.rfind(key)
        if at >= 0 and (match := _DIGITS.match(data, at + len(key))):
            return int(match.group())
    return None


def scan_int(data: bytes | bytearray, names: tuple[str, ...]) -> int | None:
    """Go's compact spelling first (a plain rfind), then any spelling."""
    found = last_int(data, names)
    return loose_last_int(data, *names) if found is None else found


def loose_last_int(data: bytes | bytearray, *names: str) -> int | None:
    digits = _loose_last(data, names, rb"\d{1,18}")
    return None if digits is None else int(digits)


def loose_last_str(data: bytes | bytearray, name: str) -> str | None:
    quoted = _loose_last(data, (name,), rb'"(?:[^"\\]|\\.){1,%d}"' % MODEL_CHARS)
    return None if quoted is None else _string(quoted)


def _string(quoted: bytes) -> str | None:
    """A JSON string literal's value; model names seldom need the decoder."""
    if b"\\" in quoted:
        try:
            value = json.loads(quoted)
        except ValueError:
            return None
    else:
        value = quoted[1:-1].decode("utf-8", "replace")
    return value[:MODEL_CHARS] if isinstance(value, str) and value else None


@functools.cache  # a handful of field names
def _json_key(name: str) -> bytes:
    return b'"%s":' % name.encode()


@functools.cache
def _loose_key(name: str, value: bytes) -> re.Pattern[bytes]:
    return re.compile(rb'"%s"\s*:\s*(%s)' % (name.encode(), value))


def _loose_last(data: bytes | bytearray, names: tuple[str, ...], value: bytes) -> bytes | None:
    """Like last_int, with any JSON whitespace around the colon: for answers too big to parse."""
    for name in names:
        last = None
        for last in _loose_key(name, value).finditer(data):  # noqa: B007 (the last match is the one wanted)
            pass
        if last is not None:
            return last.group(1)
    return None
