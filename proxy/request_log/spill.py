"""The request log's disk side: records spilled to the journal, malformed ones set aside, replays."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import UUID

from proxy.request_log.counters import WriterCounters
from proxy.request_log.journal import Journal
from proxy.request_log.record import RequestRecord

log = logging.getLogger(__name__)

# Writes one batch to the database; returns (inserted, rejected), as commit.commit_batch does.
Commit = Callable[[list[RequestRecord]], Awaitable[tuple[int, int]]]


class JournalSpill:
    """Appends, set-asides and replays of one journal, one disk operation at a time.

    `journal_error` says why the journal is unusable (found by `probe`, or by a failed append),
    and `replay_needed` that it holds records not yet back in the database.
    """

    def __init__(self, journal: Journal, counters: WriterCounters) -> None:
        self.journal = journal
        self.counters = counters
        self.journal_error: str | None = None
        self.replay_needed = True  # an earlier run may have left a journal
        self.in_flight = 0  # records on their way to the disk
        # Copies of slow writes that then landed (or were set aside): already settled, so a replay in
        # this process skips them instead of asking PostgreSQL to find each one there. Another process
        # sharing the directory, or the next start, replays them as duplicates, which is still exact.
        self.settled: set[UUID] = set()
        self._disk = asyncio.Lock()  # one journal append or claim at a time
        self._replaying = asyncio.Lock()

    @property
    def idle(self) -> bool:
        """Nothing on its way to disk, no journal waiting for or in replay."""
        return not (self.in_flight or self.replay_needed or self._replaying.locked())

    async def probe(self) -> bool:
        """Can the journal be written? Logged once when it turns unusable; kept in `journal_error`."""
        try:
            await asyncio.to_thread(self.journal.probe)
        except OSError as exc:
            if self.journal_error is None:
                log.error(
                    "request log: the journal directory %s is not writable (%s); set GATEWAY_DATA_DIR "
                    "to a writable directory, or usage records are lost if PostgreSQL goes away",
                    self.journal.directory,
                    exc.strerror or exc,
                )
            self.journal_error = "not writable"
            return False
        self.journal_error = None
        return True

    async def append(self, records: list[RequestRecord], *, lost_on_failure: bool = True) -> bool:
        """Into the journal; False if the disk failed. Then the records are lost and counted, or,
        with `lost_on_failure=False`, left to the caller, and outages stop spilling to this disk
        (until /ready finds the journal writable again: probe)."""
        self.in_flight += len(records)
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
            self.in_flight -= len(records)
        self.counters.journaled += len(records)
        self.replay_needed = True
        return True

    async def set_aside(self, records: list[RequestRecord]) -> None:
        """Records PostgreSQL refused as malformed: kept apart for a person to look at, never retried."""
        log.error("request log: %d malformed records set aside in %s", len(records), self.journal.rejected)
        try:
            await asyncio.to_thread(self.journal.reject, records)
        except OSError as exc:
            self.counters.dropped += len(records)
            log.error("request log: cannot keep refused records (%s); %d records LOST", exc, len(records))
            return
        self.counters.rejected += len(records)

    async def replay(self, commit: Commit, batch_size: int) -> None:
        """Every journal file back into the database through `commit`; an outage leaves the rest for later."""
        async with self._replaying:
            async with self._disk:
                self.replay_needed = False  # an append from now on sets it again
                paths = await asyncio.to_thread(self.journal.claim)
            try:
                for path in paths:
                    await self._replay_file(path, commit, batch_size)
            except BaseException:
                self.replay_needed = True
                raise
            # Every copy appended before the claim was in those files; one whose append failed never will be.
            self.settled.clear()

    async def _replay_file(self, path: Path, commit: Commit, batch_size: int) -> None:
        log.info("request log: replaying journal %s", path.name)
        batches = Journal.read(path, batch_size)
        try:
            while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                if self.settled:
                    unsettled = [r for r in batch if r.id not in self.settled]
                    self.counters.skipped += len(batch) - len(unsettled)
                    if not (batch := unsettled):
                        continue
                inserted, rejected = await commit(batch)
                # Per batch: a replay cut off and begun again counts its first batches once more as
                # replayed and as duplicates, so `landed` stays exact.
                self.counters.replayed += len(batch) - rejected
                self.counters.duplicates += len(batch) - rejected - inserted
        finally:
            with contextlib.suppress(ValueError):  # still running in its thread if we were cancelled
                batches.close()
        await asyncio.to_thread(path.unlink, missing_ok=True)
