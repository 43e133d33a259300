"""The errors a new user meets first: one line, exit code 1 (2 for a setting), no traceback, naming the
cause and the setting to change, and nothing started, created or printed before it."""

from __future__ import annotations

import asyncio
import signal
import socket

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from yarl import URL

from tests.support.cli_runner import read_log_until, run_cli, start_serve
from tests.support.database import create_database, drop_database, server_dsn
from tests.support.factories import SECRET
from tests.support.fake_ollama import create_fake_ollama
from tests.support.ports import free_port

PASSWORD = "pw-never-printed"
COMMANDS = [["serve"], ["migrate"], ["keys", "list"], ["keys", "create", "--name", "x"]]


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if " INFO " not in line]  # serve's own start-up lines
    assert len(lines) == 1, stderr
    return lines[0]


def _server(database_url: str) -> tuple[str, int]:
    url = URL(database_url)
    return url.host or "127.0.0.1", url.port or 5432


def _failing_database(case: str, database_url: str) -> tuple[str, str]:
    """(DATABASE_URL, the words the one line must hold) for each way connecting fails."""
    host, port = _server(database_url)
    closed = free_port()
    return {
        "refused": (
            f"postgresql://gateway:{PASSWORD}@127.0.0.1:{closed}/gateway",
            f"the database at 127.0.0.1:{closed} (DATABASE_URL) refused the connection",
        ),
        "unresolvable": (
            f"postgresql://gateway:{PASSWORD}@no-such-host.invalid:5432/gateway",
            "the database host 'no-such-host.invalid' (DATABASE_URL) could not be resolved",
        ),
        "no-such-database": (
            f"postgresql://postgres:{PASSWORD}@{host}:{port}/no_such_database_here",
            f"the database at {host}:{port} (DATABASE_URL) has no database 'no_such_database_here'",
        ),
        "no-such-user": (
            f"postgresql://no_such_role:{PASSWORD}@{host}:{port}/postgres",
            f"the database at {host}:{port} (DATABASE_URL) refused user 'no_such_role'",
        ),
    }[case]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("case", ["refused", "unresolvable", "no-such-database", "no-such-user"])
def test_a_database_that_cannot_be_reached_is_named_with_its_setting(database_url, tmp_path, case, command):
    dsn, words = _failing_database(case, database_url)
    result = run_cli(
        *command,
        env={
            "DATABASE_URL": dsn,
            "SECRET_KEY": SECRET,
            "GATEWAY_PORT": str(free_port()),
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        },
    )
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert line.startswith(f"ollama-gateway: {words}"), line
    assert PASSWORD not in result.stderr + result.stdout
    assert "olg_" not in result.stderr + result.stdout  # no key was made or printed


@pytest.mark.parametrize("value", ["postgresql://u:{pw}@127.0.0.1:port/db", "postgresql://u:{pw}@[::1/db"])
def test_a_malformed_database_url_is_a_setting_error(value):
    result = run_cli("keys", "list", env={"DATABASE_URL": value.format(pw=PASSWORD), "SECRET_KEY": SECRET})
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "DATABASE_URL" in line and PASSWORD not in line


@pytest.fixture
def occupied_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("how", ["env", "flag", "external-database"])
def test_a_port_in_use_is_found_before_anything_starts(occupied_port, database_url, db, tmp_path, how):
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "data")}
    args = ["serve"]
    if how == "flag":
        args += ["--port", str(occupied_port)]
    else:
        env["GATEWAY_PORT"] = str(occupied_port)
    if how == "external-database":
        env.update(DATABASE_URL=database_url, SECRET_KEY=SECRET)
    result = run_cli(*args, env=env)
    assert result.returncode == 1
    assert _one_line(result.stderr) == (
        f"ollama-gateway: port {occupied_port} on 127.0.0.1 is in use "
        "(GATEWAY_PORT / --port): stop what listens there or choose another port"
    )
    assert "olg_" not in result.stderr + result.stdout  # no first admin key
    assert not (tmp_path / "data").exists()  # no embedded database, no secret file


def test_a_port_in_use_leaves_a_new_external_database_untouched(occupied_port, tmp_path):
    server = server_dsn(tmp_path)
    fresh = create_database(server)
    try:
        result = run_cli("serve", env={"GATEWAY_PORT": str(occupied_port), "DATABASE_URL": fresh, "SECRET_KEY": SECRET})
        assert result.returncode == 1
        assert asyncio.run(_tables(fresh)) == []  # no migration ran
    finally:
        drop_database(server, fresh)


async def _tables(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [row["tablename"] for row in rows]
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("192.0.2.1", "192.0.2.1 is not an address of this machine (GATEWAY_HOST / --host)"),
        (
            "no-such-host.invalid",
            ("the address to listen on, 'no-such-host.invalid' (GATEWAY_HOST / --host), could not be resolved"),
        ),
    ],
)
def test_an_address_that_cannot_be_listened_on_names_gateway_host(tmp_path, host, words):
    result = run_cli(
        "serve",
        env={"GATEWAY_HOST": host, "GATEWAY_PORT": str(free_port()), "GATEWAY_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.returncode == 1
    assert _one_line(result.stderr).startswith(f"ollama-gateway: {words}")
    assert not (tmp_path / "data").exists()


async def _not_ollama() -> web.Application:
    return web.Application()  # answers 404 to everything


@pytest.mark.parametrize("upstream", ["closed-port", "not-ollama", "ollama"])
async def test_serve_warns_at_start_when_ollama_does_not_answer(database_url, db, aiohttp_server, upstream):
    if upstream == "closed-port":
        base, warning = f"http://127.0.0.1:{free_port()}", "is unreachable: Connection refused"
    else:
        server = await aiohttp_server(create_fake_ollama() if upstream == "ollama" else await _not_ollama())
        base, warning = str(server.make_url("")).rstrip("/"), "answered GET /api/version with 404"
    port = free_port()
    expected = "listening on" if upstream == "ollama" else "(OLLAMA_BASE_URL)"
    process, output = await start_serve(
        {"DATABASE_URL": database_url, "SECRET_KEY": SECRET, "GATEWAY_PORT": str(port), "OLLAMA_BASE_URL": base},
        until=expected,
    )
    try:
        output = await read_log_until(process, "listening on", output)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as response:
            assert response.status == 200  # it serves all the same
    finally:
        process.send_signal(signal.SIGTERM)
        output += (await asyncio.wait_for(process.stderr.read(), 30)).decode()
        assert await process.wait() == 0
    warnings = [line for line in output.splitlines() if "OLLAMA_BASE_URL" in line]
    if upstream == "ollama":
        assert warnings == []
    else:
        assert len(warnings) == 1 and " WARNING " in warnings[0], output
        assert f"Ollama at {base} (OLLAMA_BASE_URL) {warning}" in warnings[0]
    assert "Traceback" not in output
