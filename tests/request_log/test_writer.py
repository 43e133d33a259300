"""The writer on its own: batches, PostgreSQL cut off and back, shutdown into the journal, replay at start."""

from __future__ import annotations

import asyncio
import random
import string

import pytest

from proxy.db.pool import create_pool
from proxy.request_log.journal import Journal
from proxy.request_log.writer import RequestLogWriter
from tests.support.records import make_record, migrated_pool, wait_until
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
async def proxied(database_url, db):
    """(proxy, pool through it): the writer's only way to the database, which tests can cut."""
    (await migrated_pool(database_url)).terminate()
    proxy, dsn = await TcpProxy.to_dsn(database_url)
    pool = await create_pool(dsn)
    yield proxy, pool
    await proxy.restore()
    await pool.close()
    await proxy.close()


async def _ids(db) -> list:
    return [row["id"] for row in await db.fetch("SELECT id FROM request_log")]


async def _journaled_by_a_slow_write(proxied, tmp_path, **options) -> tuple[RequestLogWriter, list]:
    """A writer whose database answers only after several flush intervals (the proxy holds it), once
    its write past the hang threshold has spilled to the journal: the writer and its 250 records."""
    proxy, pool = proxied
    writer = RequestLogWriter(Journal(tmp_path), batch_size=100, flush_interval=0.2, **options)
    await writer.start(pool)
    proxy.hold()
    records = [make_record() for _ in range(250)]
    for record in records:
        writer.enqueue(record)
    await wait_until(lambda: writer.counters.journaled > 0, "a write past the hang threshold journaled")
    return writer, records


async def test_records_arrive_in_batches_exactly_once(proxied, db, tmp_path):
    _, pool = proxied
    writer = RequestLogWriter(Journal(tmp_path), batch_size=100)
    await writer.start(pool)
    records = [make_record() for _ in range(2_500)]
    for record in records:
        writer.enqueue(record)
    await wait_until(lambda: writer.idle, "writer drained")
    await writer.stop()
    assert sorted(await _ids(db)) == sorted(r.id for r in records)
    snapshot = writer.snapshot()
    assert snapshot["enqueued"] == writer.counters.landed == 2500
    assert (snapshot["rejected"], snapshot["dropped"], snapshot["queue_depth"]) == (0, 0, 0)


async def test_a_slow_write_is_journaled_too_and_its_replay_skips_the_copy_that_landed(proxied, db, tmp_path):
    proxy, _ = proxied
    writer, records = await _journaled_by_a_slow_write(proxied, tmp_path)
    proxy.release()
    await wait_until(lambda: writer.idle, "writer caught up")
    await writer.stop()
    assert sorted(await _ids(db)) == sorted(r.id for r in records)
    counters = writer.counters
    # The held batch (100) is in the journal twice over: as the copy of a hanging write, and in the table
    # once that write went through. The replay writes only what was queued behind it.
    assert (counters.written, counters.journaled, counters.replayed, counters.skipped) == (100, 250, 150, 100)
    assert counters.duplicates == 0 and counters.landed == 250 and counters.dropped == 0
    assert not writer._spill.settled


async def test_stop_replays_what_slow_writes_journaled(proxied, db, tmp_path):
    # Under load a write past the hang threshold spills to the journal as an outage does; stopping right
    # then leaves its rows in the database, not in a journal waiting for the next start.
    proxy, _ = proxied
    writer, records = await _journaled_by_a_slow_write(proxied, tmp_path)
    assert Journal(tmp_path).pending()
    stopping = asyncio.create_task(writer.stop())
    await asyncio.sleep(0.3)
    proxy.release()
    await stopping
    assert sorted(await _ids(db)) == sorted(r.id for r in records)
    assert not Journal(tmp_path).pending()
    assert writer.counters.landed == 250 and writer.counters.dropped == 0


async def test_stop_leaves_the_journal_for_the_next_start_when_the_database_stays_away(proxied, db, tmp_path):
    proxy, pool = proxied
    writer, records = await _journaled_by_a_slow_write(proxied, tmp_path, drain_timeout=1.0)
    await proxy.cut()
    await writer.stop()  # within its drain time, whatever the replay meets
    assert Journal(tmp_path).pending()

    await proxy.restore()
    again = RequestLogWriter(Journal(tmp_path))
    await again.start(pool)
    await again.stop()
    assert sorted(set(await _ids(db))) == sorted(r.id for r in records)


