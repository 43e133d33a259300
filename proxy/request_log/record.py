"""A request's start, and its usage record: assembled once when the request has ended, then handed to a sink."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from aiohttp import web

from proxy.values.text import MAX_CLIENT_IP, MAX_ENDPOINT, MAX_ERROR, MAX_METHOD, MAX_MODEL, safe_optional, safe_text

CLIENT_CLOSED = 499  # nginx's code for "the client closed the request before the answer"


@dataclass(slots=True)  # not frozen: that costs ~0.4 µs per request, and only the timing middleware makes one
class RequestStart:
    """Set by the timing middleware on arrival, never changed: the request's id (X-Request-ID, log lines, the
    record's key) and when it came."""

    id: UUID
    arrived_at: datetime  # wall clock, the record's created_at
    clock: float  # time.perf_counter() on arrival, for durations


REQUEST_START = web.RequestKey("request_start", RequestStart)


def request_id(request: web.Request) -> UUID | str:
    """For log lines: the request's id, or "?" before the timing middleware gave it one."""
    start = request.get(REQUEST_START)
    return start.id if start is not None else "?"


@dataclass(slots=True)
class RequestRecord:
    """Columns of request_log; never prompt or response content."""

    id: UUID
    created_at: datetime
    endpoint: str
    method: str
    client_ip: str | None
    bytes_in: int = 0
    api_key_id: UUID | None = None
    model: str | None = None
    status_code: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_estimated: bool = False
    response_time: float | None = None  # ms
    ttfb: float | None = None  # ms, first upstream byte
    bytes_out: int = 0
    error: str | None = None
    limit: str | None = None  # which per-key limit refused it: rate, concurrency or tokens
    node: str | None = None  # the Ollama node that served it
    queue_ms: float | None = None  # how long it waited for a node slot; None = it never waited

    @property
    def tokens_used(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def make_storable(self) -> None:
        """Every text field safe for its column, the rollup index, metric labels and log lines.

        Done once, where the record is handed on, so the row and everything observing the record
        see the same value; a served request must never lose its row to a value it sent.
        """
        self.endpoint = safe_text(self.endpoint, MAX_ENDPOINT)
        self.method = safe_text(self.method, MAX_METHOD)
        self.model = safe_optional(self.model, MAX_MODEL)
        self.error = safe_optional(self.error, MAX_ERROR)
        self.client_ip = safe_optional(self.client_ip, MAX_CLIENT_IP)
        self.node = safe_optional(self.node, MAX_MODEL)


class RecordSink(Protocol):
    def enqueue(self, record: RequestRecord) -> None:
        """Take a finished record without blocking the request."""


RECORD_SINK = web.AppKey("record_sink", RecordSink)
