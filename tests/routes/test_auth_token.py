"""POST /api/auth/token, and tokens accepted wherever a key is, through the real app on a real socket."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from proxy.keys.access_tokens import TokenSigner
from proxy.keys.store import KEY_STORE
from tests.support.factories import ADMIN_KEY, SECRET, USER_KEY, bearer, make_settings, start_gateway

UNAUTHORIZED = {"error": "invalid or missing API key"}


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), access_token_expire_minutes=5)
    return await start_gateway(aiohttp_server, settings)


async def _token(http, gateway, key):
    async with http.post(gateway.u("/api/auth/token"), headers=bearer(key)) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Cache-Control"] == "no-store"
        return await r.json()


async def _status(http, gateway, path, token):
    async with http.get(gateway.u(path), headers=bearer(token)) as r:
        return r.status, await r.json()


async def test_a_token_authenticates_with_its_keys_role(gateway, http):
    issued = await _token(http, gateway, ADMIN_KEY)
    assert issued["token_type"] == "bearer" and issued["expires_in"] == 300
    assert issued["access_token"].startswith("olt_")
    assert (await _status(http, gateway, "/api/keys", issued["access_token"]))[0] == 200

    user = (await _token(http, gateway, USER_KEY))["access_token"]
    assert (await _status(http, gateway, "/api/keys", user))[0] == 403
    async with http.post(
        gateway.u("/api/chat"), headers=bearer(user), json={"model": "llama3.2", "messages": [], "stream": False}
    ) as r:
        assert r.status == 200


async def test_x_api_key_can_carry_a_token_too(gateway, http):
    token = (await _token(http, gateway, ADMIN_KEY))["access_token"]
    async with http.get(gateway.u("/api/keys"), headers={"x-api-key": token}) as r:
        assert r.status == 200


async def test_tampered_expired_and_foreign_tokens_get_the_same_401(gateway, http):
    token = (await _token(http, gateway, ADMIN_KEY))["access_token"]
    body, signature = token.split(".")
    key_id = await _admin_id(http, gateway)
    for bad in (
        f"{body}.{'A' * len(signature)}",
        f"{body[:-1]}B.{signature}",
        TokenSigner(SECRET).issue(key_id, "admin", 0, int(time.time()) - 1),
        TokenSigner("another-secret-" + "y" * 30).issue(key_id, "admin", 0, int(time.time()) + 60),
        TokenSigner(SECRET).issue(uuid.uuid4(), "admin", 0, int(time.time()) + 60),
    ):
        assert await _status(http, gateway, "/api/keys", bad) == (401, UNAUTHORIZED), bad


async def _admin_id(http, gateway) -> uuid.UUID:
    async with http.get(gateway.u("/api/keys"), headers=bearer(ADMIN_KEY)) as r:
        keys = (await r.json())["keys"]
    return uuid.UUID(next(k["id"] for k in keys if k["role"] == "admin"))


@pytest.mark.parametrize("change", [{"is_active": False}, {"role": "user"}, {"expires_at": "2000-01-01T00:00:00Z"}])
async def test_a_token_dies_with_its_key(gateway, http, change):
    async with http.post(
        gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "short", "role": "admin"}
    ) as r:
        created = await r.json()
    token = (await _token(http, gateway, created["key"]))["access_token"]
    assert (await _status(http, gateway, "/api/keys", token))[0] == 200
    async with http.patch(gateway.u(f"/api/keys/{created['id']}"), headers=bearer(ADMIN_KEY), json=change) as r:
        assert r.status == 200
    assert await _status(http, gateway, "/api/keys", token) == (401, UNAUTHORIZED)


async def test_revoked_key_revokes_its_tokens(gateway, http):
    async with http.post(gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "gone"}) as r:
        created = await r.json()
    token = (await _token(http, gateway, created["key"]))["access_token"]
    async with http.delete(gateway.u(f"/api/keys/{created['id']}"), headers=bearer(ADMIN_KEY)) as r:
        assert r.status == 200
    async with http.get(gateway.u("/api/stats"), headers=bearer(token)) as r:
        assert r.status == 401


async def test_a_token_cannot_renew_itself_and_no_key_gets_none(gateway, http):
    token = (await _token(http, gateway, USER_KEY))["access_token"]
    async with http.post(gateway.u("/api/auth/token"), headers=bearer(token)) as r:
        assert r.status == 403
    async with http.post(gateway.u("/api/auth/token")) as r:
        assert r.status == 401 and await r.json() == UNAUTHORIZED


async def test_a_token_never_outlives_its_key(gateway, http):
    soon = datetime.now(UTC) + timedelta(seconds=90)
    async with http.post(
        gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "brief", "expires_at": soon.isoformat()}
    ) as r:
        key = (await r.json())["key"]
    assert 0 < (await _token(http, gateway, key))["expires_in"] <= 90


async def test_known_key_tokens_cost_no_database_round_trip(gateway, http, monkeypatch):
    token = (await _token(http, gateway, USER_KEY))["access_token"]
    store = gateway.app[KEY_STORE]
    reads = []
    original = store.get

    async def counting_get(key_id):
        reads.append(key_id)
        return await original(key_id)

    monkeypatch.setattr(store, "get", counting_get)
    for _ in range(5):
        assert (await _status(http, gateway, "/api/stats", token))[0] == 200
    assert len(reads) == 1  # the first use loads the key by id; the cache answers after that


async def test_tokens_and_keys_never_reach_a_log_line(gateway, http, caplog):
    caplog.set_level(logging.DEBUG)
    token = (await _token(http, gateway, ADMIN_KEY))["access_token"]
    await _status(http, gateway, "/api/keys", token)
    await _status(http, gateway, "/api/keys", token[:-3] + "AAA")
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "proxy.access" in {r.name for r in caplog.records}
    assert token not in text and token[:-3] not in text and ADMIN_KEY not in text


async def _new_key(http, gateway, **fields) -> dict:
    async with http.post(gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "k", **fields}) as r:
        assert r.status == 201
        return await r.json()


async def _patch(http, gateway, key_id, change) -> int:
    async with http.patch(gateway.u(f"/api/keys/{key_id}"), headers=bearer(ADMIN_KEY), json=change) as r:
        return r.status


@pytest.mark.parametrize(
    ("start", "there_and_back"),
    [
        ("user", [{"role": "admin"}, {"role": "user"}]),
        ("admin", [{"role": "user"}, {"role": "admin"}]),
        ("user", [{"role": "admin", "name": "renamed"}, {"role": "user"}]),
    ],
)
async def test_a_change_undone_does_not_bring_old_tokens_back(gateway, http, start, there_and_back):
    created = await _new_key(http, gateway, role=start)
    token = (await _token(http, gateway, created["key"]))["access_token"]
    assert (await _status(http, gateway, "/api/stats", token))[0] == 200
    for change in there_and_back:
        assert await _patch(http, gateway, created["id"], change) == 200
    assert await _status(http, gateway, "/api/stats", token) == (401, UNAUTHORIZED)
    # The key itself, and a token issued now, work as before.
    assert (await _status(http, gateway, "/api/stats", created["key"]))[0] == 200
    fresh = (await _token(http, gateway, created["key"]))["access_token"]
    assert (await _status(http, gateway, "/api/stats", fresh))[0] == 200


async def test_edits_that_are_not_role_or_state_keep_tokens(gateway, http):
    created = await _new_key(http, gateway)
    token = (await _token(http, gateway, created["key"]))["access_token"]
    for change in ({"name": "other"}, {"rate_limit": 99}, {"is_active": True}, {"role": "user"}):
        assert await _patch(http, gateway, created["id"], change) == 200
    assert (await _status(http, gateway, "/api/stats", token))[0] == 200


@pytest.mark.parametrize("revoke", ["DELETE", "PATCH is_active=false"])
async def test_revocation_is_final_for_the_key_and_its_tokens(gateway, http, revoke):
    created = await _new_key(http, gateway)
    token = (await _token(http, gateway, created["key"]))["access_token"]
    if revoke == "DELETE":
        async with http.delete(gateway.u(f"/api/keys/{created['id']}"), headers=bearer(ADMIN_KEY)) as r:
            assert r.status == 200
    else:
        assert await _patch(http, gateway, created["id"], {"is_active": False}) == 200
    async with http.patch(
        gateway.u(f"/api/keys/{created['id']}"), headers=bearer(ADMIN_KEY), json={"is_active": True, "name": "back"}
    ) as r:
        assert r.status == 409
        assert "cannot be reactivated" in (await r.json())["error"]
    async with http.get(gateway.u(f"/api/keys/{created['id']}"), headers=bearer(ADMIN_KEY)) as r:
        assert (await r.json())["is_active"] is False  # nothing of the refused edit applied
    for credential in (token, created["key"]):
        assert await _status(http, gateway, "/api/stats", credential) == (401, UNAUTHORIZED)
