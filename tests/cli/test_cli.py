"""The CLI against the same database as `serve`: keys it creates authenticate; secrets never print twice."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.support.cli_runner import run_cli
from tests.support.factories import SECRET, bearer, make_settings, start_gateway
from tests.support.polling import eventually


@pytest.fixture
def cli_env(database_url, db):
    return {"DATABASE_URL": database_url, "SECRET_KEY": SECRET}


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["migrate"],
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "show"],
        ["keys", "update"],
        ["keys", "revoke"],
    ],
)
def test_every_command_has_help(command):
    result = run_cli(*command, "--help", env={})
    assert result.returncode == 0, result.stderr
    assert "usage: ollama-gateway" in result.stdout


def test_bad_port_stops_with_one_line_naming_the_variable():
    result = run_cli("serve", env={"GATEWAY_PORT": "abc"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "GATEWAY_PORT" in result.stderr and "Traceback" not in result.stderr


def test_unknown_role_is_refused_in_one_line(cli_env):
    result = run_cli("keys", "create", "--name", "x", "--role", "root", env=cli_env)
    assert result.returncode == 2
    assert "role must be one of" in result.stderr and "Traceback" not in result.stderr


async def test_created_key_authenticates_list_hides_it_and_revoke_applies(cli_env, database_url, aiohttp_server):
    created = await asyncio.to_thread(
        run_cli, "keys", "create", "--name", "x", "--role", "user", "--models", "llama3,mistral", env=cli_env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("olg_") and len(key) == 42

    gateway = await start_gateway(aiohttp_server, make_settings(database_url))
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.u("/api/keys"), headers=bearer(key)) as r:
            assert r.status == 403  # known and active: authenticated, just not an admin

        listing = await asyncio.to_thread(run_cli, "keys", "list", env=cli_env)
        assert listing.returncode == 0
        assert key not in listing.stdout and key[:12] in listing.stdout
        assert "llama3,mistral" in listing.stdout

        revoked = await asyncio.to_thread(run_cli, "keys", "revoke", key[:12], env=cli_env)
        assert revoked.returncode == 0, revoked.stderr

        # Another process changed the key: the running gateway hears it through NOTIFY.
        async def refused() -> bool:
            async with http.get(gateway.u("/api/keys"), headers=bearer(key)) as r:
                return r.status == 401

        await eventually(refused, "the revoke heard through NOTIFY")


def test_update_and_show(cli_env):
    key = run_cli("keys", "create", "--name", "y", env=cli_env).stdout.strip()
    updated = run_cli("keys", "update", key[:12], "--rate-limit", "42", "--role", "admin", env=cli_env)
    assert updated.returncode == 0, updated.stderr
    shown = run_cli("keys", "show", key[:12], env=cli_env)
    assert '"rate_limit": 42' in shown.stdout and '"role": "admin"' in shown.stdout
    assert key not in shown.stdout
    missing = run_cli("keys", "show", "nothing-like-this", env=cli_env)
    assert missing.returncode == 1 and "no key matches" in missing.stderr


def test_migrate_is_idempotent(cli_env):
    result = run_cli("migrate", env=cli_env)
    assert result.returncode == 0
    assert "applied 0 migration(s)" in result.stdout


@pytest.mark.parametrize("revoke", [["keys", "revoke"], ["keys", "update", "--inactive"]])
def test_revocation_is_final_on_the_command_line_too(cli_env, revoke):
    key = run_cli("keys", "create", "--name", "z", env=cli_env).stdout.strip()
    assert run_cli(*revoke, key[:12], env=cli_env).returncode == 0
    again = run_cli("keys", "update", key[:12], "--active", env=cli_env)
    assert again.returncode == 1 and "cannot be reactivated" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert '"is_active": false' in run_cli("keys", "show", key[:12], env=cli_env).stdout


def _created(cli_env, name: str) -> tuple[str, str]:
    """(the key, its id) for a new key."""
    key = run_cli("keys", "create", "--name", name, env=cli_env).stdout.strip()
    shown = json.loads(run_cli("keys", "show", key[:12], env=cli_env).stdout)
    return key, shown["id"]


@pytest.mark.parametrize("action", ["update", "revoke", "show"])
@pytest.mark.parametrize("reference", ["id", "full key", "display prefix", "start of the prefix"])
def test_a_key_is_named_by_its_id_its_full_key_or_its_prefix(cli_env, action, reference):
    key, key_id = _created(cli_env, "named")
    given = {"id": key_id, "full key": key, "display prefix": key[:12], "start of the prefix": key[:9]}[reference]
    extra = ["--rate-limit", "7"] if action == "update" else []
    result = run_cli("keys", action, given, *extra, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert key not in result.stdout + result.stderr  # a full key given is never echoed
    shown = json.loads(run_cli("keys", "show", key_id, env=cli_env).stdout)
    assert shown["rate_limit"] == 7 if action == "update" else True
    assert shown["is_active"] is (action != "revoke")


@pytest.mark.parametrize("action", [["update", "--rate-limit", "7"], ["revoke"], ["show"]])
def test_an_ambiguous_prefix_is_refused_listing_the_ids(cli_env, action):
    ids = [_created(cli_env, name)[1] for name in ("first", "second")]
    result = run_cli("keys", action[0], "olg_", *action[1:], env=cli_env)  # every key starts so
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "'olg_' matches 2 keys" in line and all(key_id in line for key_id in ids)


@pytest.mark.parametrize("reference", ["o_g", "%", "olg_%", "olg_________"])
def test_a_prefix_is_matched_literally_not_as_a_pattern(cli_env, reference):
    _created(cli_env, "literal")
    result = run_cli("keys", "revoke", reference, env=cli_env)
    assert result.returncode == 1 and "no key matches" in result.stderr


def test_an_unknown_full_key_is_not_echoed(cli_env):
    key, _ = _created(cli_env, "known")
    other = key[:-6] + ("A" if key[-6] != "A" else "B") + key[-5:]  # a typo in a full key
    result = run_cli("keys", "revoke", other, env=cli_env)
    assert result.returncode == 1 and "no key matches" in result.stderr
    assert other not in result.stderr and other[12:] not in result.stderr
