"""The sink the timing middleware hands each finished record to: the usage log first, then observers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from proxy.request_log.record import RecordSink, RequestRecord

log = logging.getLogger(__name__)

Observer = Callable[[RequestRecord], None]


class ObservedSink:
    """Enqueues to `sink`, then calls each observer (metrics, access line) synchronously.

    Observers run on the request's path, so they must be cheap and do no I/O beyond a log call.
    One that raises is logged and skipped: an observer never costs a request or its log row.
    """

    __slots__ = ("_sink", "_observers")

    def __init__(self, sink: RecordSink, observers: Iterable[Observer]) -> None:
        self._sink = sink
        self._observers = tuple(observers)

    def enqueue(self, record: RequestRecord) -> None:
        self._sink.enqueue(record)
        for observe in self._observers:
            try:
                observe(record)
            except Exception:
                log.exception("record observer %r failed on request %s", observe, record.id)
