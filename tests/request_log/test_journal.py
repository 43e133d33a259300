"""The on-disk journal: appends survive, claims never lose a concurrent append, torn lines cost one record."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime, timedelta, timezone

from proxy.request_log.journal import Journal, from_json, to_json
from tests.support.records import make_record


def _read_all(journal: Journal, paths) -> list:
    return [r for path in paths for batch in Journal.read(path, 7) for r in batch]


def test_records_round_trip_through_json():
    record = make_record(
        api_key_id=uuid.uuid4(),
        endpoint="/api/\u00e9\U0001f999",
        error="boom",
        usage_estimated=True,
        created_at=datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
    )
    assert from_json(to_json(record)) == record


def test_records_read_back_are_made_storable():
    # Written by an older version, or by hand: read back as the timing middleware would have made them.
    record = make_record(endpoint="/api/\udcff\x00", model="m" * 3_000, error="\ud800")
    back = from_json(to_json(record))
    assert (back.endpoint, back.model, back.error) == ("/api/\ufffd\ufffd", "m" * 512, "\ufffd")


def test_append_claim_read_and_batches(tmp_path):
    journal = Journal(tmp_path / "j")
    assert not journal.pending() and journal.claim() == []
    records = [make_record() for _ in range(20)]
    journal.append(records[:5])
    journal.append(records[5:])
    assert journal.pending()
    assert oct(journal.directory.stat().st_mode & 0o777) == "0o700"
    assert oct(journal.current.stat().st_mode & 0o777) == "0o600"
    paths = journal.claim()
    assert len(paths) == 1 and not journal.current.exists()
    assert [len(b) for b in Journal.read(paths[0], 7)] == [7, 7, 6]
    assert _read_all(journal, paths) == records
    # A second claim (another run, after a failed replay) takes the same file again.
    journal.append(records[:1])
    assert len(journal.claim()) == 2


def test_a_torn_last_line_loses_only_itself(tmp_path):
    journal = Journal(tmp_path)
    first, second = make_record(), make_record()
    journal.append([first])
    with open(journal.current, "ab") as f:
        f.write(b'{"id": "half a rec')  # SIGKILL in the middle of an append
    journal.append([second])
    assert _read_all(journal, journal.claim()) == [first, second]


def test_appends_racing_a_claim_all_land_in_some_file(tmp_path):
    journal = Journal(tmp_path)
    written = []
    stop = threading.Event()

    def appender():
        while not stop.is_set():
            batch = [make_record() for _ in range(3)]
            journal.append(batch)
            written.extend(batch)

    threads = [threading.Thread(target=appender) for _ in range(3)]
    for t in threads:
        t.start()
    claimed = []
    for _ in range(30):
        claimed.extend(journal.claim())
    stop.set()
    for t in threads:
        t.join()
    paths = set(journal.claim()) | {p for p in claimed if p.exists()}
    assert {r.id for r in _read_all(journal, sorted(paths))} == {r.id for r in written}
    assert len(written) > 0


def test_rejected_records_are_kept_apart(tmp_path):
    journal = Journal(tmp_path)
    journal.reject([make_record()])
    assert journal.rejected.exists() and not journal.pending()
    assert os.path.getsize(journal.rejected) > 0
