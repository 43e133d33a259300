"""Access lines: one per record on `proxy.access`, JSON fields in json mode, no key, no forged lines."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import math
import random
import re
import uuid
from collections.abc import Iterator

import pytest

from proxy.observability.access_log import _duration_text, log_access
from proxy.observability.logging_setup import TEXT_FORMAT, JsonFormatter, LoopBatchedHandler, TextFormatter
from tests.support.records import make_record


def test_one_line_per_record_with_its_fields(caplog):
    caplog.set_level(logging.INFO, logger="proxy.access")
    key_id = uuid.uuid4()
    record = make_record(api_key_id=key_id)
    log_access(record)
    [line] = caplog.records
    assert line.name == "proxy.access" and line.levelno == logging.INFO
    assert line.request_id == str(record.id) and line.key_id == str(key_id)
    assert (line.status, line.path, line.tokens, line.duration_ms) == (200, "/api/chat", 16, 42.0)
    assert str(record.id) in line.getMessage() and "POST /api/chat 200" in line.getMessage()


def test_json_mode_makes_every_value_a_field(caplog):
    caplog.set_level(logging.INFO, logger="proxy.access")
    log_access(make_record(error="upstream timed out mid-response"))
    entry = json.loads(JsonFormatter().format(caplog.records[0]))
    assert entry["logger"] == "proxy.access" and entry["status"] == 200
    assert entry["tokens"] == 16 and entry["error"] == "upstream timed out mid-response"
    assert {"time", "level", "message", "request_id", "key_id", "duration_ms", "ttfb_ms"} <= set(entry)


FORGERIES = {
    "newline": "x\nINFO proxy.access: GET / 200",
    "carriage return": "x\r\nFORGED",
    "line separator": "x\u2028FORGED",
    "next line": "x\x85FORGED",
    "terminal escape": "x\x1b[31mred",
    "lone surrogate": "x\udcff",
}


@pytest.mark.parametrize("text", FORGERIES.values(), ids=FORGERIES.keys())
@pytest.mark.parametrize("field", ["endpoint", "model"])
def test_client_text_cannot_forge_a_text_line(field, text):
    """Any client text in any field, formatted as `serve` formats text logs: one printable line."""
    captured = []
    handler = logging.Handler()
    handler.emit = lambda record: captured.append(handler.format(record))
    handler.setFormatter(TextFormatter(TEXT_FORMAT))
    access = logging.getLogger("proxy.access")
    access.addHandler(handler)
    level, access.level = access.level, logging.INFO
    try:
        log_access(make_record(**{field: text}))
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    (line,) = captured
    assert line.isprintable() and "FORGED" not in line.split(": ", 1)[0]


def test_a_duration_reads_as_its_value_rounded_to_two_decimals():
    randomly = random.Random(17)
    values = [randomly.uniform(0, 10_000) for _ in range(20_000)]
    values += [randomly.randint(0, 10**7) / 1000 for _ in range(20_000)]
    values += [randomly.uniform(-1e14, 1e14) for _ in range(5_000)]
    values += [0.0, -0.0, 0.005, 0.015, 2.675, 1e13, -1e13, 1e300, math.inf, -math.inf, math.nan, 5e-324]
    assert [_duration_text(ms) for ms in values] == [str(round(ms, 2)) for ms in values]
    assert _duration_text(None) == "None"


def test_nothing_is_built_when_access_lines_are_off(caplog):
    caplog.set_level(logging.WARNING, logger="proxy.access")
    log_access(make_record())
    assert not caplog.records


@contextlib.contextmanager
def _serve_logging(fmt: str) -> Iterator[tuple[LoopBatchedHandler, io.StringIO]]:
    """The root logger as `serve` sets it up (one batched handler), writing to a buffer."""
    stream = io.StringIO()
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    root, access = logging.getLogger(), logging.getLogger("proxy.access")
    saved = root.handlers[:], access.level
    root.handlers[:] = [handler]
    access.setLevel(logging.INFO)
    try:
        yield handler, stream
    finally:
        root.handlers[:] = saved[0]
        access.setLevel(saved[1])


def _through_logging(handler: logging.Handler, record) -> str:
    """The line the logging path gives for `record`: a LogRecord formatted by `handler`'s formatter."""
    captured = []
    capture = logging.Handler()
    capture.emit = lambda r: captured.append(handler.format(r))
    access = logging.getLogger("proxy.access")
    access.addHandler(capture)  # a handler of its own: log_access takes the logging path
    try:
        log_access(record)
    finally:
        access.removeHandler(capture)
    (line,) = captured
    return line


def _masked(line: str) -> str:
    return line[24:]  # the text line after its "YYYY-MM-DD HH:MM:SS,mmm " time


RECORDS = {
    "plain": {},
    "no key, no model": {"api_key_id": None, "model": None, "prompt_tokens": None, "completion_tokens": None},
    "error and ttfb": {"error": "upstream timed out mid-response", "ttfb": 3.14159, "status_code": 504},
    **{f"forged {name}": {"endpoint": text} for name, text in FORGERIES.items()},
    **{f"forged model, {name}": {"model": text} for name, text in FORGERIES.items()},
    # One unprintable field escapes the whole line, the printable backslash of another too.
    "backslash beside a forged model": {"endpoint": "/api/a\\b", "model": "x\nFORGED"},
    "forged method": {"method": "GET\x1b"},
    **{f"{ms!r} ms": {"response_time": ms} for ms in (None, 0.0, 0.001, 0.125, 2.0, 1.5, 999.995, 1e12 + 0.5, 3e13)},
}


@pytest.mark.parametrize("overrides", RECORDS.values(), ids=RECORDS.keys())
async def test_serve_writes_the_same_text_line_as_logging(overrides):
    record = make_record(**{"api_key_id": uuid.uuid4(), **overrides})
    with _serve_logging("text") as (handler, stream):
        log_access(record)
        handler.flush()  # the batch would leave within the handler's delay
        expected = _through_logging(handler, record)
    (line,) = stream.getvalue().splitlines()
    assert _masked(line) == _masked(expected) and line.isprintable()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", line[:24])


@pytest.mark.parametrize("overrides", RECORDS.values(), ids=RECORDS.keys())
async def test_serve_writes_the_same_json_line_as_logging(overrides):
    record = make_record(**{"api_key_id": uuid.uuid4(), **overrides})
    with _serve_logging("json") as (handler, stream):
        log_access(record)
        handler.flush()
        expected = json.loads(_through_logging(handler, record))
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry.pop("time")[:10] == expected.pop("time")[:10]
    assert entry == expected and list(entry) == list(expected)


async def test_serve_lines_of_a_short_while_leave_in_one_write():
    writes = []
    with _serve_logging("text") as (handler, stream):
        handler.delay = 0.5  # longer than any pause of a busy machine between the five lines
        stream.write = lambda text: writes.append(text) or len(text)
        for _ in range(5):
            log_access(make_record())
            await asyncio.sleep(0)
        await asyncio.sleep(handler.delay * 2)
    assert len(writes) == 1 and writes[0].count("\n") == 5
