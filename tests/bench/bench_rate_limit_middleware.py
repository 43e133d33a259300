"""µs the rate-limit middleware adds per request; run: PYTHONPATH=. python tests/bench/bench_rate_limit_middleware.py

Part 1 calls the middleware closure (and the on_response_prepare hook that adds its headers) directly
on a prepared request, against a do-nothing middleware on the same request: the difference is what
the middleware adds, free of socket and HTTP noise.
Part 2 (only with BENCH_DATABASE_URL or TEST_DATABASE_URL) serves the real app from create_app on a
real socket and drives it with a local keep-alive load loop, with and without the middleware in the
chain (and with a do-nothing middleware in its place, to show aiohttp's own cost of one more chain
link), rounds alternating; GET /api/keys/not-a-uuid needs a key and answers 404 with no database
query, so the difference is the middleware, its two response headers, and noise.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
import platform
import statistics
import time
import uuid

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.errors import GatewayError
from proxy.keys.format import API_KEY, KeyRecord
from proxy.limits import KeyLimiter
from proxy.middlewares.rate_limit import add_rate_limit_headers, rate_limit_middleware
from proxy.passthrough.handler import FORWARDED, Forwarded
from proxy.passthrough.relay import Relayed

ITERATIONS = 100_000
ROUNDS = 7
NOW = datetime.datetime.now(datetime.UTC)

CASES = {
    # 10M/hour is the API's maximum rate; with the clock stepping 1 ms per call the bucket never
    # empties, so every call takes the admitted path, which builds the most headers.
    "rate only (burst default)": dict(rate_limit=10_000_000),
    "rate + concurrency + tokens": dict(rate_limit=10_000_000, burst=1000, max_concurrent=4, tokens_per_day=10**15),
}


def key_record(**limits) -> KeyRecord:
    return KeyRecord(
        id=uuid.uuid4(),
        prefix="olg_bench",
        name="bench",
        role="user",
        models=None,
        is_active=True,
        expires_at=None,
        created_at=NOW,
        last_used_at=None,
        **limits,
    )


def prepared_request(key: KeyRecord, tokens: int | None) -> web.Request:
    request = make_mocked_request("POST", "/api/chat")
    request[API_KEY] = key
    request[FORWARDED] = Forwarded("llama3.2", 96, Relayed(prompt_tokens=tokens, completion_tokens=tokens))
    return request


async def per_call(middleware, request: web.Request, with_hook: bool) -> float:
    response = web.Response(body=b"{}")

    async def handler(_: web.Request) -> web.StreamResponse:
        return response

    start = time.perf_counter_ns()
    for _ in range(ITERATIONS):
        result = await middleware(request, handler)
        if with_hook:
            await add_rate_limit_headers(request, result)
    return (time.perf_counter_ns() - start) / ITERATIONS / 1000


async def per_rejection(middleware, request: web.Request) -> float:
    async def handler(_: web.Request) -> web.StreamResponse:
        raise AssertionError("a rejected request reached the handler")

    start = time.perf_counter_ns()
    for _ in range(ITERATIONS):
        try:
            await middleware(request, handler)
        except GatewayError:
            pass
    return (time.perf_counter_ns() - start) / ITERATIONS / 1000


@web.middleware
async def nothing(request: web.Request, handler):
    return await handler(request)


def self_timed(middleware, spent: list[int]):
    """The middleware's own time per request inside the running app: its total less its handler's."""

    @web.middleware
    async def timed(request: web.Request, handler):
        inner = 0

        async def timed_handler(request: web.Request):
            nonlocal inner
            started = time.perf_counter_ns()
            try:
                return await handler(request)
            finally:
                inner += time.perf_counter_ns() - started

        started = time.perf_counter_ns()
        try:
            return await middleware(request, timed_handler)
        finally:
            spent.append(time.perf_counter_ns() - started - inner)

    return timed


def ticking_clock():
    ticks = itertools.count(time.time(), 0.001)
    return lambda: next(ticks)


async def direct() -> None:
    print(f"part 1: direct calls, {ITERATIONS} per round, best / median of {ROUNDS} rounds, µs per request")
    base = [await per_call(nothing, prepared_request(key_record(rate_limit=1), 8), False) for _ in range(ROUNDS)]
    print(f"  {'do-nothing middleware (baseline)':<44} {min(base):6.2f} / {statistics.median(base):6.2f}")
    for name, limits in CASES.items():
        for tokens in (None, 8):
            middleware = rate_limit_middleware(limiter=KeyLimiter(), clock=ticking_clock())
            request = prepared_request(key_record(**limits), tokens)
            samples = [await per_call(middleware, request, True) for _ in range(ROUNDS)]
            label = f"{name}{', charged' if tokens else ''}"
            added = min(samples) - min(base), statistics.median(samples) - statistics.median(base)
            print(
                f"  {label:<44} {min(samples):6.2f} / {statistics.median(samples):6.2f}"
                f"   added: {added[0]:5.2f} / {added[1]:5.2f}"
            )
    limiter = KeyLimiter()
    key = key_record(rate_limit=10_000_000, tokens_per_day=1)
    limiter.charge(key.id, 1, time.time())
    middleware = rate_limit_middleware(limiter=limiter, clock=ticking_clock())
    samples = [await per_rejection(middleware, prepared_request(key, None)) for _ in range(ROUNDS)]
    print(f"  {'rejected (429 raised, caught)':<44} {min(samples):6.2f} / {statistics.median(samples):6.2f}")


async def end_to_end(database_url: str) -> None:
    import aiohttp

    from proxy.app import create_app
    from tests.support.database import create_database, drop_database
    from tests.support.factories import ADMIN_KEY, bearer, make_settings

    requests_per_round, concurrency, rounds = 4000, 16, 10
    server_dsn = database_url
    dsn = await asyncio.to_thread(create_database, server_dsn)
    runners, urls = [], {}
    try:
        spent: list[int] = []
        for label in ("with", "without", "nothing in place of", "self-timed"):
            app = create_app(make_settings(dsn, default_rate_limit=10_000_000))
            at = [m.__name__ for m in app.middlewares].index("rate_limit")
            stand_in = {
                "with": [app.middlewares[at]],
                "without": [],
                "nothing in place of": [nothing],
                "self-timed": [self_timed(app.middlewares[at], spent)],
            }[label]
            app.middlewares[at : at + 1] = stand_in
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            port = runner.addresses[0][1]
            urls[label] = f"http://127.0.0.1:{port}/api/keys/not-a-uuid"

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

            async def one(url: str) -> None:
                async with http.get(url, headers=bearer(ADMIN_KEY)) as r:
                    assert r.status == 404, r.status
                    await r.read()

            async def load(url: str) -> float:
                left = iter(range(requests_per_round))

                async def worker() -> None:
                    for _ in left:
                        await one(url)

                start = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                return (time.perf_counter() - start) / requests_per_round * 1e6

            for url in urls.values():
                await load(url)  # warm up: connections, key cache
            spent.clear()
            samples = {label: [] for label in urls}
            for _ in range(rounds):
                for label, url in urls.items():
                    samples[label].append(await load(url))
        print(
            f"part 2: real app on a socket, {requests_per_round} requests x {rounds} alternating rounds, "
            f"{concurrency} keep-alive connections, client in the same process; best / median µs per request"
        )
        for label in ("with", "without", "nothing in place of"):
            values = samples[label]
            print(f"  {label + ' the middleware':<44} {min(values):6.1f} / {statistics.median(values):6.1f}")
        for base in ("without", "nothing in place of"):
            best = min(samples["with"]) - min(samples[base])
            median = statistics.median(samples["with"]) - statistics.median(samples[base])
            print(f"  {'added vs ' + base:<44} {best:6.1f} / {median:6.1f}")
        spent.sort()
        print(
            f"  in situ self time of the middleware (median / p90 of {len(spent)} requests, µs): "
            f"{spent[len(spent) // 2] / 1000:.1f} / {spent[len(spent) * 9 // 10] / 1000:.1f}"
        )
    finally:
        for runner in runners:
            await runner.cleanup()
        await asyncio.to_thread(drop_database, server_dsn, dsn)


def main() -> None:
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python {platform.python_version()}, "
        f"{platform.machine()} x{os.cpu_count()} ({platform.processor() or platform.platform()})"
    )
    asyncio.run(direct())
    database_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if database_url:
        asyncio.run(end_to_end(database_url))
    else:
        print(
            "part 2 skipped: set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a server where it may create a database"
        )


if __name__ == "__main__":
    main()