async def test_an_outage_spills_to_the_journal_and_replays_when_the_database_returns(proxied, db, tmp_path):
    proxy, pool = proxied
    writer = RequestLogWriter(Journal(tmp_path), batch_size=100, max_queued=1_000)
    await writer.start(pool)
    before = [make_record() for _ in range(500)]
    for record in before:
        writer.enqueue(record)
    await wait_until(lambda: writer.idle, "first records written")

    await proxy.cut()
    during = [make_record() for _ in range(3_000)]
    for record in during:
        writer.enqueue(record)  # never blocks, whatever the database does
    await wait_until(lambda: writer.counters.journaled >= 2_000, "records spilled to disk")
    assert writer.queue_depth <= 1_000 + 100
    assert Journal(tmp_path).pending()

    await proxy.restore()
    await wait_until(lambda: writer.idle, "writer caught up")
    await writer.stop()
    ids = await _ids(db)
    assert len(ids) == len(set(ids)) == 3_500
    assert set(ids) == {r.id for r in before + during}
    counters = writer.counters
    # Every journaled record is replayed, or skipped as the copy of a slow write that landed after all.
    assert counters.replayed + counters.skipped == counters.journaled and counters.dropped == 0
    assert counters.landed == 3_500  # through memory or the journal, each once
    assert not Journal(tmp_path).pending()


async def test_shutdown_without_a_database_journals_and_the_next_start_replays(proxied, db, tmp_path):
    proxy, pool = proxied
    writer = RequestLogWriter(Journal(tmp_path), drain_timeout=0.5)
    await writer.start(pool)
    await proxy.cut()
    records = [make_record() for _ in range(1_000)]
    for record in records:
        writer.enqueue(record)
    await writer.stop()
    assert writer.counters.journaled == 1_000 and await _ids(db) == []
    assert Journal(tmp_path).pending()

    await proxy.restore()
    again = RequestLogWriter(Journal(tmp_path))
    await again.start(pool)  # replays before it returns
    assert again.counters.replayed == 1_000
    assert sorted(await _ids(db)) == sorted(r.id for r in records)
    assert not Journal(tmp_path).pending()
    await again.stop()


# Records no database will take, built directly (the timing middleware and the journal reader would
# have made their text storable): each names the SQLSTATE class or client-side error it meets.
# Long enough that no compression brings its index entry under PostgreSQL's 2,712-byte limit.
LONG = "".join(random.Random(3).choices(string.ascii_letters + string.digits, k=10_000))
BAD_RECORDS = {
    "54 index row too large": {"model": LONG},
    "22 NUL in text": {"model": "llama\x00"},
    "23 NOT NULL": {"status_code": None},
    "client-side: lone surrogate": {"endpoint": "/api/\ud800"},
    "client-side: wrong type": {"response_time": "slow"},
}


