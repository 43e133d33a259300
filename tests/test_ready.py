"""GET /ready: 200 when Ollama and the database (or the journal) can take requests, 503 with reasons."""

from __future__ import annotations


from proxy.typedefs import POOL
from tests.factories import RecordingSink, make_settings, start_gateway
from tests.fake_ollama import create_fake_ollama


async def _ready(http, gateway):
    async with http.get(gateway.u("/ready")) as r:  # no key
        return r.status, await r.json()


async def test_ready_when_everything_is_up(aiohttp_server, database_url, db, http):
    fake = await aiohttp_server(create_fake_ollama())
    gateway = await start_gateway(aiohttp_server, make_settings(database_url, ollama_base_url=fake.make_url("")))
    assert await _ready(http, gateway) == (200, {"status": "ready", "checks": {"database": "ok", "ollama": "ok"}})
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
