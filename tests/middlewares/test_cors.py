"""CORS: preflights of allowed origins answered without a key, allowed origins echoed, others ignored."""

from __future__ import annotations

from tests.support.factories import USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_ollama import FAKE_STATE

ALLOWED = "https://app.example.com"
PREFLIGHT = {
    "Origin": ALLOWED,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os, x-evil",
}


async def _gateway(aiohttp_server, database_url, fake, origins):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), cors_origins=origins)
    return await start_gateway(aiohttp_server, settings)


async def test_preflight_from_an_allowed_origin_needs_no_key(aiohttp_server, database_url, db, fake, http):
    gateway = await _gateway(aiohttp_server, database_url, fake, (ALLOWED, "http://localhost:3000"))
    async with http.options(gateway.u("/api/chat"), headers=PREFLIGHT) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "Origin" in r.headers["Vary"]
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        granted = {h.strip() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert granted == {"authorization", "content-type", "x-stainless-os"}


async def test_other_origins_get_no_cors_fields(aiohttp_server, database_url, db, fake, http):
    gateway = await _gateway(aiohttp_server, database_url, fake, (ALLOWED,))
    for origin in ("https://evil.example.com", "https://app.example.com.evil.com", "null"):
        async with http.options(gateway.u("/api/chat"), headers={**PREFLIGHT, "Origin": origin}) as r:
            assert r.status == 401  # an ordinary keyless request, refused as such
            assert not any(name.lower().startswith("access-control-") for name in r.headers)
        async with http.get(gateway.u("/api/tags"), headers={**bearer(USER_KEY), "Origin": origin}) as r:
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers


async def test_without_cors_origins_nothing_is_allowed(aiohttp_server, database_url, db, fake, http):
    gateway = await _gateway(aiohttp_server, database_url, fake, ())
    async with http.options(gateway.u("/api/chat"), headers=PREFLIGHT) as r:
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_answers_to_an_allowed_origin_carry_it_streamed_and_errors_too(
    aiohttp_server, database_url, db, fake, http
):
    gateway = await _gateway(aiohttp_server, database_url, fake, (ALLOWED,))
    headers = {**bearer(USER_KEY), "Origin": ALLOWED}
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(gateway.u("/api/chat"), json=body, headers=headers) as r:
        assert r.status == 200 and r.headers.get("Transfer-Encoding") == "chunked"
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "X-Request-ID" in r.headers["Access-Control-Expose-Headers"]
        await r.read()
    async with http.get(gateway.u("/api/keys"), headers={"Origin": ALLOWED}) as r:
        assert r.status == 401 and r.headers["Access-Control-Allow-Origin"] == ALLOWED
    # CORS is the gateway's: Ollama never sees the Origin (it would refuse a foreign one with 403).
    assert all("Origin" not in seen.headers for seen in fake.app[FAKE_STATE].requests)


async def test_star_echoes_any_origin(aiohttp_server, database_url, db, fake, http):
    gateway = await _gateway(aiohttp_server, database_url, fake, ("*",))
    async with http.options(
        gateway.u("/v1/chat/completions"), headers={**PREFLIGHT, "Origin": "http://anything.test:8080"}
    ) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "http://anything.test:8080"
