"""weight, max_queued and priority on keys (the fair queue): admin API, CLI and bad values."""

from __future__ import annotations

import json

import pytest

from tests.support.cli_runner import run_cli
from tests.support.factories import ADMIN_KEY, SECRET, bearer, make_settings, start_gateway

FIELDS = ("weight", "max_queued", "priority")


async def _post(gateway, http, body):
    async with http.post(gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json=body) as r:
        return r.status, await r.json()


async def test_queue_fields_default_set_and_change_through_the_api(aiohttp_server, database_url, db, http, tmp_path):
    settings = make_settings(database_url, data_dir=tmp_path, default_rate_limit=100_000)
    gateway = await start_gateway(aiohttp_server, settings)
    _, plain = await _post(gateway, http, {"name": "plain"})
    assert [plain[f] for f in FIELDS] == [1.0, 32, "interactive"]
    status, made = await _post(gateway, http, {"name": "bulk", "weight": 0.5, "max_queued": 0, "priority": "batch"})
    assert status == 201 and [made[f] for f in FIELDS] == [0.5, 0, "batch"]
    url = gateway.u(f"/api/keys/{made['id']}")
    async with http.patch(url, headers=bearer(ADMIN_KEY), json={"weight": 3, "priority": "interactive"}) as r:
        assert [(await r.json())[f] for f in FIELDS] == [3.0, 0, "interactive"]
    for field, value in [
        ("weight", 0), ("weight", -1), ("weight", True), ("weight", "x"), ("weight", 10**7),
        ("max_queued", -1), ("max_queued", 1.5), ("max_queued", 10**6), ("priority", "urgent"), ("priority", 1),
    ]:  # fmt: skip
        status, body = await _post(gateway, http, {"name": "x", field: value})
        assert status == 400 and body["error"].startswith(f"{field} must be"), (field, value, body)


@pytest.fixture
def cli_env(database_url, db):
    return {"DATABASE_URL": database_url, "SECRET_KEY": SECRET}


def test_cli_sets_and_updates_queue_fields(cli_env):
    made = run_cli("keys", "create", "--name", "c", "--weight", "2.5", "--priority", "batch", env=cli_env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    shown = json.loads(run_cli("keys", "show", key[:12], env=cli_env).stdout)
    assert [shown[f] for f in FIELDS] == [2.5, 32, "batch"]
    updated = run_cli("keys", "update", key[:12], "--max-queued", "4", "--priority", "interactive", env=cli_env)
    assert [json.loads(updated.stdout)[f] for f in FIELDS] == [2.5, 4, "interactive"]
    assert "PRIORITY" in run_cli("keys", "list", env=cli_env).stdout
    bad = run_cli("keys", "create", "--name", "x", "--weight", "0", env=cli_env)
    assert bad.returncode == 2 and "weight must be" in bad.stderr and "Traceback" not in bad.stderr
