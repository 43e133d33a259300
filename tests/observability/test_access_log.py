"""Access lines: one per record on `proxy.access`, JSON fields in json mode, no key, no forged lines."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from proxy.observability.access_log import log_access
from proxy.observability.logging_setup import JsonFormatter, TextFormatter
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
    handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
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


def test_nothing_is_built_when_access_lines_are_off(caplog):
    caplog.set_level(logging.WARNING, logger="proxy.access")
    log_access(make_record())
    assert not caplog.records
