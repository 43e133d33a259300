"""GET /ready: 200 when Ollama and the database (or the journal) can take requests, 503 with reasons."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from proxy.db.errors import DatabaseUnavailable
from proxy.ledger.context import LIMITER
from proxy.request_log.context import JOURNAL_DIR
from proxy.routes.ready import SharedCheck
from proxy.state import POOL
from tests.support.factories import ADMIN_KEY, USER_KEY, RecordingSink, bearer, make_settings, start_gateway
from tests.support.fake_clock import FakeClock
from tests.support.fake_ollama import FAKE_STATE, create_fake_ollama


async def _ready(http, gateway):
    async with http.get(gateway.u("/ready")) as r:  # no key
        return r.status, await r.json()


async def test_ready_when_everything_is_up(aiohttp_server, database_url, db, http):
    fake = await aiohttp_server(create_fake_ollama())
    gateway = await start_gateway(aiohttp_server, make_settings(database_url, ollama_base_url=fake.make_url("")))
    assert await _ready(http, gateway) == (
        200,
        {"status": "ready", "checks": {"database": "ok", "ollama": "ok", "limits": "shared"}},
    )
    async with http.get(gateway.u("/health")) as r:
        assert r.status == 200


async def test_not_ready_while_ollama_is_down(aiohttp_server, database_url, db, http):
    gateway = await start_gateway(aiohttp_server, make_settings(database_url))  # nothing on the discard port
    status, body = await _ready(http, gateway)
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["ollama"].startswith("unreachable")
    async with http.get(gateway.u("/health")) as r:
        assert r.status == 200  # liveness is not readiness


async def test_the_journal_stands_in_for_a_lost_database(aiohttp_server, database_url, db, http, tmp_path):
    fake = await aiohttp_server(create_fake_ollama())
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    for data_dir, expected in ((tmp_path / "data", 200), (blocked, 503)):
        settings = make_settings(database_url, ollama_base_url=fake.make_url(""), data_dir=data_dir)
        gateway = await start_gateway(aiohttp_server, settings, sink=RecordingSink())
        await gateway.app[POOL].close()  # the database is gone for this gateway
        status, body = await _ready(http, gateway)
        assert status == expected, body
        assert body["checks"]["database"].startswith("unreachable")
        assert (body["checks"]["journal"] == "ok") == (expected == 200)
        assert str(tmp_path) not in json.dumps(body)  # no key needed: no filesystem layout either


@pytest.mark.parametrize("blocker", ["a file", "a read-only directory", "a read-only file system"])
async def test_an_unwritable_journal_is_not_ready_from_the_start(
    aiohttp_server, database_url, db, http, tmp_path, caplog, blocker
):
    fake = await aiohttp_server(create_fake_ollama())
    data_dir = tmp_path / "data"
    if blocker == "a file":
        data_dir.write_text("not a directory")
    elif blocker == "a read-only file system":
        data_dir = Path("/proc/self/gateway-data")  # no one, not even root, makes directories there
    else:
        (data_dir / JOURNAL_DIR).mkdir(parents=True)
        (data_dir / JOURNAL_DIR).chmod(0o500)
        if os.access(data_dir / JOURNAL_DIR, os.W_OK):
            pytest.skip("running as a user whom permissions do not stop")
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), data_dir=data_dir)
    gateway = await start_gateway(aiohttp_server, settings)  # the real writer: the database is up
    status, body = await _ready(http, gateway)
    assert status == 503 and body["checks"]["database"] == "ok"
    assert body["checks"]["journal"] == "not writable (GATEWAY_DATA_DIR)"
    assert str(tmp_path) not in json.dumps(body)
    async with http.get(gateway.u("/api/tags"), headers=bearer(USER_KEY)) as r:
        assert r.status == 200  # it still serves
    lines = [r.getMessage() for r in caplog.records if "journal directory" in r.getMessage()]
    assert len(lines) == 1 and "GATEWAY_DATA_DIR" in lines[0]


async def test_callers_share_one_check_for_a_second(aiohttp_server, database_url, db, http):
    fake = await aiohttp_server(create_fake_ollama())
    gateway = await start_gateway(aiohttp_server, make_settings(database_url, ollama_base_url=fake.make_url("")))

    def version_calls() -> int:
        return sum(r.path == "/api/version" for r in fake.app[FAKE_STATE].requests)

    answers = await asyncio.gather(*(_ready(http, gateway) for _ in range(20)))
    assert {status for status, _ in answers} == {200}
    assert version_calls() == 1  # not one database query and one Ollama request per caller
    # When a shared answer goes stale is SharedCheck's, on a fake clock below.


async def test_shared_check_reuses_an_answer_until_it_is_stale():
    clock, runs, started, release = FakeClock(0.0), [], asyncio.Event(), asyncio.Event()

    async def check():
        runs.append(clock())
        started.set()
        await release.wait()
        return 200, {"run": len(runs)}

    shared = SharedCheck(check, ttl=1.0, clock=clock)
    waiting = [asyncio.ensure_future(shared.answer()) for _ in range(3)]
    await started.wait()  # the run is a task scheduled after the callers: all of them wait on it now
    waiting[0].cancel()  # a caller that leaves does not cancel the run the others share
    release.set()
    assert [await w for w in waiting[1:]] == [(200, {"run": 1})] * 2
    clock.advance(0.9)
    assert await shared.answer() == (200, {"run": 1})
    clock.advance(0.2)
    assert await shared.answer() == (200, {"run": 2})
    assert len(runs) == 2


async def test_a_check_that_fails_is_not_reused():
    calls = []

    async def check():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return 200, {}

    shared = SharedCheck(check, ttl=60.0, clock=FakeClock(0.0))
    with pytest.raises(RuntimeError):
        await shared.answer()
    assert await shared.answer() == (200, {})


@pytest.mark.parametrize(
    ("rule", "status", "limits"),
    [("local", 200, "this process's share, 1/1 (ledger away)"), ("closed", 503, "closed (ledger away)")],
)
async def test_limits_while_the_ledger_is_away(
    aiohttp_server, database_url, db, http, monkeypatch, rule, status, limits
):
    fake = await aiohttp_server(create_fake_ollama())
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), limits_when_db_down=rule)
    gateway = await start_gateway(aiohttp_server, settings)
    limiter = gateway.app[LIMITER]

    # No heartbeat brings it back during the test, not even one under way now.
    monkeypatch.setattr(limiter, "ledger_back", lambda processes, index: None)
    limiter.ledger_lost(DatabaseUnavailable("the ledger is away"))
    got, body = await _ready(http, gateway)
    assert (got, body["checks"]["limits"]) == (status, limits)
    async with http.get(gateway.u("/metrics"), headers=bearer(ADMIN_KEY)) as r:
        text = await r.text()
    assert f'ollama_gateway_limits_mode{{mode="{rule}"}} 1.0' in text
    assert 'ollama_gateway_limits_mode{mode="ledger"} 0.0' in text
