"""Requests, errors, tokens and response times summed: per rollup row as records arrive, per answer as rows are read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.request_log import latency_histogram
from proxy.request_log.latency_histogram import empty as empty_histogram
from proxy.request_log.record import RequestRecord

Buckets = tuple[int, int | None, int | None]  # of the response time, time to first byte and wait, if any


def buckets_of(record: RequestRecord) -> Buckets:
    """The record's histogram buckets, worked out once for each rollup row it counts in (a bisect each)."""
    ttfb, queued = record.ttfb, record.queue_ms
    return (
        latency_histogram.bucket_of(record.response_time or 0.0),
        None if ttfb is None else latency_histogram.bucket_of(ttfb),  # None: no first byte
        None if queued is None else latency_histogram.bucket_of(queued),  # None: it never waited
    )


@dataclass(slots=True)
class UsageTotals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    response_time_sum: float = 0.0
    latency_histogram: list[int] = field(default_factory=empty_histogram)
    # Time to first byte, only of the requests that had one (a refused request never reached Ollama).
    ttfb_histogram: list[int] = field(default_factory=empty_histogram)
    queue_histogram: list[int] = field(default_factory=empty_histogram)  # of the requests that waited

    def add(self, record: RequestRecord, buckets: Buckets) -> None:
        """One request, as the log writer folds it into its rollup rows; `buckets` = buckets_of(record)."""
        self.requests += 1
        if is_error(record):
            self.errors += 1
        self.prompt_tokens += record.prompt_tokens or 0
        self.completion_tokens += record.completion_tokens or 0
        self.response_time_sum += record.response_time or 0.0
        latency, ttfb, queued = buckets
        self.latency_histogram[latency] += 1
        if ttfb is not None:
            self.ttfb_histogram[ttfb] += 1
        if queued is not None:
            self.queue_histogram[queued] += 1

    def plus(self, other: UsageTotals) -> UsageTotals:
        """A new sum of both; neither changes."""
        return UsageTotals(
            self.requests + other.requests,
            self.errors + other.errors,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.response_time_sum + other.response_time_sum,
            latency_histogram.add_into(list(self.latency_histogram), other.latency_histogram),
            latency_histogram.add_into(list(self.ttfb_histogram), other.ttfb_histogram),
            latency_histogram.add_into(list(self.queue_histogram), other.queue_histogram),
        )

    def add_row(self, row: Mapping[str, Any]) -> None:
        """Rollup rows summed by the statistics query (its `histogram` column is the histograms' sum)."""
        self.requests += row["requests"]
        self.errors += row["errors"]
        self.prompt_tokens += row["prompt_tokens"]
        self.completion_tokens += row["completion_tokens"]
        self.response_time_sum += row["response_time_sum"]
        latency_histogram.add_into(self.latency_histogram, row["histogram"])
        # Not every reader sums the waits (the console's series leaves them out).
        latency_histogram.add_into(self.queue_histogram, row.get("queue_histogram") or ())

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "errors": self.errors,
            "avg_response_time_ms": _ms(self.response_time_sum / self.requests if self.requests else None),
            "p50_response_time_ms": _ms(latency_histogram.percentile(self.latency_histogram, 0.50)),
            "p95_response_time_ms": _ms(latency_histogram.percentile(self.latency_histogram, 0.95)),
            # Of the requests that waited for a node slot (the fair queue): how many, and how long.
            "queued": sum(self.queue_histogram),
            "p50_queue_ms": _ms(latency_histogram.percentile(self.queue_histogram, 0.50)),
            "p95_queue_ms": _ms(latency_histogram.percentile(self.queue_histogram, 0.95)),
        }


def is_error(record: RequestRecord) -> bool:
    # A stream that failed after its 200 status line is an error too (the record notes it).
    return record.status_code >= 400 or record.error is not None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
