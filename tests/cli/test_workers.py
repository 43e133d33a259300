"""`serve --workers 2` as users run it: both workers answer, one first admin key, SIGTERM stops all, no row lost."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from proxy.db.migrations import migrate
from proxy.keys.format import generate_key, key_digest
from tests.support.cli_runner import REPO, cli_env
from tests.support.factories import SECRET, bearer
from tests.support.fake_ollama import create_fake_ollama
from tests.support.ports import free_port

USER_KEY = generate_key()  # of the gateway's own format: only those are looked up
REQUESTS = 120
CONNECTIONS = 24  # SO_REUSEPORT spreads connections by hash: 24 all on one of 2 workers is a 2^-23 chance


async def _until_both_listen(process: subprocess.Popen, port: int, log: Path) -> None:
    for _ in range(300):
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()}")
        pids = _worker_pids(process)
        if len(pids) == 2 and all(_sockets_on(pid, port, psutil.CONN_LISTEN) for pid in pids):
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"serve --workers 2 did not listen within 30 s:\n{log.read_text()}")


@pytest.fixture
async def workers(database_url, db, aiohttp_server, tmp_path):
    ollama = await aiohttp_server(create_fake_ollama())
    await migrate(db)
    # A user key made beforehand, and no demo keys: each worker then checks for a first admin key.
    await db.execute(
        "INSERT INTO api_keys (id, key_hash, prefix, name, role, rate_limit) "
        "VALUES (gen_random_uuid(), $1, 'workers', 'workers', 'user', 1000000)",
        _digest(USER_KEY),
    )
    port = free_port()
    log = tmp_path / "serve.log"  # a file, not a pipe: a full pipe would block the workers' logging
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--env-file", "/dev/null", "serve", "--workers", "2"],
            env=cli_env(
                {
                    "DATABASE_URL": database_url,
                    "SECRET_KEY": SECRET,
                    "GATEWAY_PORT": str(port),
                    "OLLAMA_BASE_URL": str(ollama.make_url("")),
                    "GATEWAY_DATA_DIR": str(tmp_path / "data"),
                }
            ),
            cwd=REPO,
            stdout=out,
            stderr=out,
            text=True,
        )
    try:
        await _until_both_listen(process, port, log)
        yield process, f"http://127.0.0.1:{port}", port, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _digest(key: str) -> bytes:
    return key_digest(SECRET, key)


def _worker_pids(process: subprocess.Popen) -> list[int]:
    return [
        child.pid for child in psutil.Process(process.pid).children() if "spawn_main" in " ".join(child.cmdline())
    ]  # not the resource tracker


def _sockets_on(pid: int, port: int, status: str) -> int:
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status == status
    )


async def test_two_workers_share_the_port_and_stop_together_without_losing_a_row(workers, db):
    process, url, port, log = workers
    pids = _worker_pids(process)
    assert len(pids) == 2

    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def chat() -> int:
            async with http.post(f"{url}/api/chat", json=body, headers=bearer(USER_KEY)) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(chat() for _ in range(REQUESTS)))
        assert statuses == [200] * REQUESTS
        # The keep-alive connections are still open: each worker holds some of them.
        held = {pid: _sockets_on(pid, port, psutil.CONN_ESTABLISHED) for pid in pids}
        assert all(held.values()), held
        assert sum(held.values()) == CONNECTIONS

    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait, timeout=60)
    stderr = log.read_text()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    # Each worker drained its usage log before exiting: one row per request, none lost.
    assert await db.fetchval("SELECT count(*) FROM request_log WHERE endpoint = '/api/chat'") == REQUESTS
    # Both workers looked for an admin key at start; the advisory lock let only one create it.
    assert await db.fetchval("SELECT count(*) FROM api_keys WHERE role = 'admin'") == 1
    assert stderr.count("No admin key existed") == 1
    assert len(re.findall(r"worker \d of 2, pid \d+", stderr)) == 2


async def test_a_worker_that_dies_stops_the_others(workers):
    process, _, _, log = workers
    first, second = _worker_pids(process)
    psutil.Process(first).kill()
    await asyncio.to_thread(process.wait, timeout=60)
    assert process.returncode == 1
    deadline = time.monotonic() + 10
    while psutil.pid_exists(second) and psutil.Process(second).status() != "zombie" and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not psutil.pid_exists(second) or psutil.Process(second).status() == "zombie"
    assert "a worker failed" in log.read_text()
