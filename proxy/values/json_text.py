"""JSON text parsed as `json.loads` parses it, by orjson wherever the two agree.

Request bodies and Ollama's answers are parsed on every request (the model a body names, the usage an
answer reports) and every streamed line: `json.loads` spent ~5 µs on a 100-byte body here, most of it
in its Python layers (encoding detection, JSONDecoder.decode), orjson under 1 µs
(docs/benchmarks.md). orjson is strict RFC 8259 and refuses what `json.loads` accepts beyond it (NaN,
Infinity, numbers out of a double's range, lone surrogate escapes, a byte-order mark, nesting past 1,024
levels): those inputs go to `json.loads`, which decides, so the values and errors are the standard
library's. What orjson accepts but reads differently goes to `json.loads` before orjson sees it: an
integer beyond 64 bits (orjson makes it a float), and nesting deeper than `json.loads` can recurse
(orjson goes to 1,024 levels).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Integers orjson reads as floats: 20 digits or more in a row (past u64's 18446744073709551615, or near
# it), or a minus and 19 nines after the translation below (past i64's -9223372036854775808, or near it).
# Found by turning every digit into a 9 and two substring searches, in C: ~20 times cheaper than a
# regular expression (5 µs on a 329-byte answer here). Digits inside strings count too, which only costs
# those texts the slower parse.
_NINETEEN = b"9" * 19
_POSITIVE = b"9" * 20
_NEGATIVE = b"-" + _NINETEEN
_BYTES_TO_NINES = bytes.maketrans(b"012345678", b"999999999")
_STR_TO_NINES = str.maketrans("012345678", "999999999")
# orjson parses 1,024 levels of nesting; json.loads raises RecursionError from about 990 on Python 3.11,
# fewer when called deep in a stack. Texts that could nest that deep are left to it.
_MAX_OPENINGS = 500


def _orjson_reads_alike(text: bytes | bytearray | str) -> bool:
    # Both integer checks need nineteen 9s in a row, which nearly no text has: one search decides.
    # A text shorter than _MAX_OPENINGS cannot open more brackets than that.
    if isinstance(text, str):
        nines = text.translate(_STR_TO_NINES)
        if "9" * 19 in nines and ("9" * 20 in nines or "-" + "9" * 19 in nines):
            return False
        return len(text) <= _MAX_OPENINGS or text.count("[") + text.count("{") <= _MAX_OPENINGS
    if not isinstance(text, (bytes, bytearray)):
        return False  # json.loads raises its own TypeError
    nines = text.translate(_BYTES_TO_NINES)
    if _NINETEEN in nines and (_POSITIVE in nines or _NEGATIVE in nines):
        return False
    return len(text) <= _MAX_OPENINGS or text.count(b"[") + text.count(b"{") <= _MAX_OPENINGS


def loads(text: bytes | bytearray | str) -> Any:
    """`json.loads(text)`: the same value, or the same exception (ValueError, RecursionError)."""
    if _orjson_reads_alike(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # maybe JSON only json.loads accepts, or not JSON: it decides
    return json.loads(text)
