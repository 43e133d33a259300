"""The request log writer: requests only enqueue; a background task batches records into PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

from proxy.db.errors import DATABASE_ERRORS
from proxy.request_log.batch import write_batch
from proxy.request_log.journal import Journal
from proxy.request_log.record import RequestRecord

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
FLUSH_INTERVAL = 0.5  # seconds; about what SIGKILL can lose, the database up or away
MAX_QUEUED = 50_000  # records held in memory while the database is away, before the journal takes them
DRAIN_TIMEOUT = 5.0  # seconds spent writing at shutdown before the journal takes the rest
ACQUIRE_TIMEOUT = 10.0
RETRY_MIN, RETRY_MAX = 0.2, 5.0  # backoff between attempts while the database is away

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


@dataclass(slots=True)
class WriterCounters:
    enqueued: int = 0  # records handed to the writer
    written: int = 0  # from memory into the database
    journaled: int = 0  # from memory to the journal on disk
    replayed: int = 0  # from the journal into the database (counted per file, once it is done)
    duplicates: int = 0  # written or replayed records the table already had: a retried batch
    rejected: int = 0  # refused by PostgreSQL as malformed (is_bad_record); kept in rejected.jsonl
    dropped: int = 0  # lost: the journal could not be written (a disk failure). Alert on > 0.


class RequestLogWriter:
    """The app's RecordSink. `enqueue` is O(1) and never waits.

    A background task writes batches of up to `batch_size` records when that many are queued, or
    every `flush_interval` seconds. While PostgreSQL is away it retries with backoff, and every
    `flush_interval` a second task moves what is queued to the journal (at once past `max_queued`),
    with a copy of a batch whose write hangs: so a record older than about one interval is in
    PostgreSQL or fsync'd on disk. The journal is replayed once the database answers again, or at
    the next start. A record PostgreSQL refuses (is_bad_record) is set aside, never retried; the
    rest of its batch is written. `stop` drains for up to `drain_timeout` seconds, then journals
    the rest. Every write is idempotent, so replays never double-count.
    """

    def __init__(self, journal: Journal, *, batch_size: int = BATCH_SIZE, flush_interval: float = FLUSH_INTERVAL,
                 max_queued: int = MAX_QUEUED, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        if batch_size < 1 or max_queued < batch_size or flush_interval <= 0 or drain_timeout < 0:
            raise ValueError("need batch_size >= 1, max_queued >= batch_size, flush_interval > 0")
        self.counters = WriterCounters()
        self.journal = journal
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queued = max_queued
        self._drain_timeout = drain_timeout
        self._queue: deque[RequestRecord] = deque()
        self._in_flight = 0  # records taken from the queue, on their way to the database or disk
        self._replay_needed = True  # an earlier run may have left a journal
        self._failures = 0
        self._writing: list[RequestRecord] | None = None  # the batch on its way to the database
        self._writing_since = 0.0
        self._writing_on_disk = False  # a copy of it is in the journal: never put it back in the queue
        self.journal_error: str | None = None  # why the journal directory is unusable, found at start
        self._pool: asyncpg.Pool | None = None
        self._stopping = False
        self._wake = asyncio.Event()  # the queue holds a full batch
        self._spill_wake = asyncio.Event()  # the queue passed max_queued, or stop
        self._disk = asyncio.Lock()  # one journal append or claim at a time
        self._replaying = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []

    def enqueue(self, record: RequestRecord) -> None:
        self._queue.append(record)
        self.counters.enqueued += 1
        if len(self._queue) >= self._batch_size:
            self._wake.set()
            if len(self._queue) > self._max_queued:
                self._spill_wake.set()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing on its way, no journal waiting for or in replay."""
        return not (self._queue or self._in_flight or self._replay_needed or self._replaying.locked())

    def snapshot(self) -> dict[str, int]:
        """Counters and queue depth, for metrics and logs."""
        return {**asdict(self.counters), "queue_depth": len(self._queue)}

    async def start(self, pool: asyncpg.Pool) -> None:
        """Replay what an earlier run journaled (before serving, so usage seeds see it), then run."""
        self._pool = pool
        await self.probe_journal()
        try:
            await self._replay()
        except DATABASE_ERRORS as exc:
            log.warning("request log: journal replay at start failed (%s); retrying in the background", exc)
        self._tasks = [asyncio.create_task(self._flush_loop(), name="request-log-flush"),
                       asyncio.create_task(self._spill_loop(), name="request-log-spill")]

    async def probe_journal(self) -> bool:
        """Can the journal be written? Logged once when it turns unusable; kept in `journal_error`."""
        try:
            await asyncio.to_thread(self.journal.probe)
        except OSError as exc:
            if self.journal_error is None:
                log.error("request log: the journal directory %s is not writable (%s); set GATEWAY_DATA_DIR "
                          "to a writable directory, or usage records are lost if PostgreSQL goes away",
                          self.journal.directory, exc.strerror or exc)
            self.journal_error = "not writable"
            return False
        self.journal_error = None
        return True

    async def stop(self) -> None:
        """Drain to the database for up to `drain_timeout` seconds, then journal what is left."""
        self._stopping = True
        if self._tasks:
            flush, spill = self._tasks
            flush.cancel()  # a write cut short puts its batch back in the queue
            self._spill_wake.set()
            await asyncio.gather(flush, spill, return_exceptions=True)
            try:
                async with asyncio.timeout(self._drain_timeout):
                    await self._drain()
            except TimeoutError:
                log.warning("request log: database unavailable at shutdown; journaling %d records",
                            len(self._queue))
        while self._queue:  # requests finishing during the drain add more
            await self._spill(self._take(len(self._queue)))
        log.info("request log stopped: %s", self.snapshot())

    # --- background work ---------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._write_queued()
                if self._replay_needed:
                    await self._replay()
            except Exception as exc:  # the loop must outlive anything, even a bug
                if not isinstance(exc, DATABASE_ERRORS):
                    log.exception("request log: unexpected error; retrying")
                await self._back_off(exc)
                continue
            if self._failures:
                log.warning("request log: database back after %d failed attempts", self._failures)
                self._failures = 0

    async def _spill_loop(self) -> None:
        # While the database is up this only wakes, finds writes going well, and sleeps again.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._spill_wake.wait()
            self._spill_wake.clear()
            if self._stopping:
                return
            if (self._failures or self._write_hangs()) and self.journal_error is None:
                await self._spill_writing()
                if self._queue:
                    records = self._take(len(self._queue))
                    if not await self._spill(records, lost_on_failure=False):
                        self._queue.extendleft(reversed(records))  # memory is still better than nothing
            if len(self._queue) > self._max_queued:
                await self._spill(self._take(len(self._queue)))

    def _write_hangs(self) -> bool:
        # A database cut off without a reset (a dead host, a partition) fails only after the
        # connect or command timeout: records must not wait in memory for that long. A write that
        # is merely slow costs a journal append and a replay of rows already there, no more.
        return (self._writing is not None
                and asyncio.get_running_loop().time() - self._writing_since > self._flush_interval)

    async def _spill_writing(self) -> None:
        """A copy of the batch on its way to the database into the journal. If its write then
        succeeds, the replay finds those rows already there and skips them (idempotent writes)."""
        batch = self._writing
        if batch is None or self._writing_on_disk:
            return
        self._writing_on_disk = True
        if not await self._spill(list(batch), lost_on_failure=False) and self._writing is batch:
            self._writing_on_disk = False  # still only in memory: a failed write puts it back in the queue

    async def _drain(self) -> None:
        while self._queue:
            try:
                await self._write_queued()
            except Exception as exc:
                await self._back_off(exc)

    async def _back_off(self, exc: BaseException) -> None:
        self._failures += 1
        if self._failures == 1:
            log.warning("request log: database unavailable (%s: %s); retrying, %d records queued",
                        type(exc).__name__, exc, len(self._queue))
        await asyncio.sleep(min(RETRY_MAX, RETRY_MIN * 2 ** (self._failures - 1)))

    # --- moving records ----------------------------------------------------------------------

    def _take(self, count: int) -> list[RequestRecord]:
        popleft = self._queue.popleft
        return [popleft() for _ in range(min(count, len(self._queue)))]

    async def _write_queued(self) -> None:
        while self._queue:
            batch = self._take(self._batch_size)
            self._in_flight += len(batch)
            self._writing, self._writing_since = batch, asyncio.get_running_loop().time()
            self._writing_on_disk = False
            try:
                inserted, rejected = await self._commit(batch)
            except BaseException:
                if not self._writing_on_disk:
                    self._queue.extendleft(reversed(batch))  # first again on the next attempt
                raise
            finally:
                self._in_flight -= len(batch)
                self._writing = None
            self.counters.written += len(batch) - rejected
            self.counters.duplicates += len(batch) - rejected - inserted

    async def _commit(self, batch: list[RequestRecord]) -> tuple[int, int]:
        """Write one batch; return (inserted, rejected). A bad record is isolated and set aside; an
        outage (anything else from the database) propagates, and the batch is tried again later."""
        assert self._pool is not None, "start() first"
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                return await write_batch(conn, batch), 0
        except Exception as exc:
            if not is_bad_record(exc):
                raise
            log.warning("request log: a batch of %d was refused (%s: %s); writing its records one by one",
                        len(batch), type(exc).__name__, exc)
        inserted, refused = 0, []
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            for record in batch:
                try:
                    inserted += await write_batch(conn, [record])
                except Exception as exc:
                    if not is_bad_record(exc):
                        raise
                    log.warning("request log: record %s refused (%s: %s)", record.id, type(exc).__name__, exc)
                    refused.append(record)
        if refused:
            await self._set_aside(refused)
        return inserted, len(refused)

    async def _spill(self, records: list[RequestRecord], *, lost_on_failure: bool = True) -> bool:
        """Into the journal; False if the disk failed. Then the records are lost and counted, or,
        with `lost_on_failure=False`, left to the caller, and outages stop spilling to this disk
        (until /ready finds the journal writable again: probe_journal)."""
        self._in_flight += len(records)
        try:
            async with self._disk:
                await asyncio.to_thread(self.journal.append, records)
        except OSError as exc:
            self.journal_error = "not writable"
            if lost_on_failure:
                self.counters.dropped += len(records)
                log.error("request log: journal write failed (%s); %d records LOST", exc, len(records))
            else:
                log.error("request log: journal write failed (%s); %d records kept in memory", exc, len(records))
            return False
        finally:
            self._in_flight -= len(records)
        self.counters.journaled += len(records)
        self._replay_needed = True
        return True

    async def _set_aside(self, records: list[RequestRecord]) -> None:
        log.error("request log: %d malformed records set aside in %s", len(records), self.journal.rejected)
        try:
            await asyncio.to_thread(self.journal.reject, records)
        except OSError as exc:
            self.counters.dropped += len(records)
            log.error("request log: cannot keep refused records (%s); %d records LOST", exc, len(records))
            return
        self.counters.rejected += len(records)

    async def _replay(self) -> None:
        async with self._replaying:
            async with self._disk:
                self._replay_needed = False  # a spill from now on sets it again
                paths = await asyncio.to_thread(self.journal.claim)
            try:
                for path in paths:
                    await self._replay_file(path)
            except BaseException:
                self._replay_needed = True
                raise

    async def _replay_file(self, path: Path) -> None:
        log.info("request log: replaying journal %s", path.name)
        batches = Journal.read(path, self._batch_size)
        count = 0
        try:
            while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                inserted, rejected = await self._commit(batch)
                count += len(batch) - rejected
                self.counters.duplicates += len(batch) - rejected - inserted
        finally:
            with contextlib.suppress(ValueError):  # still running in its thread if we were cancelled
                batches.close()
        await asyncio.to_thread(path.unlink, missing_ok=True)
        self.counters.replayed += count
