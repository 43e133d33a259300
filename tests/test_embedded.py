"""`serve` with no DATABASE_URL: the embedded PostgreSQL starts, keeps keys across restarts, and stops."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import aiohttp

from tests.cli_runner import REPO, cli_env, free_port

FIRST_KEY = re.compile(r"^\s+(olg_\w{38})$", re.MULTILINE)


async def _start(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "--env-file", "/dev/null", "serve",
        env=cli_env(env), cwd=REPO, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )
    output = ""
    while "listening on" not in output:
        line = await asyncio.wait_for(process.stderr.readline(), 60)
        assert line, f"serve exited early:\n{output}"
        output += line.decode()
    return process, output


async def _stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_embedded_start_restart_keeps_keys(tmp_path):
    port = free_port()
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_PORT": str(port)}
    base = f"http://127.0.0.1:{port}"

    process, output = await _start(env)
    try:
        assert "embedded PostgreSQL" in output and "demo keys: off" in output
        admin_key = FIRST_KEY.search(output).group(1)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/health") as r:
                assert r.status == 200
            async with http.post(f"{base}/api/keys", json={"name": "kept"},
                                 headers={"Authorization": f"Bearer {admin_key}"}) as r:
                assert r.status == 201
                user_key = (await r.json())["key"]
    finally:
        await _stop(process)
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0

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
    pid_file = tmp_path / "data" / "pgdata" / "postmaster.pid"
    assert not pid_file.exists()
