"""Acceptance for the usage log: one row per request through load, a PostgreSQL outage, and shutdowns."""

from __future__ import annotations

import asyncio
import signal
import uuid

import aiohttp
import pytest

from proxy.request_log.context import JOURNAL_DIR
from proxy.request_log.journal import Journal
from proxy.request_log.record import RECORD_SINK
from proxy.request_log.writer import RequestLogWriter
from tests.support.cli_runner import start_serve
from tests.support.factories import ADMIN_KEY, SECRET, USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_ollama import FAKE_STATE
from tests.support.ports import free_port
from tests.support.records import wait_until
from tests.support.tcp_proxy import TcpProxy

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "Why is the sky blue?"}], "stream": False}
UNLIMITED = 10**9  # requests per hour: these tests measure the log, not the rate limits


@pytest.fixture
async def proxied_dsn(database_url, db):
    proxy, dsn = await TcpProxy.to_dsn(database_url)
    yield proxy, dsn
    await proxy.close()


async def _load(count: int, concurrency: int, send) -> list:
    """`count` calls of `send(i)` from `concurrency` clients at once; their results in order of completion."""
    results, numbers = [], iter(range(count))

    async def client():
        for i in numbers:
            results.append(await send(i))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


async def _get(http, url, **kwargs) -> tuple[int, uuid.UUID]:
    async with http.get(url, **kwargs) as r:
        await r.read()
        return r.status, uuid.UUID(r.headers["X-Request-ID"])


async def _key_listener_connected(db) -> None:
    listening = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"
    async with asyncio.timeout(30):
        while not await db.fetchval(listening):
            await asyncio.sleep(0.02)


async def _settled(writer: RequestLogWriter, requests: int) -> None:
    await wait_until(lambda: writer.counters.enqueued >= requests and writer.idle, "every record written")


async def test_2000_requests_from_50_clients_are_2000_rows(aiohttp_server, database_url, db, http):
    gateway = await start_gateway(aiohttp_server, make_settings(database_url, default_rate_limit=UNLIMITED))

    async def send(i):
        if i % 2:
            return await _get(http, gateway.u("/health"))
        return await _get(http, gateway.u("/api/keys"), headers=bearer(ADMIN_KEY))

    answers = await _load(2_000, 50, send)
    assert {status for status, _ in answers} == {200}
    await _settled(gateway.app[RECORD_SINK], 2_000)
    rows = await db.fetch("SELECT id, endpoint, api_key_id, status_code FROM request_log")
    assert sorted(row["id"] for row in rows) == sorted(request_id for _, request_id in answers)
    admin_id = await db.fetchval("SELECT id FROM api_keys WHERE name = 'demo-admin'")
    by_endpoint = {(row["endpoint"], row["api_key_id"]) for row in rows}
    assert by_endpoint == {("/health", None), ("/api/keys", admin_id)}
    assert await db.fetchval("SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = $1", admin_id)
    # On a loaded machine a write may outlast the hang threshold and be journaled as well: the
    # replay then counts those rows as duplicates. Either way each record is counted once.
    assert gateway.app[RECORD_SINK].counters.landed == 2_000


async def test_rejected_and_cut_requests_get_their_rows(aiohttp_server, database_url, db, http, fake):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""))
    gateway = await start_gateway(aiohttp_server, settings)
    for i in range(10):
        assert (await _get(http, gateway.u("/api/tags"), headers=bearer(f"wrong-key-{i:020d}")))[0] == 401
    assert (await _get(http, gateway.u("/api/keys"), headers=bearer(USER_KEY)))[0] == 403
    # A client that gives up on a model that never answers: the row says 499.
    waiting = asyncio.create_task(
        http.post(gateway.u("/api/chat"), json={**CHAT, "model": "hang"}, headers=bearer(USER_KEY))
    )
    await wait_until(lambda: fake.app[FAKE_STATE].active == 1, "the request reached Ollama")
    waiting.cancel()
    await _settled(gateway.app[RECORD_SINK], 12)
    statuses = await db.fetch("SELECT status_code, count(*), count(api_key_id) FROM request_log GROUP BY 1 ORDER BY 1")
    assert [tuple(row) for row in statuses] == [(401, 10, 0), (403, 1, 1), (499, 1, 1)]
    assert await db.fetchval("SELECT model FROM request_log WHERE status_code = 499") == "hang"


