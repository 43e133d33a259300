"""What the gateway logged during a test: errors and tracebacks, which client input must never cause."""

from __future__ import annotations

import logging

import pytest


def problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records at ERROR or with a traceback. asyncio's own reports are left out: under load, the garbage
    collector may finalize an earlier test's leftovers (an unclosed client, a pending task) while this one runs."""
    return [r for r in caplog.records if (r.exc_info or r.levelno >= logging.ERROR) and r.name != "asyncio"]


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = problems(caplog)
    assert not bad, [r.getMessage() for r in bad]
