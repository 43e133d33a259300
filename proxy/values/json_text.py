"""JSON text parsed as `json.loads` parses it, by orjson wherever the two agree.

Request bodies and Ollama's answers are parsed on every request (the model a body names, the usage an
answer reports) and every streamed line: `json.loads` spent ~5 µs on a 100-byte body here, most of it
in its Python layers (encoding detection, JSONDecoder.decode), orjson under 1 µs
(docs/benchmarks.md). orjson is strict RFC 8259 and refuses what `json.loads` accepts beyond it (NaN,
Infinity, numbers out of a double's range, lone surrogate escapes, a byte-order mark, nesting past 1,024
levels): those inputs go to `json.loads`, which decides, so the values and errors are the standard
library's. The one input orjson accepts but reads differently is an integer beyond 64 bits (a float, not
an int): text with a run of 20 digits goes to `json.loads` too.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# 20 digits or more in a row: past u64's 18446744073709551615 (or near it). Found by turning every digit
# into a 9 and searching for twenty 9s, both in C: ~20 times cheaper than the regular expression \d{20}
# (5 µs on a 329-byte answer here). Digits inside strings count too, which only costs those texts the
# slower parse.
_NINES = b"9" * 20
_BYTES_TO_NINES = bytes.maketrans(b"012345678", b"999999999")
_STR_TO_NINES = str.maketrans("012345678", "999999999")


def _long_digit_run(text: bytes | bytearray | str) -> bool:
    if isinstance(text, str):
        return "9" * 20 in text.translate(_STR_TO_NINES)
    return _NINES in text.translate(_BYTES_TO_NINES)


def loads(text: bytes | bytearray | str) -> Any:
    """`json.loads(text)`: the same value, or the same exception (ValueError, RecursionError)."""
    if not _long_digit_run(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # maybe JSON only json.loads accepts, or not JSON: it decides
    return json.loads(text)
