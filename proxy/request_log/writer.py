"""The request log writer: requests only enqueue; a background task batches records into PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import asdict

import asyncpg

from proxy.db.errors import DATABASE_ERRORS
from proxy.request_log.commit import commit_batch
from proxy.request_log.counters import WriterCounters
from proxy.request_log.journal import Journal
from proxy.request_log.record import RequestRecord
from proxy.request_log.spill import JournalSpill

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
FLUSH_INTERVAL = 0.5  # seconds; SIGKILL loses at most about three of them, the database up or away
MAX_QUEUED = 50_000  # records held in memory while the database is away, before the journal takes them
DRAIN_TIMEOUT = 5.0  # seconds spent writing at shutdown before the journal takes the rest
RETRY_MIN, RETRY_MAX = 0.2, 5.0  # backoff between attempts while the database is away


class RequestLogWriter:
    """The app's RecordSink. `enqueue` is O(1) and never waits.

    A background task writes batches of up to `batch_size` records when that many are queued, or
    every `flush_interval` seconds. While PostgreSQL is away it retries with backoff, and every
    `flush_interval` a second task moves what is queued to the journal (at once past `max_queued`),
    with a copy of a batch whose write hangs: so a record older than about one interval is in
    PostgreSQL or fsync'd on disk. The journal is replayed once the database answers again, or at
    the next start. A record PostgreSQL refuses (commit.is_bad_record) is set aside, never retried;
    the rest of its batch is written. `stop` drains for up to `drain_timeout` seconds, then journals
    the rest. Every write is idempotent, so replays never double-count. This class decides when
    records move; commit.py writes a batch, and spill.py does everything on disk.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        max_queued: int = MAX_QUEUED,
        drain_timeout: float = DRAIN_TIMEOUT,
    ) -> None:
        if batch_size < 1 or max_queued < batch_size or flush_interval <= 0 or drain_timeout < 0:
            raise ValueError("need batch_size >= 1, max_queued >= batch_size, flush_interval > 0")
        self.counters = WriterCounters()
        self.journal = journal
        self._spill = JournalSpill(journal, self.counters)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queued = max_queued
        self._drain_timeout = drain_timeout
        self._queue: deque[RequestRecord] = deque()
        self._in_flight = 0  # records taken from the queue, on their way to the database
        self._failures = 0
        self._writing: list[RequestRecord] | None = None  # the batch on its way to the database
        self._writing_since = 0.0
        self._replaying_since: float | None = None  # a journal replay keeps the flush loop busy
        self._writing_on_disk = False  # a copy of it is in the journal: never put it back in the queue
        self._copying: list[RequestRecord] | None = None  # the batch whose copy is being appended
        self._pool: asyncpg.Pool | None = None
        self._stopping = False
        self._wake = asyncio.Event()  # the queue holds a full batch
        self._spill_wake = asyncio.Event()  # the queue passed max_queued, or stop
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
        return not (self._queue or self._in_flight) and self._spill.idle

    @property
    def journal_error(self) -> str | None:
        """Why the journal directory is unusable, if it is (found at start, or by a failed write)."""
        return self._spill.journal_error

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
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="request-log-flush"),
            asyncio.create_task(self._spill_loop(), name="request-log-spill"),
        ]

    async def probe_journal(self) -> bool:
        """Can the journal be written? Logged once when it turns unusable; kept in `journal_error`."""
        return await self._spill.probe()

    async def stop(self) -> None:
        """Drain to the database for up to `drain_timeout` seconds, then journal what is left.

        Within the same time, a journal waiting for replay goes back to the database too: writes that were
        merely slow under load spill to it as an outage does, and its rows should not wait for the next start.
        """
        self._stopping = True
        if self._tasks:
            flush, spill = self._tasks
            flush.cancel()  # a write cut short puts its batch back in the queue
            self._spill_wake.set()
            await asyncio.gather(flush, spill, return_exceptions=True)
            deadline = asyncio.get_running_loop().time() + self._drain_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    await self._drain()
            except TimeoutError:
                log.warning("request log: database unavailable at shutdown; journaling %d records", len(self._queue))
            else:
                await self._replay_before(deadline)
        while self._queue:  # requests finishing during the drain add more
            await self._spill.append(self._take(len(self._queue)))
        log.info("request log stopped: %s", self.snapshot())

    async def _replay_before(self, deadline: float) -> None:
        if not self._spill.replay_needed or self._failures:  # nothing waits, or the database is away
            return
        try:
            async with asyncio.timeout_at(deadline):
                await self._replay()
        except DATABASE_ERRORS as exc:  # out of time (a TimeoutError) or the database left: the next start resumes it
            log.warning("request log: journal left for the next start (%s)", type(exc).__name__)
        except Exception:  # a bug must not keep what is still queued from the journal
            log.exception("request log: journal replay at shutdown failed; the next start resumes it")

    # --- background work ---------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._write_queued()
                if self._spill.replay_needed:
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
            if (self._failures or self._write_hangs()) and self._spill.journal_error is None:
                await self._spill_writing()
                if self._queue:
                    records = self._take(len(self._queue))
                    if not await self._spill.append(records, lost_on_failure=False):
                        self._queue.extendleft(reversed(records))  # memory is still better than nothing
            if len(self._queue) > self._max_queued:
                await self._spill.append(self._take(len(self._queue)))

    def _write_hangs(self) -> bool:
        # A database cut off without a reset (a dead host, a partition) fails only after the
        # connect or command timeout: records must not wait in memory for that long. A write that
        # is merely slow costs a journal append, no more: once it lands, a replay skips its copy. A long
        # replay (a big journal after an outage) holds the flush loop too: what is queued meanwhile
        # goes to the journal and is replayed next, rather than waiting in memory for the replay.
        now = asyncio.get_running_loop().time()
        if self._replaying_since is not None and now - self._replaying_since > self._flush_interval:
            return True
        return self._writing is not None and now - self._writing_since > self._flush_interval

    async def _spill_writing(self) -> None:
        """A copy of the batch on its way to the database into the journal. If its write then
        succeeds, this process's replay skips the copy (`settled`); any other replay finds those rows
        already there and leaves them (idempotent writes)."""
        batch = self._writing
        if batch is None or self._writing_on_disk or self._copying is batch:
            return
        self._copying = batch
        try:
            copied = await self._spill.append(list(batch), lost_on_failure=False)
        finally:
            self._copying = None
        # Only a copy known to be on disk lets a failed write leave the batch out of the queue. A write
        # that failed while the copy was being made has put the batch back already: should the copy
        # have landed too, its rows are skipped on replay as duplicates, never lost.
        if copied and self._writing is batch:
            self._writing_on_disk = True

    async def _drain(self) -> None:
        while self._queue:
            try:
                await self._write_queued(everything=True)
            except Exception as exc:
                await self._back_off(exc)
            else:
                self._failures = 0

    async def _back_off(self, exc: BaseException) -> None:
        self._failures += 1
        if self._failures == 1:
            log.warning(
                "request log: database unavailable (%s: %s); retrying, %d records queued",
                type(exc).__name__,
                exc,
                len(self._queue),
            )
        await asyncio.sleep(min(RETRY_MAX, RETRY_MIN * 2 ** (self._failures - 1)))

    # --- moving records ----------------------------------------------------------------------

    def _take(self, count: int) -> list[RequestRecord]:
        popleft = self._queue.popleft
        return [popleft() for _ in range(min(count, len(self._queue)))]

    async def _write_queued(self, *, everything: bool = False) -> None:
        """Write what was queued when the pass began, then only full batches (`everything`: until
        the queue is empty). Records that arrive while a batch is on its way wait for the next
        interval: a trickle of requests then shares one transaction per interval instead of paying
        for one each, which at one connection was a quarter of the gateway's CPU per request."""
        due = len(self._queue)
        while self._queue and (everything or due > 0 or len(self._queue) >= self._batch_size):
            batch = self._take(self._batch_size)
            due -= len(batch)
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
            if self._writing_on_disk or self._copying is batch:  # its copy in the journal need not be replayed
                self._spill.settled.update(record.id for record in batch)
            self.counters.written += len(batch) - rejected
            self.counters.duplicates += len(batch) - rejected - inserted

    async def _commit(self, batch: list[RequestRecord]) -> tuple[int, int]:
        assert self._pool is not None, "start() first"
        return await commit_batch(self._pool, batch, self._spill.set_aside)

    async def _replay(self) -> None:
        self._replaying_since = asyncio.get_running_loop().time()
        try:
            await self._spill.replay(self._commit, self._batch_size)
        finally:
            self._replaying_since = None
