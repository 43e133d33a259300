"""A burst of connections while the loop is busy: the kernel holds them all for `serve`, and each is served."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy.cli.server import LISTEN_BACKLOG
from tests.support.cli_runner import REPO, cli_env
from tests.support.factories import SECRET
from tests.support.ports import free_port

BURST = 1000  # far past aiohttp's default listen backlog of 128


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _connected(sockets: list[socket.socket], within: float) -> int:
    """How many of the non-blocking connects have completed their handshake within `within` seconds."""
    deadline = time.monotonic() + within
    done = set()
    while time.monotonic() < deadline and len(done) < len(sockets):
        for index, sock in enumerate(sockets):
            if index not in done and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                try:
                    sock.getpeername()
                except OSError:  # still connecting
                    continue
                done.add(index)
        time.sleep(0.05)
    return len(done)


@pytest.fixture
async def stopped_serve(database_url, db, tmp_path):
    """`serve` listening, then stopped (SIGSTOP): its loop accepts nothing, as when it is busy."""
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--env-file", "/dev/null", "serve"],
            env=cli_env(
                {
                    "DATABASE_URL": database_url,
                    "SECRET_KEY": SECRET,
                    "GATEWAY_PORT": str(port),
                    "OLLAMA_BASE_URL": "http://127.0.0.1:9",
                    "GATEWAY_DATA_DIR": str(tmp_path / "data"),
                }
            ),
            cwd=REPO,
            stdout=out,
            stderr=out,
        )
    try:
        for _ in range(300):
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()}")
            if _listening(port):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"serve did not listen within 30 s:\n{log.read_text()}")
        process.send_signal(signal.SIGSTOP)
        yield process, port
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_a_burst_past_aiohttps_default_backlog_waits_for_the_loop_and_is_served(stopped_serve):
    process, port = stopped_serve
    assert LISTEN_BACKLOG >= BURST
    if int(Path("/proc/sys/net/core/somaxconn").read_text()) < BURST:  # Linux before 5.4: 128 by default
        pytest.skip("net.core.somaxconn caps every listen backlog below the burst")
    sockets = []
    try:
        for _ in range(BURST):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
        # With the process stopped only the kernel answers: a backlog of 128 completes 129 handshakes
        # and drops the other SYNs; ours holds the whole burst.
        assert _connected(sockets, within=3) == BURST
        for sock in sockets:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        process.send_signal(signal.SIGCONT)
        answered = 0
        for sock in sockets:
            sock.setblocking(True)
            sock.settimeout(30)
            answered += sock.recv(64).startswith(b"HTTP/1.1 200")
        assert answered == BURST
    finally:
        for sock in sockets:
            sock.close()
