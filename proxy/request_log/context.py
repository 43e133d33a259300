"""The usage log wired into the app: the writer as the record sink, and request_log partition upkeep.

The modules behind it, one concern each: writer (queue, batching, retries), commit and spill (bad
records, the journal), batch (the SQL of one batch), journal (the disk while PostgreSQL is away),
partitions (daily partitions, retention), stats (reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from proxy.db.errors import DatabaseUnavailable
from proxy.request_log.journal import Journal
from proxy.request_log.partitions import maintain, maintenance_loop
from proxy.request_log.record import RECORD_SINK
from proxy.request_log.writer import RequestLogWriter
from proxy.settings import Settings
from proxy.state import POOL, SETTINGS

__all__ = ["JOURNAL_DIR", "RequestLogWriter", "create_writer", "request_log_context"]

log = logging.getLogger(__name__)

JOURNAL_DIR = "request_log_journal"  # inside GATEWAY_DATA_DIR


def create_writer(settings: Settings) -> RequestLogWriter:
    """Built with the app (the timing middleware needs its sink then); it gets its pool at startup."""
    return RequestLogWriter(Journal(settings.data_dir / JOURNAL_DIR))


async def request_log_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context, registered right after the pool's: the writer drains before the pool closes.

    Today's partition and the week's ahead are made before the first write; a test's own sink
    (anything but a RequestLogWriter) is left alone.
    """
    pool, retention = app[POOL], app[SETTINGS].log_retention_days
    try:
        await maintain(pool, retention)
    except DatabaseUnavailable as exc:
        log.warning("request_log partition maintenance at start failed (%s)", exc)
    upkeep = asyncio.create_task(maintenance_loop(pool, retention), name="request-log-partitions")
    writer = app[RECORD_SINK]
    if isinstance(writer, RequestLogWriter):
        await writer.start(pool)
    yield
    upkeep.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await upkeep
    if isinstance(writer, RequestLogWriter):
        await writer.stop()
