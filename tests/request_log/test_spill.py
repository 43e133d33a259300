"""The journal's replay skips copies this process knows landed, and only those, and only once it may."""

from __future__ import annotations

import pytest

from proxy.request_log.counters import WriterCounters
from proxy.request_log.journal import Journal
from proxy.request_log.spill import JournalSpill
from tests.support.records import make_record


def _spill(tmp_path) -> JournalSpill:
    return JournalSpill(Journal(tmp_path / "journal"), WriterCounters())


async def test_a_replay_skips_settled_copies_and_then_forgets_them(tmp_path):
    spill = _spill(tmp_path)
    records = [make_record() for _ in range(10)]
    assert await spill.append(records)
    spill.settled.update(r.id for r in records[2:6])  # a slow write's copy, whose write then landed
    committed: list = []

    async def commit(batch):
        committed.extend(batch)
        return len(batch), 0

    await spill.replay(commit, batch_size=3)
    assert [r.id for r in committed] == [r.id for r in records[:2] + records[6:]]
    assert (spill.counters.replayed, spill.counters.skipped, spill.counters.duplicates) == (6, 4, 0)
    assert not spill.settled and not spill.replay_needed and not spill.journal.pending()


async def test_a_batch_of_nothing_but_settled_copies_asks_the_database_nothing(tmp_path):
    spill = _spill(tmp_path)
    records = [make_record() for _ in range(4)]
    assert await spill.append(records)
    spill.settled.update(r.id for r in records)
    calls = 0

    async def commit(batch):
        nonlocal calls
        calls += 1
        return len(batch), 0

    await spill.replay(commit, batch_size=2)
    assert calls == 0 and (spill.counters.replayed, spill.counters.skipped) == (0, 4)
    assert not spill.journal.pending()


async def test_a_replay_cut_short_keeps_what_it_knows_for_the_next_one(tmp_path):
    spill = _spill(tmp_path)
    records = [make_record() for _ in range(6)]
    assert await spill.append(records)
    settled = {records[4].id, records[5].id}
    spill.settled.update(settled)
    attempts = 0

    async def failing_then_fine(batch):
        nonlocal attempts
        attempts += 1
        if attempts == 2:
            raise ConnectionResetError("the database went away")
        return len(batch), 0

    with pytest.raises(ConnectionResetError):
        await spill.replay(failing_then_fine, batch_size=2)
    assert spill.settled == settled and spill.replay_needed and spill.journal.pending()

    committed: list = []

    async def commit(batch):
        committed.extend(batch)
        return len(batch), 0

    await spill.replay(commit, batch_size=2)
    assert [r.id for r in committed] == [r.id for r in records[:4]]  # the file again from its start
    assert not spill.settled and not spill.journal.pending()
