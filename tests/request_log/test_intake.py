"""Whatever text a client sends, its served request gets its row, and its batch and /metrics go on."""

from __future__ import annotations

import json
import random
import string
import uuid

import pytest

from proxy.request_log.context import JOURNAL_DIR
from proxy.request_log.journal import Journal
from proxy.request_log.writer import RequestLogWriter
from proxy.values.text import safe_text
from tests.support.factories import ADMIN_KEY, USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_ollama import create_fake_ollama
from tests.support.records import wait_until

# Incompressible, as real names are: PostgreSQL compresses an index entry before it checks its size.
LONG = "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=10_000))
MODELS = {
    "3,000 chars": LONG[:3_000],
    "10,000 chars": LONG,
    "lone high surrogate": "llama\ud800",
    "lone low surrogate": "llama\udcff:latest",
    "NUL": "llama\x003.2",
    "beyond the BMP": "llama-\U0001f999\U0001f9ea" * 200,
}
PATHS = {
    "5,000 chars": "/api/" + LONG[:5_000],
    "NUL": "/api/%00x",
    "undecodable bytes": "/api/%ff%fe%ed%a0%80",
}
NORMAL = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}], "stream": False}


async def _gateway(aiohttp_server, database_url, tmp_path, models: list[str], batch_size: int):
    # Ollama (Go) reads a lone surrogate as U+FFFD: it knows the model by that name.
    known = [name for model in models for name in (model, safe_text(model, len(model)))]
    fake = await aiohttp_server(create_fake_ollama(models=["llama3.2:latest", *known]))
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), data_dir=tmp_path)
    # One batch of exactly the requests sent, whenever they finish: no flush on a timer.
    writer = RequestLogWriter(Journal(tmp_path / JOURNAL_DIR), batch_size=batch_size, flush_interval=3600)
    return await start_gateway(aiohttp_server, settings, sink=writer), writer


async def _chat(http, gateway, model: str) -> tuple[int, uuid.UUID]:
    # json.dumps escapes a lone surrogate or a NUL as \ud800 or \u0000, as any client's JSON may.
    body = json.dumps({**NORMAL, "model": model})
    async with http.post(
        gateway.u("/api/chat"), data=body, headers={**bearer(USER_KEY), "Content-Type": "application/json"}
    ) as r:
        await r.read()
        return r.status, uuid.UUID(r.headers["X-Request-ID"])


async def _metrics_answer(http, gateway) -> str:
    async with http.get(gateway.u("/metrics"), headers=bearer(ADMIN_KEY)) as r:
        assert r.status == 200
        return await r.text()


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
async def test_any_model_name_gets_its_row_with_its_batch(aiohttp_server, database_url, db, http, tmp_path, model):
    gateway, writer = await _gateway(aiohttp_server, database_url, tmp_path, [model], batch_size=3)
    served = await _chat(http, gateway, model)  # Ollama knows it: a label in /metrics too
    missing = await _chat(http, gateway, model + "-missing")  # 404, its error text holds the name
    normal = await _chat(http, gateway, "llama3.2")
    assert [served[0], missing[0], normal[0]] == [200, 404, 200]
    await wait_until(lambda: writer.idle and writer.counters.written == 3, "the batch written")

    rows = {row["id"]: row for row in await db.fetch("SELECT id, model, error FROM request_log")}
    assert rows.keys() == {served[1], missing[1], normal[1]}
    assert rows[served[1]]["model"] == safe_text(model, 512)
    assert rows[missing[1]]["model"] == safe_text(model + "-missing", 512)
    assert len(rows[missing[1]]["error"]) <= 2000 and "\x00" not in rows[missing[1]]["error"]
    assert rows[normal[1]]["model"] == "llama3.2"
    assert await db.fetchval("SELECT sum(requests) FROM usage_daily") == 3
    assert writer.counters.rejected == writer.counters.dropped == 0
    assert safe_text(model, 512).encode() in (await _metrics_answer(http, gateway)).encode()
    await _metrics_answer(http, gateway)  # and again: no later scrape fails either


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
async def test_any_path_gets_its_row_with_its_batch(aiohttp_server, database_url, db, http, tmp_path, path):
    gateway, writer = await _gateway(aiohttp_server, database_url, tmp_path, [], batch_size=2)
    async with http.get(gateway.u("/").rstrip("/") + path, headers=bearer(USER_KEY)) as r:
        await r.read()
        assert r.status < 500
        odd = uuid.UUID(r.headers["X-Request-ID"])
    normal = await _chat(http, gateway, "llama3.2")
    await wait_until(lambda: writer.idle and writer.counters.written == 2, "the batch written")
    rows = {row["id"]: row["endpoint"] for row in await db.fetch("SELECT id, endpoint FROM request_log")}
    assert rows.keys() == {odd, normal[1]}
    assert len(rows[odd]) <= 2048 and "\x00" not in rows[odd] and rows[odd].startswith("/api/")
    assert writer.counters.rejected == writer.counters.dropped == 0
    await _metrics_answer(http, gateway)
