"""One access line per request on the `proxy.access` logger, built from its finished record.

Never a key or a token: the record holds neither, only the key's id. With LOG_FORMAT=json every
value is also a JSON field of the line (see logging_setup.JsonFormatter).

Under `serve`'s own logging set-up the line is formatted here and handed to the batched handler
directly: the same text, byte for byte, as the logging path gives, for about a quarter of its cost
(a LogRecord, its `extra` fields and the formatter's strftime: 45 against 12.5 µs a line in
docs/benchmarks.md). When the `proxy.access` logger or the root logger has handlers or filters of its
own (pytest's caplog, an embedding application's set-up) the line goes through logging as any other.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from uuid import UUID

from proxy.observability.logging_setup import JsonFormatter, batched_root_handler, json_entry, printable
from proxy.request_log.record import RequestRecord

log = logging.getLogger("proxy.access")

_MESSAGE = "%s %s %s %sms key=%s model=%s tokens=%s id=%s"
_LEVEL = "INFO    "  # %(levelname)-7s
_MAX_KEY_TEXTS = 10_000


def log_access(record: RequestRecord) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    handler = batched_root_handler()
    if handler is None or log.handlers or log.filters or not log.propagate or logging.root.filters:
        log.info(_MESSAGE, *_message_args(record), extra=_fields(record))
        return
    if isinstance(handler.formatter, JsonFormatter):
        handler.write_line(_json_line(record))
    else:
        handler.write_line(_text_line(record))


def _message_args(record: RequestRecord) -> tuple[Any, ...]:
    return (
        record.method,
        record.endpoint,
        record.status_code,
        _duration(record),
        _key_text(record.api_key_id),
        record.model,
        record.tokens_used,
        record.id,
    )


def _fields(record: RequestRecord) -> dict[str, Any]:
    """The line's values as JSON fields, in the order the json formatter writes them."""
    key = record.api_key_id
    return {
        "request_id": str(record.id),
        "key_id": _key_text(key) if key is not None else None,
        "method": record.method,
        "path": record.endpoint,
        "status": record.status_code,
        "duration_ms": _duration(record),
        "ttfb_ms": round(record.ttfb, 2) if record.ttfb is not None else None,
        "model": record.model,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "tokens": record.tokens_used,
        "bytes_out": record.bytes_out,
        "client": record.client_ip,
        "error": record.error,
    }


def _duration(record: RequestRecord) -> float | None:
    return round(record.response_time, 2) if record.response_time is not None else None


def _text_line(record: RequestRecord) -> str:
    # logging.Formatter's asctime: local time to the second, then ",mmm" (Formatter.default_msec_format).
    now = time.time()
    second = int(now)
    method, endpoint, model = record.method, record.endpoint, record.model
    # _MESSAGE % _message_args(record), written out: an f-string formats each value as %s does (str), without
    # the tuple and the three calls; tests/observability/test_access_log.py holds the two to the same text.
    message = (
        f"{method} {endpoint} {record.status_code} {_duration_text(record.response_time)}ms "
        f"key={_key_text(record.api_key_id)} model={model} tokens={record.tokens_used} id={record.id}"
    )
    # Only these three come from the client; the rest (numbers, ids) is always printable. Checked alone,
    # they cost a fifth of checking the whole line; any one of them unprintable escapes the whole line,
    # as the logging path's printable(message) does.
    if not (method.isprintable() and endpoint.isprintable() and (model is None or model.isprintable())):
        message = printable(message)
    return f"{_local_second(second)},{int((now - second) * 1000):03d} {_LEVEL}proxy.access: {message}"


def _duration_text(milliseconds: float | None) -> str:
    """str(round(milliseconds, 2)), for a third of its cost: "1.23", "1.2", "2.0".

    round(x, 2) is the double nearest to f"{x:.2f}" (both round x's exact value: CPython's float_round
    and its "f" format share dtoa's mode 3), and below 10**13 that text, at most 15 significant digits,
    is what repr gives back for it (DBL_DIG), less a last zero of the two decimals. Beyond, and for
    nan and the infinities, the long way.
    """
    if milliseconds is None:
        return "None"
    if -1e13 < milliseconds < 1e13:
        text = f"{milliseconds:.2f}"
        return text[:-1] if text[-1] == "0" else text
    return str(round(milliseconds, 2))


def _json_line(record: RequestRecord) -> str:
    entry = json_entry(time.time(), "INFO", log.name, _MESSAGE % _message_args(record))
    return json.dumps({**entry, **_fields(record)}, default=str)


_second: tuple[int, str] = (-1, "")


def _local_second(second: int) -> str:
    """strftime once a second, not once a line."""
    global _second
    if _second[0] != second:
        _second = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
    return _second[1]


_key_texts: dict[UUID, str] = {}


def _key_text(key_id: UUID | None) -> str | None:
    """A key id's text, kept: the same few keys make nearly every request, and str(UUID) costs ~2.5 µs."""
    if key_id is None:
        return None
    text = _key_texts.get(key_id)
    if text is None:
        if len(_key_texts) >= _MAX_KEY_TEXTS:
            _key_texts.clear()
        text = _key_texts[key_id] = str(key_id)
    return text
