"""burst, max_concurrent and tokens_per_day on keys: admin API, CLI, and the DEFAULT_* settings."""

from __future__ import annotations

import json

import pytest

from proxy.settings import SettingsError, load_settings
from tests.support.cli_runner import run_cli
from tests.support.factories import ADMIN_KEY, SECRET, bearer, make_settings, start_gateway

LIMITS = ("burst", "max_concurrent", "tokens_per_day")


async def _post(gateway, http, body):
    async with http.post(gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json=body) as r:
        return r.status, await r.json()


async def test_limits_are_set_shown_and_cleared_through_the_api(aiohttp_server, database_url, db, http, tmp_path):
    gateway = await start_gateway(aiohttp_server, make_settings(database_url, data_dir=tmp_path))
    status, created = await _post(
        gateway, http, {"name": "a", "burst": 5, "max_concurrent": 2, "tokens_per_day": 40_000_000_000}
    )  # a bigint
    assert status == 201
    assert [created[f] for f in LIMITS] == [5, 2, 40_000_000_000]
    url = gateway.u(f"/api/keys/{created['id']}")
    async with http.patch(url, headers=bearer(ADMIN_KEY), json={"max_concurrent": None, "burst": 7}) as r:
        patched = await r.json()
    assert [patched[f] for f in LIMITS] == [7, None, 40_000_000_000]
    async with http.get(url, headers=bearer(ADMIN_KEY)) as r:
        assert [(await r.json())[f] for f in LIMITS] == [7, None, 40_000_000_000]

    status, bare = await _post(gateway, http, {"name": "b"})
    assert [bare[f] for f in LIMITS] == [None, None, None]  # burst: the default rule; others: none


async def test_new_keys_take_the_default_settings_unless_given(aiohttp_server, database_url, db, http, tmp_path):
    settings = make_settings(
        database_url, data_dir=tmp_path, default_burst=9, default_max_concurrent=3, default_tokens_per_day=1000
    )
    gateway = await start_gateway(aiohttp_server, settings)
    _, defaulted = await _post(gateway, http, {"name": "d"})
    assert [defaulted[f] for f in LIMITS] == [9, 3, 1000]
    _, explicit = await _post(gateway, http, {"name": "e", "burst": 2, "max_concurrent": None, "tokens_per_day": None})
    assert [explicit[f] for f in LIMITS] == [2, None, None]  # an explicit null wins over the default


async def test_bad_limits_get_a_clear_400(aiohttp_server, database_url, db, http, tmp_path):
    # 24 admin requests: more than the demo admin key's default burst of 17 (1000/hour).
    settings = make_settings(database_url, data_dir=tmp_path, default_rate_limit=100_000)
    gateway = await start_gateway(aiohttp_server, settings)
    for field in LIMITS:
        for value in (0, -1, True, 1.5, "x", "", [], 10**16):
            status, body = await _post(gateway, http, {"name": "x", field: value})
            assert status == 400, (field, value)
            assert body["error"].startswith(f"{field} must be a whole number from 1 to "), (field, value)


@pytest.fixture
def cli_env(database_url, db):
    return {"DATABASE_URL": database_url, "SECRET_KEY": SECRET}


def test_cli_sets_shows_lists_and_clears_limits(cli_env):
    key = run_cli(
        "keys", "create", "--name", "c", "--burst", "5", "--max-concurrent", "2", "--tokens-per-day", "40", env=cli_env
    ).stdout.strip()
    shown = json.loads(run_cli("keys", "show", key[:12], env=cli_env).stdout)
    assert [shown[f] for f in LIMITS] == [5, 2, 40]
    listing = run_cli("keys", "list", env=cli_env).stdout
    assert "BURST" in listing and "TOKENS/DAY" in listing

    cleared = run_cli(
        "keys", "update", key[:12], "--auto-burst", "--no-max-concurrent", "--no-tokens-per-day", env=cli_env
    )
    assert cleared.returncode == 0, cleared.stderr
    assert [json.loads(cleared.stdout)[f] for f in LIMITS] == [None, None, None]
    assert "auto" in run_cli("keys", "list", env=cli_env).stdout


def test_cli_create_takes_defaults_from_the_environment_and_can_refuse_them(cli_env):
    env = {**cli_env, "DEFAULT_MAX_CONCURRENT": "4", "DEFAULT_TOKENS_PER_DAY": "500"}
    key = run_cli("keys", "create", "--name", "d", "--no-tokens-per-day", env=env).stdout.strip()
    shown = json.loads(run_cli("keys", "show", key[:12], env=env).stdout)
    assert [shown[f] for f in LIMITS] == [None, 4, None]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--burst", "0"], "burst must be a whole number"),
        (["--max-concurrent", "two"], "max_concurrent must be a whole number"),
        (["--burst", "5", "--auto-burst"], "not allowed with argument"),
    ],
)
def test_cli_refuses_bad_limits_in_one_line(cli_env, args, fragment):
    result = run_cli("keys", "create", "--name", "x", *args, env=cli_env)
    assert result.returncode == 2
    assert fragment in result.stderr and "Traceback" not in result.stderr


def test_default_limit_settings():
    assert (
        load_settings({}).default_burst,
        load_settings({}).default_max_concurrent,
        load_settings({}).default_tokens_per_day,
    ) == (None, None, None)
    settings = load_settings({"DEFAULT_BURST": "10", "DEFAULT_MAX_CONCURRENT": "", "DEFAULT_TOKENS_PER_DAY": "99"})
    assert settings.default_burst == 10 and settings.default_max_concurrent is None
    assert settings.default_tokens_per_day == 99
    for variable in ("DEFAULT_BURST", "DEFAULT_MAX_CONCURRENT", "DEFAULT_TOKENS_PER_DAY"):
        for bad in ("0", "-3", "many", "9" * 30):  # the last would overflow the bigint column
            with pytest.raises(SettingsError, match=f"^{variable}: "):
                load_settings({variable: bad})
