"""µs per request for each piece of work the gateway adds to a bare proxy, measured in isolation.

    python -m tests.bench.components

The pieces are the real objects (key cache, limiter, usage tap, metrics, access line into a pipe,
usage-log row); what they do not show is aiohttp's own cost of each middleware and hook around them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import timeit
import uuid
from datetime import UTC, datetime

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.keys.cache import KeyCache
from proxy.keys.format import API_KEY, KeyRecord
from proxy.keys.store import KeyStore
from proxy.limits import KeyLimiter
from proxy.middlewares.request_id import request_id_from
from proxy.middlewares.timing import _record as assemble_record
from proxy.observability.access_log import log_access
from proxy.observability.logging_setup import setup_logging
from proxy.observability.metrics import GatewayMetrics
from proxy.passthrough.body import parse_json_object
from proxy.passthrough.handler import FORWARDED, Forwarded
from proxy.passthrough.relay import Relayed
from proxy.passthrough.server_timing import upstream_timing
from proxy.passthrough.upstream import downstream_response_headers, upstream_request_headers
from proxy.passthrough.usage_tap import UsageTap
from proxy.request_log.batch import to_row
from proxy.request_log.record import REQUEST_START, RequestRecord, RequestStart
from tests.bench.canned import SCENARIOS, capture_replies

NUMBER = 20_000
KEY = "bench-user-key-0123456789abcdefghij"


def _record() -> RequestRecord:
    return RequestRecord(
        id=uuid.uuid4(),
        created_at=datetime.now(UTC),
        endpoint="/api/chat",
        method="POST",
        client_ip="127.0.0.1",
        bytes_in=96,
        api_key_id=uuid.uuid4(),
        model="llama3.2",
        status_code=200,
        prompt_tokens=26,
        completion_tokens=9,
        response_time=0.61,
        ttfb=0.2,
        bytes_out=1500,
    )


def _time(call, number: int = NUMBER) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def _stderr_to_pipe() -> None:
    """The access line goes where `serve` sends it: stderr, here a pipe read by another thread."""
    read, write = os.pipe()
    threading.Thread(target=lambda: [None for _ in iter(lambda: os.read(read, 1 << 20), b"")], daemon=True).start()
    sys.stderr = os.fdopen(write, "w")


async def measure() -> dict[str, float]:
    replies = await capture_replies()
    record = _record()
    results: dict[str, float] = {}
    results["request id + start"] = _time(
        lambda: RequestStart(request_id_from(None), datetime.now(UTC), time.perf_counter())
    )
    start = RequestStart(record.id, record.created_at, time.perf_counter())
    results["X-Request-ID header value"] = _time(lambda: str(start.id))

    store = KeyStore(None, "s" * 40)  # type: ignore[arg-type]  # digest only: a cached key never queries
    cache = KeyCache(store, ttl=3600, operator_keys=[KEY])
    now = datetime.now(UTC)
    key = KeyRecord(
        id=uuid.uuid4(),
        prefix="bench",
        name="bench",
        role="user",
        models=None,
        is_active=True,
        expires_at=None,
        created_at=now,
        last_used_at=None,
        rate_limit=10_000_000,
        burst=10_000_000,
    )
    cache._store_entry(store.digest(KEY), key)  # a warm cache, as after the first request
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(NUMBER):
        await cache.lookup(KEY)
    results["key lookup (HMAC digest, cache hit)"] = (loop.time() - started) / NUMBER * 1e6

    limiter = KeyLimiter()

    def admit() -> None:
        limiter.admit(
            key.id,
            rate_per_hour=key.rate_limit,
            burst=key.burst,
            max_concurrent=None,
            tokens_per_day=None,
            now=time.time(),
        )
        limiter.release(key.id)

    results["rate limit admit + release"] = _time(admit)
    request = make_mocked_request("POST", "/api/chat", headers={"Content-Length": "96"})
    request[REQUEST_START] = start
    request[API_KEY] = key
    request[FORWARDED] = Forwarded(
        "llama3.2", 96, Relayed(ttfb=0.2, bytes_out=1500, prompt_tokens=26, completion_tokens=9, model="llama3.2")
    )
    results["usage record assembled from the request"] = _time(
        lambda: assemble_record(request, start, "127.0.0.1", 200, False)
    )
    results["usage record made storable"] = _time(record.make_storable)
    body = SCENARIOS[1].body
    results["JSON body parse (model check)"] = _time(lambda: parse_json_object(body))
    request_headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "Host": "127.0.0.1:8000",
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                "Authorization": "Bearer x",
                "User-Agent": "ollama-python/0.6",
            }
        )
    )
    response_headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "Content-Type": "application/x-ndjson",
                "Date": "now",
                "Content-Length": "1500",
                "Connection": "keep-alive",
            }
        )
    )
    results["hop-by-hop header filtering (both ways)"] = _time(
        lambda: (
            upstream_request_headers(request_headers, drop_length=True),
            downstream_response_headers(response_headers),
        )
    )
    for scenario in (SCENARIOS[1], SCENARIOS[3]):
        reply = replies[scenario]

        def tap(reply=reply) -> None:
            usage = UsageTap(reply.content_type, request_bytes=len(body))
            usage.feed(reply.body)
            usage.finish()

        results[f"usage tap, whole {scenario.name} answer"] = _time(tap)
    results["Server-Timing value"] = _time(lambda: upstream_timing(start, time.perf_counter()).header())
    metrics = GatewayMetrics()
    results["metrics (observe one record)"] = _time(lambda: metrics.observe(record))
    _stderr_to_pipe()
    setup_logging("INFO", "text")
    results["access line (text, one write per line)"] = _time(lambda: log_access(record))
    setup_logging("WARNING", "text")
    results["usage-log row (enqueue + COPY row)"] = _time(lambda: to_row(record))
    return results


if __name__ == "__main__":
    outcome = asyncio.run(measure())
    total = sum(outcome.values())
    width = max(map(len, outcome))
    for name, us in outcome.items():
        print(f"{name:<{width}}  {us:6.2f} µs", file=sys.__stdout__)
    print(f"{'total':<{width}}  {total:6.2f} µs", file=sys.__stdout__)
    logging.shutdown()
