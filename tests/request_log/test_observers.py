"""The record sink with observers: the usage log always gets the record, whatever an observer does."""

from __future__ import annotations

from proxy.request_log.observers import ObservedSink
from tests.support.factories import RecordingSink
from tests.support.records import make_record


def test_a_failing_observer_costs_neither_the_request_nor_its_log_row(caplog):
    sink, seen = RecordingSink(), []

    def broken(record):
        raise RuntimeError("bug")

    observed = ObservedSink(sink, [broken, seen.append])
    record = make_record()
    observed.enqueue(record)
    assert sink.records == [record] and seen == [record]
    assert "record observer" in caplog.text