@pytest.mark.parametrize("fields", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
async def test_a_bad_record_is_set_aside_and_counted_and_its_batch_goes_through(proxied, db, tmp_path, fields):
    _, pool = proxied
    writer = RequestLogWriter(Journal(tmp_path), batch_size=10)
    await writer.start(pool)
    good = [make_record() for _ in range(9)]
    bad = make_record(**fields)
    for record in good[:4] + [bad] + good[4:]:
        writer.enqueue(record)
    await wait_until(lambda: writer.idle, "batch handled")
    await writer.stop()
    assert sorted(await _ids(db)) == sorted(r.id for r in good)
    assert writer.counters.rejected == 1 and writer.counters.written == 9
    assert writer.snapshot()["rejected"] == 1  # exported in /metrics as ollama_gateway_log_records
    assert list(Journal.read(Journal(tmp_path).rejected, 10))[0][0].id == bad.id


async def test_a_poisoned_journal_is_replayed_once_good_lines_written_bad_set_aside(proxied, db, tmp_path):
    _, pool = proxied
    journal = Journal(tmp_path)
    good = [make_record() for _ in range(20)]
    # From an older version: made storable when read, then written.
    unclean = [make_record(model=LONG, error="\ud800"), make_record(endpoint="/api/\ud800\x00")]
    bad = [make_record(status_code=None), make_record(response_time="slow"), make_record(bytes_in="many")]
    journal.append(good[:10] + bad + unclean + good[10:])
    with open(journal.current, "a") as file:
        file.write('{"id": "not a record"}\n')
    writer = RequestLogWriter(journal, batch_size=8)
    async with asyncio.timeout(60):  # a replay that looped would never return
        await writer.start(pool)  # replays before it serves
    await writer.stop()
    ids = set(await _ids(db))
    assert ids == {r.id for r in good + unclean}
    assert writer.counters.rejected == len(bad) and not journal.pending()
    assert {r.id for batch in Journal.read(journal.rejected, 100) for r in batch} <= {r.id for r in bad}
    assert await db.fetchval("SELECT model FROM request_log WHERE id = $1", unclean[0].id) == LONG[:512]


@pytest.mark.parametrize("outage", ["cut", "stall"])
async def test_during_an_outage_queued_records_reach_the_journal_before_the_memory_bound(proxied, db, tmp_path, outage):
    proxy, pool = proxied
    writer = RequestLogWriter(Journal(tmp_path), batch_size=100)  # max_queued: 50,000, never reached here
    await writer.start(pool)
    writer.enqueue(first := make_record())
    await wait_until(lambda: writer.idle, "first record written")

    await getattr(proxy, outage)()  # refused at once, or never answered (the connect timeout is 10 s)
    during = [make_record() for _ in range(300)]
    for record in during:
        writer.enqueue(record)

    def on_disk() -> set:
        files = [*tmp_path.glob("current.jsonl"), *tmp_path.glob("replay-*.jsonl")]
        return {r.id for path in files for batch in Journal.read(path, 1_000) for r in batch}

    await wait_until(lambda: on_disk() >= {r.id for r in during}, "every queued record journaled")
    assert len(during) < writer._max_queued  # the interval did it, not the memory bound

    await proxy.restore()
    await wait_until(lambda: writer.idle, "writer caught up")
    await writer.stop()
    ids = await _ids(db)
    assert sorted(ids) == sorted(r.id for r in [first, *during])


async def test_without_a_journal_an_outage_keeps_records_in_memory_not_lost(proxied, db, tmp_path):
    proxy, pool = proxied
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the journal directory should be")
    writer = RequestLogWriter(Journal(blocked / "journal"))
    await writer.start(pool)
    await proxy.cut()
    records = [make_record() for _ in range(10)]
    for record in records:
        writer.enqueue(record)
    # Three failed attempts span 0.2 + 0.4 s of back-off: past a flush interval, when an outage spills.
    await wait_until(lambda: writer._failures >= 3, "the outage noticed")
    await proxy.restore()
    await wait_until(lambda: writer.idle, "written once the database is back")
    await writer.stop()
    assert sorted(await _ids(db)) == sorted(r.id for r in records)
    assert writer.counters.dropped == 0


async def test_an_unwritable_journal_directory_is_found_at_start_in_one_line(proxied, db, tmp_path, caplog):
    _, pool = proxied
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the data directory should be")
    writer = RequestLogWriter(Journal(blocked / "journal"))
    await writer.start(pool)
    await writer.stop()
    lines = [r.getMessage() for r in caplog.records if "journal directory" in r.getMessage()]
    assert len(lines) == 1 and "GATEWAY_DATA_DIR" in lines[0] and str(blocked / "journal") in lines[0]
    assert writer.journal_error == "not writable"


async def test_records_are_counted_dropped_only_when_the_disk_fails_too(proxied, db, tmp_path):
    proxy, pool = proxied
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the journal directory should be")
    writer = RequestLogWriter(Journal(blocked / "journal"), drain_timeout=0.2)
    await writer.start(pool)
    await proxy.cut()
    for _ in range(10):
        writer.enqueue(make_record())
    await writer.stop()
    assert writer.counters.dropped == 10 and writer.counters.journaled == 0


async def test_records_arriving_during_a_write_wait_for_the_next_interval_in_one_batch(proxied, db, tmp_path):
    proxy, pool = proxied
    batches: list[int] = []

    class CountingWriter(RequestLogWriter):
        async def _commit(self, batch):
            batches.append(len(batch))
            return await super()._commit(batch)

    writer = CountingWriter(Journal(tmp_path), flush_interval=1.0)
    await writer.start(pool)
    proxy.hold()  # the first write stays on its way while the next record arrives
    writer.enqueue(first := make_record())
    await wait_until(lambda: batches, "the first write on its way")
    trickle = [make_record() for _ in range(4)]
    writer.enqueue(trickle[0])
    proxy.release()
    for record in trickle[1:]:  # one at a time, as requests at one connection finish
        await asyncio.sleep(0.01)
        writer.enqueue(record)
    await wait_until(lambda: writer.idle, "every record written")
    await writer.stop()
    # One transaction for the trickle at the next interval, not one per record as each write ends.
    assert batches == [1, 4]
    assert sorted(await _ids(db)) == sorted(r.id for r in [first, *trickle])
    assert writer.counters.journaled == 0


async def test_records_queued_during_a_long_replay_go_to_the_journal_not_only_memory(proxied, db, tmp_path):
    proxy, pool = proxied
    writer = RequestLogWriter(Journal(tmp_path), batch_size=100, flush_interval=0.2)
    await writer.start(pool)
    earlier = [make_record() for _ in range(300)]
    proxy.hold()  # the replay of what an outage left starts, and stays on its way
    await writer._spill.append(earlier)  # as an outage leaves them; the next pass replays them
    await wait_until(lambda: writer._replaying_since is not None, "the replay under way")
    during = [make_record() for _ in range(50)]
    for record in during:
        writer.enqueue(record)
    await wait_until(lambda: writer.counters.journaled >= 350, "records queued during the replay journaled")
    assert writer.queue_depth == 0
    proxy.release()
    await wait_until(lambda: writer.idle, "writer caught up")
    await writer.stop()
    assert sorted(await _ids(db)) == sorted(r.id for r in earlier + during)
    assert writer.counters.landed == 350 and writer.counters.dropped == 0
