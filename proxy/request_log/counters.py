"""What the request log writer has done with the records it was given, for metrics and logs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class WriterCounters:
    enqueued: int = 0  # records handed to the writer
    written: int = 0  # from memory into the database
    journaled: int = 0  # from memory to the journal on disk
    replayed: int = 0  # from the journal into the database (a batch replayed twice counts twice)
    skipped: int = 0  # journaled copies of slow writes that landed after all: not replayed (JournalSpill.settled)
    duplicates: int = 0  # written or replayed records the table already had: a retried batch
    rejected: int = 0  # refused by PostgreSQL as malformed (commit.is_bad_record); kept in rejected.jsonl
    dropped: int = 0  # lost: the journal could not be written (a disk failure). Alert on > 0.

    @property
    def landed(self) -> int:
        """Records this writer put in the table, each once: through memory or through the journal.
        A write slower than the hang threshold is also journaled, and its replay finds the rows there.
        A lower bound: a batch whose COMMIT reached the table but whose acknowledgement was lost is
        written again and counted as duplicates, so it is missing here though its rows are there."""
        return self.written + self.replayed - self.duplicates
