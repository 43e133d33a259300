"""`serve` with no DATABASE_URL: the embedded PostgreSQL starts, keeps keys across restarts, and stops
whatever stopped the gateway: a signal while serving or starting, or a user killed before."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from proxy.db.embedded import HANDLES_FILE, forget_dead_users
from tests.support.cli_runner import REPO, cli_env, start_serve
from tests.support.ports import free_port


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """GATEWAY_DATA_DIR, outside pytest's base temp dir: as root, the server runs as user "pgserver",
    and every pytest session that starts takes group and other access off that dir again."""
    with tempfile.TemporaryDirectory(prefix="ollama-gateway-test-") as scratch:
        yield Path(scratch) / "data"


FIRST_KEY = re.compile(r"^\s+(olg_\w{38})$", re.MULTILINE)


async def _start(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    return await start_serve(env)


async def _stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_embedded_start_restart_keeps_keys(data_dir):
    port = free_port()
    env = {"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_PORT": str(port)}
    base = f"http://127.0.0.1:{port}"

    process, output = await _start(env)
    try:
        assert "embedded PostgreSQL" in output and "demo keys: off" in output
        admin_key = FIRST_KEY.search(output).group(1)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/health") as r:
                assert r.status == 200
            async with http.post(
                f"{base}/api/keys", json={"name": "kept"}, headers={"Authorization": f"Bearer {admin_key}"}
            ) as r:
                assert r.status == 201
                user_key = (await r.json())["key"]
    finally:
        await _stop(process)
    assert (data_dir / "secret_key").stat().st_mode & 0o077 == 0

    process, output = await _start(env)
    try:
        assert not FIRST_KEY.search(output), "an admin exists: no new first key"
        async with aiohttp.ClientSession() as http:
            for key, status in ((admin_key, 200), (user_key, 403)):
                async with http.get(f"{base}/api/keys", headers={"Authorization": f"Bearer {key}"}) as r:
                    assert r.status == status
    finally:
        await _stop(process)
    # The last user of the data directory stopped the server with it.
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    assert not pid_file.exists()


# --- the embedded PostgreSQL never outlives its last user ----------------------------------------------


def _postmasters(pgdata: Path) -> list[psutil.Process]:
    """The PostgreSQL server processes started on `pgdata` (only the postmaster has -D in its command line)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(pgdata) in (process.info["cmdline"] or []):
            found.append(process)
    return found


async def _no_server_left(pgdata: Path) -> None:
    # The gateway has exited: pg_ctl stop -w returned before it did. Polled only in case the
    # postmaster, reparented to init, is reaped a moment later.
    for _ in range(100):
        if not _postmasters(pgdata):
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"a PostgreSQL server still runs on {pgdata}: {_postmasters(pgdata)}")


async def _start_until(env: dict[str, str], text: str) -> asyncio.subprocess.Process:
    process, _ = await start_serve(env, until=text)
    asyncio.get_running_loop().create_task(process.stderr.read())  # keep draining: a full pipe blocks it
    return process


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_a_stop_signal_while_serving_stops_the_embedded_postgres(data_dir, sig):
    env = {"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_PORT": str(free_port())}
    process = await _start_until(env, "listening on")
    process.send_signal(sig)
    assert await asyncio.wait_for(process.wait(), 30) == 0  # drained in order, like SIGTERM
    await _no_server_left(data_dir / "pgdata")
    assert json.loads((data_dir / "pgdata" / HANDLES_FILE).read_text()) == []


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
async def test_a_stop_signal_while_starting_leaves_no_server(data_dir, sig):
    """Sent as the embedded server starts: wherever it lands, the process unwinds and stops the server."""
    env = {"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_PORT": str(free_port())}
    process = await _start_until(env, "using the embedded PostgreSQL")
    process.send_signal(sig)
    assert await asyncio.wait_for(process.wait(), 60) in (0, 128 + sig)
    await _no_server_left(data_dir / "pgdata")


async def test_a_killed_gateway_does_not_keep_the_server_up_after_the_next_clean_stop(data_dir):
    env = {"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_PORT": str(free_port())}
    pgdata = data_dir / "pgdata"
    process = await _start_until(env, "listening on")
    process.kill()  # no exit hook runs: its PID stays in the list, the server stays up
    await process.wait()
    assert _postmasters(pgdata) and json.loads((pgdata / HANDLES_FILE).read_text()) == [process.pid]

    process = await _start_until(env, "listening on")  # joins the running server
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    await _no_server_left(pgdata)


async def test_serve_workers_stops_with_its_terminal(data_dir):
    """A closed terminal sends SIGHUP to the whole process group: the parent and every worker."""
    env = {"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_PORT": str(free_port())}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "--env-file",
        "/dev/null",
        "serve",
        "--workers",
        "2",
        env=cli_env(env),
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    output = ""
    while output.count("listening on") < 2:
        line = await asyncio.wait_for(process.stderr.readline(), 60)
        assert line, f"serve exited early:\n{output}"
        output += line.decode()
    drained = asyncio.get_running_loop().create_task(process.stderr.read())
    os.killpg(process.pid, signal.SIGHUP)
    assert await asyncio.wait_for(process.wait(), 60) == 0, output + (await drained).decode()
    await _no_server_left(data_dir / "pgdata")


def test_forget_dead_users_keeps_only_processes_that_may_have_listed_themselves(tmp_path):
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    handles = pgdata / HANDLES_FILE
    handles.write_text("[]")
    written_at = handles.stat().st_mtime - 5  # listed five seconds ago
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as newer:
        # The test process existed before the list was written; `newer` only reuses a listed number.
        handles.write_text(json.dumps([os.getpid(), finished.pid, newer.pid]))
        os.utime(handles, (written_at, written_at))
        assert forget_dead_users(pgdata) == [finished.pid, newer.pid]
        newer.stdin.close()
    assert json.loads(handles.read_text()) == [os.getpid()]
    assert forget_dead_users(pgdata) == []
