"""One batch into PostgreSQL: a record PostgreSQL will never take is set aside, an outage propagates."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg

from proxy.db.errors import DATABASE_ERRORS
from proxy.request_log.batch import write_batch
from proxy.request_log.record import RequestRecord

log = logging.getLogger(__name__)

ACQUIRE_TIMEOUT = 10.0

# SQLSTATE classes that blame the data, not the server: 22 data exception (a NUL in text), 23 integrity
# constraint violation (a NOT NULL column left empty), 54 program limit exceeded (an index row too large).
# https://www.postgresql.org/docs/current/errcodes-appendix.html
BAD_RECORD_CLASSES = frozenset({"22", "23", "54"})


def is_bad_record(exc: BaseException) -> bool:
    """True when `exc` says the batch holds a record PostgreSQL will never take, so retrying cannot
    help; False when the database is away or busy (connection lost, class 08, 53, 57P0x, timeouts),
    so the same batch must be tried again later."""
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "")[:2] in BAD_RECORD_CLASSES
    # asyncpg encodes each value before sending it: one it cannot encode (a lone surrogate, a
    # wrong type) raises one of these client-side, asyncpg's own DataError among them.
    if isinstance(exc, (ValueError, TypeError)):
        return True
    # Anything else that is not the database going away is this record meeting a bug: retrying
    # it forever would stall every record behind it.
    return not isinstance(exc, DATABASE_ERRORS)


async def commit_batch(
    pool: asyncpg.Pool, batch: list[RequestRecord], set_aside: Callable[[list[RequestRecord]], Awaitable[None]]
) -> tuple[int, int]:
    """Write one batch; return (inserted, rejected). A bad record is isolated and handed to `set_aside`;
    an outage (anything else from the database) propagates, and the batch is tried again later."""
    try:
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            return await write_batch(conn, batch), 0
    except Exception as exc:
        if not is_bad_record(exc):
            raise
        log.warning(
            "request log: a batch of %d was refused (%s: %s); writing its records one by one",
            len(batch),
            type(exc).__name__,
            exc,
        )
    inserted, refused = 0, []
    async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
        for record in batch:
            try:
                inserted += await write_batch(conn, [record])
            except Exception as exc:
                if not is_bad_record(exc):
                    raise
                log.warning("request log: record %s refused (%s: %s)", record.id, type(exc).__name__, exc)
                refused.append(record)
    if refused:
        await set_aside(refused)
    return inserted, len(refused)
