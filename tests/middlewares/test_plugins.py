"""GATEWAY_PLUGINS: a named middleware factory runs in the chain; a bad name stops startup in one line."""

from __future__ import annotations

import signal
import subprocess
import sys

import aiohttp
import pytest

from proxy.middlewares.plugins import load_plugins
from proxy.settings import SettingsError
from tests.support.cli_runner import REPO, cli_env, run_cli
from tests.support.factories import SECRET, USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_ollama import create_fake_ollama
from tests.support.ports import free_port

TENANT_PLUGIN = "examples.tenant_tag:tenant_required"
NOT_CALLABLE = 42


def returns_junk(settings):
    return "not a middleware"


def raises(settings):
    raise ValueError("TENANT_HEADER is not set\nsecond line")


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("no_such_module_xyz:factory", "cannot import 'no_such_module_xyz' (ModuleNotFoundError"),
        ("examples.tenant_tag:no_such_factory", "has no attribute 'no_such_factory'"),
        ("tests.middlewares.test_plugins:NOT_CALLABLE", "is not callable"),
        ("tests.middlewares.test_plugins:returns_junk", "returned str, not a middleware"),
        ("tests.middlewares.test_plugins:raises", "failed (ValueError: TENANT_HEADER is not set)"),
    ],
)
def test_a_bad_plugin_is_one_settings_error_naming_the_variable(database_url, path, fragment):
    with pytest.raises(SettingsError) as caught:
        load_plugins(make_settings(database_url, plugins=(path,)))
    message = str(caught.value)
    assert message.startswith("GATEWAY_PLUGINS: ") and fragment in message and "\n" not in message


async def test_the_example_plugin_runs_after_auth_in_the_chain(aiohttp_server, database_url, db):
    fake = await aiohttp_server(create_fake_ollama())
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), plugins=(TENANT_PLUGIN,))
    gateway = await start_gateway(aiohttp_server, settings)
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.u("/api/tags"), headers=bearer(USER_KEY)) as r:
            assert r.status == 400 and "X-Tenant" in (await r.json())["error"]
        async with http.post(gateway.u("/v1/chat/completions"), headers=bearer(USER_KEY), json={}) as r:
            assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"
        async with http.get(gateway.u("/api/tags"), headers={**bearer(USER_KEY), "X-Tenant": "team-a"}) as r:
            assert r.status == 200
        async with http.get(gateway.u("/api/tags")) as r:
            assert r.status == 401  # auth runs first: the plugin only sees authenticated requests
        async with http.get(gateway.u("/health")) as r:
            assert r.status == 200  # keyless public routes pass the example plugin


def test_serve_with_a_bad_plugin_path_stops_in_one_line(database_url):
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET, "GATEWAY_PLUGINS": "examples.tenant_tag:nope"}
    result = run_cli("serve", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("ollama-gateway: configuration error: GATEWAY_PLUGINS: ")
    assert "Traceback" not in result.stderr


def test_a_malformed_plugin_path_is_refused_with_the_settings():
    result = run_cli("keys", "list", env={"GATEWAY_PLUGINS": "examples/tenant_tag.py"})
    assert result.returncode == 2
    assert "GATEWAY_PLUGINS" in result.stderr and "package.module:factory" in result.stderr


def test_the_readme_plugin_command_works_from_the_repository_root(database_url, db, tmp_path):
    """`GATEWAY_PLUGINS=examples.tenant_tag:tenant_required ollama-gateway serve`, as the README writes it.

    The installed command puts only its own directory on sys.path (and `pip install -e .` maps only
    `proxy`), so this runs Python with -P (no current directory on sys.path) and `proxy` alone importable.
    """
    installed = tmp_path / "site"
    installed.mkdir()
    (installed / "proxy").symlink_to(REPO / "proxy")
    port = free_port()
    probe = subprocess.run(
        [sys.executable, "-P", "-c", "import examples"],
        cwd=REPO,
        capture_output=True,
        check=False,
        env=cli_env({"PYTHONPATH": str(installed)}),
    )
    assert probe.returncode != 0, "examples/ must not be importable without the gateway's help"
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "proxy", "--env-file", "/dev/null", "serve"],
        cwd=REPO,
        env=cli_env(
            {
                "PYTHONPATH": str(installed),
                "GATEWAY_PLUGINS": TENANT_PLUGIN,
                "GATEWAY_PORT": str(port),
                "DATABASE_URL": database_url,
                "SECRET_KEY": SECRET,
            }
        ),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        output = ""
        while "listening on" not in output:
            line = process.stderr.readline()
            assert line, f"serve exited with {process.wait()}:\n{output}"
            output += line
    finally:
        process.send_signal(signal.SIGTERM)
        output += process.stderr.read()
        assert process.wait(30) == 0, output
