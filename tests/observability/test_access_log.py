"""Access lines: one per record on `proxy.routes.access`, JSON fields in json mode, no key, no forged lines."""

from __future__ import annotations

import json
import logging
import uuid

from proxy.observability.access_log import log_access
from proxy.observability.logging_setup import JsonFormatter
from tests.support.records import make_record


def test_one_line_per_record_with_its_fields(caplog):
    caplog.set_level(logging.INFO, logger="proxy.routes.access")
    key_id = uuid.uuid4()
    record = make_record(api_key_id=key_id)
    log_access(record)
    [line] = caplog.records
    assert line.name == "proxy.routes.access" and line.levelno == logging.INFO
    assert line.request_id == str(record.id) and line.key_id == str(key_id)
    assert (line.status, line.path, line.tokens, line.duration_ms) == (200, "/api/chat", 16, 42.0)
    assert str(record.id) in line.getMessage() and "POST /api/chat 200" in line.getMessage()


def test_json_mode_makes_every_value_a_field(caplog):
    caplog.set_level(logging.INFO, logger="proxy.routes.access")
    log_access(make_record(error="upstream timed out mid-response"))
    entry = json.loads(JsonFormatter().format(caplog.records[0]))
    assert entry["logger"] == "proxy.routes.access" and entry["status"] == 200
    assert entry["tokens"] == 16 and entry["error"] == "upstream timed out mid-response"
    assert {"time", "level", "message", "request_id", "key_id", "duration_ms", "ttfb_ms"} <= set(entry)


def test_a_newline_in_a_path_cannot_forge_a_text_line(caplog):
    caplog.set_level(logging.INFO, logger="proxy.routes.access")
    log_access(make_record(endpoint="/x\nINFO proxy: forged"))
    assert "\n" not in caplog.records[0].getMessage()


def test_nothing_is_built_when_access_lines_are_off(caplog):
    caplog.set_level(logging.WARNING, logger="proxy.routes.access")
    log_access(make_record())
    assert not caplog.records