async def test_a_database_outage_mid_load_loses_and_doubles_nothing(
    proxied_dsn, aiohttp_server, db, http, fake, tmp_path
):
    proxy, dsn = proxied_dsn
    settings = make_settings(dsn, ollama_base_url=fake.make_url(""), default_rate_limit=UNLIMITED, data_dir=tmp_path)
    # A small in-memory bound, so the outage also goes through the journal.
    writer = RequestLogWriter(Journal(tmp_path / JOURNAL_DIR), batch_size=100, max_queued=100)
    gateway = await start_gateway(aiohttp_server, settings, sink=writer)
    answered = []

    async def send(i):
        async with http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY)) as r:
            await r.read()
            answered.append(r.status)
        await asyncio.sleep(0.1)  # pacing, so that the load spans the whole outage
        return r.status

    load = asyncio.create_task(_load(3_000, 50, send))
    await wait_until(lambda: len(answered) >= 1_000, "first third answered")
    await proxy.cut()
    during_start = len(answered)
    # PostgreSQL stays unreachable until the outage has shown: hundreds of requests answered
    # through it, and records past the in-memory bound gone to the journal.
    await wait_until(
        lambda: len(answered) >= during_start + 500 and writer.counters.journaled > 0, "load served through the outage"
    )
    during = answered[during_start:]
    await proxy.restore()
    statuses = await load

    assert statuses == [200] * 3_000  # keys were known: answered throughout, the outage included
    assert during and set(during) == {200}
    await _settled(writer, 3_000)
    assert await db.fetchval("SELECT count(*) FROM request_log") == 3_000
    assert await db.fetchval("SELECT count(DISTINCT id) FROM request_log") == 3_000
    counters = writer.counters  # a write slow at the cut may have landed after all: its copy is skipped
    assert counters.journaled > 0 and counters.replayed + counters.skipped == counters.journaled
    assert writer.counters.dropped == 0 and not writer.journal.pending()
    tokens = await db.fetchval("SELECT sum(tokens_used) FROM request_log")
    async with http.get(gateway.u("/api/stats"), headers=bearer(ADMIN_KEY)) as r:
        totals = (await r.json())["totals"]
    assert totals["requests"] == 3_000 and totals["total_tokens"] == tokens and totals["errors"] == 0


async def test_stop_without_a_database_journals_and_the_restart_writes_everything(
    proxied_dsn, aiohttp_server, db, http, fake, tmp_path
):
    proxy, dsn = proxied_dsn
    settings = make_settings(dsn, ollama_base_url=fake.make_url(""), default_rate_limit=UNLIMITED, data_dir=tmp_path)
    first = await start_gateway(aiohttp_server, settings)  # the writer create_app builds, in GATEWAY_DATA_DIR
    await _key_listener_connected(db)  # it empties the key cache when it connects
    assert (await _get(http, first.u("/api/tags"), headers=bearer(USER_KEY)))[0] == 200  # the key is now known
    await _settled(first.app[RECORD_SINK], 1)

    await proxy.cut()
    answers = await _load(
        1_000, 20, lambda i: _get(http, first.u("/api/tags" if i % 2 else "/health"), headers=bearer(USER_KEY))
    )
    assert {status for status, _ in answers} == {200}
    await first.server.close()  # runner cleanup, as on SIGTERM: drain fails, the journal takes the rest
    journal = Journal(tmp_path / JOURNAL_DIR)
    assert first.app[RECORD_SINK].counters.journaled == 1_000
    assert sum(1 for _ in open(journal.current)) == 1_000

    await proxy.restore()
    second = await start_gateway(aiohttp_server, settings)  # replays before it serves
    ids = {row["id"] for row in await db.fetch("SELECT id FROM request_log")}
    assert {request_id for _, request_id in answers} <= ids and len(ids) == 1_001
    assert not journal.pending()
    assert second.app[RECORD_SINK].counters.replayed == 1_000


