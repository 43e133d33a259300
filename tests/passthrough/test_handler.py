"""The pass-through, driven by the real `ollama` and `openai` clients and compared byte for byte."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import ollama
import openai
import pytest
from aiohttp import web
from yarl import URL

from tests.support.factories import ADMIN_KEY, USER_KEY, bearer, make_settings, start_gateway
from tests.support.fake_ollama import FAKE_STATE, create_fake_ollama
from tests.support.pacing import assert_paced, line_arrivals
from tests.support.polling import wait_until

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}


@pytest.fixture
async def gateway(aiohttp_server, database_url, db, fake, sink):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""))
    return await start_gateway(aiohttp_server, settings, sink=sink)


def _as_user(monkeypatch, gateway, key=USER_KEY):
    """Exactly what a user does: point OLLAMA_HOST at the gateway and set OLLAMA_API_KEY."""
    monkeypatch.setenv("OLLAMA_HOST", str(gateway.url))
    monkeypatch.setenv("OLLAMA_API_KEY", key)
    return ollama.AsyncClient()


def _dump(value):
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump() if hasattr(value, "model_dump") else value


async def test_ollama_client_gets_what_ollama_gives(monkeypatch, gateway, fake):
    direct = ollama.AsyncClient(host=str(fake.make_url("")))
    through = _as_user(monkeypatch, gateway)
    calls = [
        ("chat", dict(model="llama3.2", messages=CHAT["messages"])),
        ("generate", dict(model="llama3.2", prompt="Why is the sky blue?")),
        ("embed", dict(model="nomic-embed-text", input=["a", "b"])),
        ("list", {}),
        ("show", dict(model="llama3.2")),
    ]
    for name, kwargs in calls:
        assert _dump(await getattr(through, name)(**kwargs)) == _dump(await getattr(direct, name)(**kwargs)), name
    for name in ("chat", "generate"):
        kwargs = dict(calls[0][1] if name == "chat" else calls[1][1], stream=True)
        streamed_direct = [_dump(part) async for part in await getattr(direct, name)(**kwargs)]
        streamed_through = [_dump(part) async for part in await getattr(through, name)(**kwargs)]
        assert streamed_through == streamed_direct and len(streamed_through) > 3


async def test_pull_needs_admin_and_works_with_it(monkeypatch, gateway, fake):
    with pytest.raises(ollama.ResponseError) as refused:
        await _as_user(monkeypatch, gateway).pull("tinyllama")
    assert refused.value.status_code == 403
    admin = _as_user(monkeypatch, gateway, ADMIN_KEY)
    direct = ollama.AsyncClient(host=str(fake.make_url("")))
    progress = [_dump(p) async for p in await admin.pull("tinyllama", stream=True)]
    expected = [_dump(p) async for p in await direct.pull("tinyllama", stream=True)]
    assert progress == expected and progress[-1]["status"] == "success"
    assert _dump(await admin.pull("tinyllama")) == {
        "status": "success",
        "digest": None,
        "total": None,
        "completed": None,
    }


async def test_openai_client_chat_stream_and_not(gateway, fake, sink):
    async with (
        openai.AsyncOpenAI(base_url=str(fake.make_url("/v1")), api_key="ollama") as direct,
        openai.AsyncOpenAI(base_url=str(gateway.url / "v1"), api_key=USER_KEY) as through,
    ):
        await _chat_both_ways(direct, through, sink)


async def _chat_both_ways(direct: openai.AsyncOpenAI, through: openai.AsyncOpenAI, sink) -> None:
    messages = CHAT["messages"]
    plain = await through.chat.completions.create(model="llama3.2", messages=messages)
    assert (
        plain.model_dump() == (await direct.chat.completions.create(model="llama3.2", messages=messages)).model_dump()
    )
    assert plain.usage.completion_tokens > 0

    kwargs = dict(model="llama3.2", messages=messages, stream=True, stream_options={"include_usage": True})
    chunks = [c.model_dump() async for c in await through.chat.completions.create(**kwargs)]
    assert chunks == [c.model_dump() async for c in await direct.chat.completions.create(**kwargs)]
    assert chunks[-1]["usage"]["completion_tokens"] == plain.usage.completion_tokens
    measured = [r for r in sink.records if r.endpoint == "/v1/chat/completions"]
    assert [r.completion_tokens for r in measured] == [plain.usage.completion_tokens] * 2
    assert not any(r.usage_estimated for r in measured)


STREAMS = [
    ("/api/chat", {**CHAT}),
    ("/api/generate", {"model": "llama3.2", "prompt": "hi"}),
    ("/api/generate", {"model": "big-context", "prompt": "hi"}),
    ("/api/chat", {"model": "error-mid", "messages": CHAT["messages"]}),
    ("/api/pull", {"model": "tinyllama"}),
    ("/v1/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}}),
    ("/v1/completions", {"model": "llama3.2", "prompt": "hi", "stream": True}),
    ("/v1/responses", {"model": "llama3.2", "input": "hi", "stream": True}),
    ("/v1/messages", {"model": "llama3.2", "max_tokens": 64, "messages": CHAT["messages"], "stream": True}),
    ("/api/embed", {"model": "nomic-embed-text", "input": "hi"}),
    ("/api/chat", {"model": "nope", "messages": []}),
]


@pytest.mark.parametrize("path, body", STREAMS, ids=[f"{p}:{b['model']}" for p, b in STREAMS])
async def test_status_type_and_bytes_equal_direct(gateway, fake, http, path, body):
    async def fetch(url, headers):
        async with http.post(url, json=body, headers=headers) as r:
            return r.status, r.headers.get("Content-Type"), await r.read()

    direct = await fetch(str(fake.make_url(path)), {})
    through = await fetch(gateway.u(path), bearer(ADMIN_KEY))
    assert through == direct


async def test_lines_arrive_as_they_are_sent(gateway, fake, http):
    interval = 0.1
    fake.app[FAKE_STATE].token_interval = interval
    arrivals = await line_arrivals(http, gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY))
    assert_paced(arrivals, interval)


@pytest.mark.parametrize("stream", [True, False])
async def test_client_gone_closes_the_upstream(gateway, fake, http, stream):
    state = fake.app[FAKE_STATE]
    state.token_interval = 0.2
    body = {**CHAT, "model": "llama3.2" if stream else "hang", "stream": stream}
    if stream:
        response = await http.post(gateway.u("/api/chat"), json=body, headers=bearer(USER_KEY))
        await response.content.readline()
        response.close()
    else:
        # No headers ever come back from `hang`: the client gives up while waiting for them.
        waiting = asyncio.create_task(http.post(gateway.u("/api/chat"), json=body, headers=bearer(USER_KEY)))
        await wait_until(lambda: state.active == 1, "the request reached Ollama")
        waiting.cancel()
    # Functional bound: without propagation the fake would wait for the whole generation
    # (or forever, for `hang`).
    assert await state.wait_cancelled(timeout=2.0)


async def test_user_key_cannot_manage_models(gateway, http):
    for method, path, body in (
        ("POST", "/api/pull", {"model": "x"}),
        ("DELETE", "/api/delete", {"model": "x"}),
        ("POST", "/api/create", {"model": "x"}),
        ("POST", "/api/copy", {"source": "a"}),
        ("POST", "/api/blobs/sha256:" + "0" * 64, None),
        ("POST", "/api/me", None),
    ):
        async with http.request(method, gateway.u(path), json=body, headers=bearer(USER_KEY)) as r:
            assert r.status == 403, path
            assert "admin" in (await r.json())["error"]


async def test_allow_list_is_enforced_and_filters_listings(gateway, http):
    async with http.post(
        gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "narrow", "models": ["llama3.2"]}
    ) as r:
        key = (await r.json())["key"]
    async with http.post(gateway.u("/api/chat"), json={**CHAT, "model": "qwen3:0.6b"}, headers=bearer(key)) as r:
        assert r.status == 403 and "not allowed" in (await r.json())["error"]
    async with http.post(gateway.u("/api/pull"), json={"name": "qwen3:0.6b"}, headers=bearer(ADMIN_KEY)) as r:
        assert r.status == 200  # the admin key has no allow-list
    async with http.post(
        gateway.u("/v1/chat/completions"), json={**CHAT, "model": "qwen3:0.6b"}, headers=bearer(key)
    ) as r:
        assert r.status == 403 and (await r.json())["error"]["type"] == "permission_error"
    async with http.post(gateway.u("/api/chat"), json={**CHAT, "stream": False}, headers=bearer(key)) as r:
        assert r.status == 200
    async with http.get(gateway.u("/api/tags"), headers=bearer(key)) as r:
        assert [m["name"] for m in (await r.json())["models"]] == ["llama3.2:latest"]
    async with http.get(gateway.u("/v1/models"), headers=bearer(key)) as r:
        assert [m["id"] for m in (await r.json())["data"]] == ["llama3.2:latest"]
    async with http.get(gateway.u("/api/models"), headers=bearer(key)) as r:
        assert [m["name"] for m in (await r.json())["models"]] == ["llama3.2:latest"]
    async with http.get(gateway.u("/api/tags"), headers=bearer(USER_KEY)) as r:
        assert len((await r.json())["models"]) == 3
    async with http.get(gateway.u("/api/models"), headers=bearer(USER_KEY)) as r:
        assert len((await r.json())["models"]) == 3


async def test_cloud_models_need_an_explicit_allow_list_entry(gateway, http):
    async with http.post(
        gateway.u("/api/chat"), json={**CHAT, "model": "gpt-oss:120b-cloud"}, headers=bearer(USER_KEY)
    ) as r:
        assert r.status == 403


async def test_probes_of_the_stock_cli_need_no_key(gateway, http):
    async with http.head(gateway.u("/")) as r:
        assert r.status == 200
    async with http.get(gateway.u("/api/version")) as r:
        assert (await r.json())["version"]
    async with http.get(gateway.u("/api/tags")) as r:
        assert r.status == 401


async def test_headers_path_and_query_reach_ollama_as_sent(gateway, fake, http):
    headers = {
        **bearer(USER_KEY),
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "1",
        "X-Custom": "kept",
        "User-Agent": "ollama-python/0.6.3",
    }
    # Built as text: yarl would normalise y=%2F to y=/ before the request leaves.
    url = URL(str(gateway.url).rstrip("/") + "/v1/models/library%2Fllama3.2:latest?x=1&y=%2F", encoded=True)
    async with http.get(url, headers=headers) as r:
        await r.read()
    seen = fake.app[FAKE_STATE].requests[-1]
    assert seen.raw_path == "/v1/models/library%2Fllama3.2:latest?x=1&y=%2F"
    assert seen.headers["X-Custom"] == "kept" and seen.headers["User-Agent"] == "ollama-python/0.6.3"
    for gone in ("Authorization", "x-api-key", "X-Hop"):
        assert gone not in seen.headers
    assert seen.headers["Host"] == f"127.0.0.1:{fake.port}"


async def test_path_prefix_in_base_url(aiohttp_server, database_url, db, http):
    outer = web.Application()
    outer.add_subapp("/ollama", create_fake_ollama())
    prefixed = await aiohttp_server(outer)
    settings = make_settings(database_url, ollama_base_url=prefixed.make_url("/ollama"))
    gateway = await start_gateway(aiohttp_server, settings)
    async with http.post(gateway.u("/api/chat"), json={**CHAT, "stream": False}, headers=bearer(USER_KEY)) as r:
        assert r.status == 200 and (await r.json())["done"] is True


async def test_ollama_down_is_a_fast_502_in_each_shape(aiohttp_server, database_url, db, http):
    gateway = await start_gateway(aiohttp_server, make_settings(database_url))  # port 9: nothing listens
    async with http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY)) as r:
        assert r.status == 502 and (await r.json()) == {"error": "Ollama is unreachable"}
    async with http.post(gateway.u("/v1/chat/completions"), json=CHAT, headers=bearer(USER_KEY)) as r:
        assert r.status == 502 and (await r.json())["error"]["message"] == "Ollama is unreachable"


async def test_silent_ollama_is_a_504_and_a_cut_stream(aiohttp_server, database_url, db, fake, http, sink):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), upstream_read_timeout=0.3)
    gateway = await start_gateway(aiohttp_server, settings, sink=sink)
    async with http.post(gateway.u("/api/chat"), json={**CHAT, "model": "hang"}, headers=bearer(USER_KEY)) as r:
        assert r.status == 504 and "did not answer" in (await r.json())["error"]
    async with http.post(gateway.u("/api/chat"), json={**CHAT, "model": "quiet"}, headers=bearer(USER_KEY)) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    assert sink.records[-1].error == "upstream timed out mid-response"


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
async def test_a_slow_stream_that_keeps_talking_outlives_the_read_timeout(
    aiohttp_server, database_url, db, fake, http, sink, path
):
    """The read timeout bounds silences, not answers: lines half a timeout apart run to the end."""
    fake.app[FAKE_STATE].token_interval = 0.15
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), upstream_read_timeout=0.3)
    gateway = await start_gateway(aiohttp_server, settings, sink=sink)
    async with http.post(gateway.u(path), json={**CHAT, "stream": True}, headers=bearer(USER_KEY)) as r:
        assert r.status == 200
        lines = [line async for line in r.content if line.strip()]
    assert len(lines) >= 6  # paced 0.15 s apart: the stream lasted over twice the timeout
    await wait_until(lambda: sink.records and sink.records[-1].endpoint == path, "the request recorded")
    assert sink.records[-1].error is None and sink.records[-1].completion_tokens


async def test_ollama_dying_mid_stream_cuts_the_client_stream(gateway, http, sink):
    before = len(sink.records)
    async with http.post(gateway.u("/api/chat"), json={**CHAT, "model": "die-mid"}, headers=bearer(USER_KEY)) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    await wait_until(lambda: len(sink.records) > before, "the request recorded")  # once its handler is done
    record = sink.records[-1]
    assert record.error == "upstream connection lost mid-response"
    assert record.usage_estimated and record.completion_tokens == 3


async def test_blob_upload_streams_through(gateway, fake, http):
    import hashlib

    block = b"\x00gguf" * 200_000  # 1 MB
    digest = hashlib.sha256(block * 40).hexdigest()

    async def body():
        for _ in range(40):
            yield block

    async with http.post(gateway.u(f"/api/blobs/sha256:{digest}"), data=body(), headers=bearer(ADMIN_KEY)) as r:
        assert r.status == 201 and await r.read() == b""
    assert fake.app[FAKE_STATE].blobs[f"sha256:{digest}"] == 40 * len(block)
    async with http.head(gateway.u(f"/api/blobs/sha256:{digest}"), headers=bearer(ADMIN_KEY)) as r:
        assert r.status == 200


async def test_bad_bodies_get_clear_4xx_in_each_shape(aiohttp_server, database_url, db, fake, http):
    settings = make_settings(database_url, ollama_base_url=fake.make_url(""), max_json_body_size=1024)
    gateway = await start_gateway(aiohttp_server, settings)
    async with http.post(gateway.u("/api/chat"), data=b"{nope", headers=bearer(USER_KEY)) as r:
        assert r.status == 400 and "invalid JSON" in (await r.json())["error"]
    async with http.post(gateway.u("/v1/chat/completions"), data=b"{nope", headers=bearer(USER_KEY)) as r:
        assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"
    big = json.dumps({**CHAT, "images": ["A" * 4096]})
    async with http.post(gateway.u("/api/chat"), data=big, headers=bearer(USER_KEY)) as r:
        assert r.status == 413 and "exceeds" in (await r.json())["error"]
    async with http.post(gateway.u("/api/nothing-here"), json=CHAT, headers=bearer(USER_KEY)) as r:
        assert r.status == 404 and "error" in await r.json()


async def test_usage_is_measured_on_the_side(gateway, http, sink):
    async with http.post(gateway.u("/api/chat"), json=CHAT, headers=bearer(USER_KEY)) as r:
        lines = [json.loads(line) for line in (await r.read()).splitlines()]
    final = lines[-1]
    record = sink.records[-1]
    assert (record.prompt_tokens, record.completion_tokens) == (final["prompt_eval_count"], final["eval_count"])
    assert record.model == "llama3.2" and record.status_code == 200 and record.ttfb is not None
    assert record.bytes_out == sum(len(json.dumps(x, separators=(",", ":"))) + 1 for x in lines)


async def _narrow_key(http, gateway, models, role="user"):
    async with http.post(
        gateway.u("/api/keys"), headers=bearer(ADMIN_KEY), json={"name": "n", "models": models, "role": role}
    ) as r:
        return (await r.json())["key"]


# qwen3:0.6b is outside the allow-list; each request names it in a field the route's handler reads.
REFUSED = [
    ("POST", "/api/chat", {"Model": "qwen3:0.6b", "messages": []}, "user"),  # Go: case-insensitive keys
    ("POST", "/api/chat", {"MODEL": "qwen3:0.6b", "messages": []}, "user"),
    ("POST", "/api/chat", {"model": "llama3.2", "MODEL": "qwen3:0.6b"}, "user"),  # the last duplicate wins
    ("POST", "/api/chat", {"Model": "qwen3:0.6b", "model": "llama3.2"}, "user"),  # and the cloud proxy reads `model`
    ("POST", "/api/show", {"name": "qwen3:0.6b", "model": "llama3.2"}, "user"),  # cmp.Or(Model, Name)
    ("POST", "/api/show", {"NAME": "qwen3:0.6b"}, "user"),
    ("POST", "/api/generate", {"model": "qwen3:0.6b", "prompt": "hi"}, "user"),
    ("POST", "/api/embed", {"mOdEl": "qwen3:0.6b", "input": "hi"}, "user"),
    ("POST", "/api/copy", {"ſource": "qwen3:0.6b", "destination": "llama3.2"}, "admin"),  # Unicode folding
    ("POST", "/api/copy", {"source": "llama3.2", "destination": "qwen3:0.6b"}, "admin"),
    ("POST", "/api/create", {"model": "llama3.2", "from": "qwen3:0.6b"}, "admin"),
    ("POST", "/api/create", {"name": "qwen3:0.6b", "FROM": "llama3.2"}, "admin"),
    ("POST", "/api/pull", {"name": "qwen3:0.6b"}, "admin"),
    ("DELETE", "/api/delete", {"model": "llama3.2", "Name": "qwen3:0.6b"}, "admin"),
    ("POST", "/v1/chat/completions", {**CHAT, "model": "qwen3:0.6b"}, "user"),
    ("POST", "/v1/chat/completions", {**CHAT, "model": "llama3.2", "Model": "qwen3:0.6b"}, "user"),
    ("POST", "/v1/embeddings", {"model": "qwen3:0.6b", "input": "hi"}, "user"),
    ("POST", "/v1/completions", {"MODEL": "qwen3:0.6b", "prompt": "hi"}, "user"),
    ("GET", "/v1/models/qwen3:0.6b", None, "user"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "role"), REFUSED, ids=[f"{p}:{','.join(b or ['path'])}" for _, p, b, _ in REFUSED]
)
async def test_allow_list_sees_every_name_ollama_could_act_on(gateway, http, sink, method, path, body, role):
    key = await _narrow_key(http, gateway, ["llama3.2"], role)
    async with http.request(method, gateway.u(path), json=body, headers=bearer(key)) as r:
        assert r.status == 403
        assert "qwen3:0.6b" in json.dumps(await r.json())
    assert sink.records[-1].model is not None  # the refused request is logged with its model


async def test_fields_a_handler_never_reads_are_not_checked(gateway, http):
    key = await _narrow_key(http, gateway, ["llama3.2"])
    # ChatRequest has no `name` or `source` (https://github.com/ollama/ollama/blob/v0.32.15/api/types.go):
    # Ollama runs llama3.2.
    body = {**CHAT, "stream": False, "name": "qwen3:0.6b", "source": "qwen3:0.6b"}
    async with http.post(gateway.u("/api/chat"), json=body, headers=bearer(key)) as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("path", "body", "recorded"),
    [
        ("/api/show", {"name": "qwen3:0.6b", "model": "llama3.2"}, "llama3.2"),  # cmp.Or(Model, Name)
        ("/api/show", {"name": "qwen3:0.6b"}, "qwen3:0.6b"),
        ("/api/show", {"model": "qwen3:0.6b", "MODEL": "llama3.2"}, "llama3.2"),  # Go keeps the last
        ("/api/chat", {**CHAT, "stream": False, "name": "qwen3:0.6b"}, "llama3.2"),
    ],
)
async def test_recorded_model_is_the_one_ollama_acts_on(gateway, http, sink, path, body, recorded):
    async with http.post(gateway.u(path), json=body, headers=bearer(USER_KEY)) as r:
        assert r.status == 200
        await r.read()
    assert sink.records[-1].model == recorded


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", CHAT),
        ("/api/chat", {**CHAT, "stream": False}),
        ("/api/generate", {"model": "llama3.2", "prompt": "hi"}),
        ("/v1/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}}),
        ("/v1/chat/completions", CHAT),
    ],
)
async def test_recorded_model_is_the_one_the_answer_reports(gateway, fake, http, sink, path, body):
    fake.app[FAKE_STATE].remote_models["llama3.2"] = "gpt-oss:20b"
    async with http.post(gateway.u(path), json=body, headers=bearer(USER_KEY)) as r:
        assert r.status == 200
        await r.read()
    assert sink.records[-1].model == "gpt-oss:20b"


@pytest.mark.parametrize("model", ["gpt-oss:120b-CLOUD", "gpt-oss:Cloud", "gpt-oss:120b-cloud "])
async def test_cloud_rule_matches_as_ollama_does(gateway, http, model):
    async with http.post(gateway.u("/api/chat"), json={**CHAT, "model": model}, headers=bearer(USER_KEY)) as r:
        assert r.status == 403


async def test_compressed_bodies_pass_for_admins_only(gateway, fake, http):
    import gzip

    packed = gzip.compress(json.dumps({**CHAT, "stream": False}).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    async with http.post(gateway.u("/api/chat"), data=packed, headers={**headers, **bearer(USER_KEY)}) as r:
        assert r.status == 400 and "compressed" in (await r.json())["error"]
    async with http.post(gateway.u("/api/chat"), data=packed, headers={**headers, **bearer(ADMIN_KEY)}) as r:
        await r.read()
    seen = fake.app[FAKE_STATE].requests[-1]
    # Still gzip on arrival (the fake's server inflates it): sent as the client sent it, not inflated.
    assert seen.headers["Content-Encoding"] == "gzip" and seen.json_body == {**CHAT, "stream": False}


async def test_transcription_model_is_checked(gateway, http):
    key = await _narrow_key(http, gateway, ["whisper"])
    form = aiohttp.FormData()
    form.add_field("model", "qwen3:0.6b")
    form.add_field("file", b"RIFF....", filename="a.wav", content_type="audio/wav")
    async with http.post(gateway.u("/v1/audio/transcriptions"), data=form, headers=bearer(key)) as r:
        assert r.status == 403 and "qwen3:0.6b" in (await r.json())["error"]["message"]


async def test_absolute_form_target_stays_on_the_upstream(gateway, fake):
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    writer.write(b"GET http://evil.example:9/api/version HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 200") and b'"version"' in response
    assert fake.app[FAKE_STATE].requests[-1].raw_path == "/api/version"


async def test_head_on_a_filtered_listing_is_passed_through(gateway, fake, http):
    key = await _narrow_key(http, gateway, ["llama3.2"])
    async with http.head(gateway.u("/api/tags"), headers=bearer(key)) as r:
        direct = await http.head(fake.make_url("/api/tags"))
        assert r.status == 200 and r.headers.get("Content-Length") == direct.headers.get("Content-Length")
