"""schemathesis against a live gateway: no 5xx, and every answer as the OpenAPI document says.

The gateway and a fake Ollama run on real ports in a thread of their own (schemathesis's pytest
integration is synchronous). Bounded: a few examples per operation, well under a minute in all.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from aiohttp import web

from proxy.app import create_app
from proxy.cli.server import RUNNER_OPTIONS
from proxy.keys.store import KEY_STORE
from proxy.routes.openapi import build_document
from tests.support.factories import make_settings
from tests.support.fake_ollama import create_fake_ollama
from tests.support.ports import free_port

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"))
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]


class BackgroundGateway:
    """The real app from the real factory, served as `serve` does, on its own event loop."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gateway", daemon=True)
        self._runners: list[web.AppRunner] = []
        self.url = self.key = ""

    def __enter__(self) -> BackgroundGateway:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=60)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, app: web.Application, **options: object) -> str:
        runner = web.AppRunner(app, **options)
        await runner.setup()
        self._runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    async def _start(self) -> None:
        ollama = await self._serve(create_fake_ollama())
        app = create_app(make_settings(self._database_url, ollama_base_url=ollama))
        self.url = await self._serve(app, **RUNNER_OPTIONS)
        # Its own admin key, with limits no run reaches: the demo key may be left from another test.
        new = await app[KEY_STORE].create(name="schemathesis", role="admin", rate_limit=10_000_000, burst=10_000_000)
        self.key = new.key

    async def _stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()


@pytest.fixture(scope="module")
def live_gateway(database_url: str) -> Iterator[BackgroundGateway]:
    with BackgroundGateway(database_url) as gateway:
        yield gateway


schema = schemathesis.openapi.from_dict(build_document())
# Deterministic (the same cases every run, so CI does not flake) and no example database on disk.
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
schema.config.checks.update(included_check_names=CHECKS)


@schema.parametrize()
def test_api_conforms_to_its_document(case, live_gateway):
    case.call_and_validate(base_url=live_gateway.url, headers={"Authorization": f"Bearer {live_gateway.key}"})


# Successful answers of every shape, whatever the generated cases happened to reach.
TYPICAL = [
    ("/api/keys", "POST", {"body": {"name": "typical", "models": ["llama3.2"], "tokens_per_day": 1000}}),
    ("/api/keys", "GET", {}),
    ("/api/stats", "GET", {"query": {"since": "2025-01-01"}}),
    ("/api/logs", "GET", {"query": {"limit": "1"}}),
    ("/api/logs", "GET", {"query": {"model": "llama3.2", "status": "200"}}),
    ("/api/models", "GET", {}),
    ("/api/auth/token", "POST", {}),
    ("/ready", "GET", {}),
    ("/metrics", "GET", {}),
]


@pytest.mark.parametrize("path, method, parts", TYPICAL, ids=[f"{m} {p}" for p, m, _ in TYPICAL])
def test_typical_successes_match_the_document(live_gateway, path, method, parts):
    case = schema[path][method].Case(**parts)
    response = case.call_and_validate(
        base_url=live_gateway.url, headers={"Authorization": f"Bearer {live_gateway.key}"}
    )
    assert response.status_code in (200, 201), response.text