def _serve_env(dsn: str, fake, data_dir) -> tuple[dict[str, str], str]:
    """The environment of a real `serve` on a free port with the demo keys, and its base URL."""
    port = free_port()
    env = {
        "DATABASE_URL": dsn,
        "SECRET_KEY": SECRET,
        "DEMO_ADMIN_KEY": ADMIN_KEY,
        "DEMO_USER_KEY": USER_KEY,
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_PORT": str(port),
        "DEFAULT_RATE_LIMIT": str(UNLIMITED),
        "OLLAMA_BASE_URL": str(fake.make_url("")),
    }
    return env, f"http://127.0.0.1:{port}"


async def test_sigterm_on_serve_journals_and_the_next_serve_replays(proxied_dsn, db, fake, tmp_path):
    proxy, dsn = proxied_dsn
    env, base = _serve_env(dsn, fake, tmp_path)
    journal = Journal(tmp_path / JOURNAL_DIR)
    async with aiohttp.ClientSession() as http:
        async with _serving(env):
            before = await _load(300, 20, lambda i: _get(http, f"{base}/api/tags", headers=bearer(USER_KEY)))
            await proxy.cut()
            during = await _load(200, 20, lambda i: _get(http, f"{base}/api/tags", headers=bearer(USER_KEY)))
        assert journal.pending()  # SIGTERM with PostgreSQL away: the rest went to disk

        await proxy.restore()
        async with _serving(env):
            ids = {row["id"] for row in await db.fetch("SELECT id FROM request_log")}
        assert {200} == {status for status, _ in before + during}
        assert ids == {request_id for _, request_id in before + during}
        assert not journal.pending()


async def test_sigkill_during_an_outage_loses_nothing_older_than_a_flush_interval(proxied_dsn, db, fake, tmp_path):
    proxy, dsn = proxied_dsn
    env, base = _serve_env(dsn, fake, tmp_path)
    directory = tmp_path / JOURNAL_DIR

    def journaled() -> set[uuid.UUID]:
        files = [*directory.glob("current.jsonl"), *directory.glob("replay-*.jsonl")]
        return {record.id for path in files for batch in Journal.read(path, 1_000) for record in batch}

    async with aiohttp.ClientSession() as http:
        serving = _serving(env)
        async with serving:
            await _key_listener_connected(db)  # it empties the key cache when it connects
            first = await _get(http, f"{base}/api/tags", headers=bearer(USER_KEY))  # the key is now known
            await _until_logged(db, first[1])
            await proxy.cut()
            during = await _load(300, 20, lambda i: _get(http, f"{base}/api/tags", headers=bearer(USER_KEY)))
            assert {status for status, _ in during} == {200}
            # 300 is far below MAX_QUEUED (50,000): only the flush interval brings them to disk.
            await wait_until(lambda: journaled() >= {request_id for _, request_id in during}, "all on disk")
            await serving.kill()

        await proxy.restore()
        async with _serving(env):  # replays at start, before it serves
            ids = {row["id"] for row in await db.fetch("SELECT id FROM request_log")}
        assert ids == {first[1]} | {request_id for _, request_id in during}


async def _until_logged(db, request_id: uuid.UUID) -> None:
    async with asyncio.timeout(60):  # only stops a broken test from hanging
        while not await db.fetchval("SELECT count(*) FROM request_log WHERE id = $1", request_id):
            await asyncio.sleep(0.02)


class _serving:
    """`python -m proxy serve` from start to a SIGTERM stop, which must exit 0 (or to `kill`)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def __aenter__(self) -> None:
        self.process, output = await start_serve(self.env)
        self.output = [output]
        self.reader = asyncio.create_task(self._read_rest())  # a full pipe would stall the server

    async def _read_rest(self) -> None:
        while line := await self.process.stderr.readline():
            self.output.append(line.decode())

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        self.process.kill()
        await asyncio.wait_for(self.process.wait(), 60)
        await self.reader

    async def __aexit__(self, *exc_info) -> None:
        if self.process.returncode is not None:  # killed
            return
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 60)
        await self.reader
        assert code == 0, "".join(self.output)
