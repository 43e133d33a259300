"""The fake Ollama, driven directly by the real ollama and openai clients and by raw HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import ollama
import openai
import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from yarl import URL

from tests.support.fake_ollama import FAKE_STATE, REPLY_TOKENS, create_fake_ollama
from tests.support.polling import wait_until

Headers = CIMultiDictProxy[str]
REPLY = "".join(REPLY_TOKENS)
PROMPT = "Why is the sky blue?"  # 5 words: prompt_eval_count 15


@pytest.fixture
async def fake(aiohttp_server: Any) -> TestServer:
    return await aiohttp_server(create_fake_ollama())  # TestServer turns handler_cancellation on


def base_url(server: TestServer) -> str:
    return f"http://{server.host}:{server.port}"


def openai_client(server: TestServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url(server)}/v1", api_key="x", max_retries=0)


@pytest.fixture
async def ollama_api(fake: TestServer) -> AsyncIterator[ollama.AsyncClient]:
    client = ollama.AsyncClient(host=base_url(fake))  # explicit: OLLAMA_HOST is read at import
    yield client
    await client.close()


@pytest.fixture
async def openai_api(fake: TestServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai_client(fake) as client:
        yield client


async def fetch(server: TestServer, method: str, path: str, **kwargs: Any) -> tuple[int, Headers, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, base_url(server) + path, **kwargs) as response:
            return response.status, response.headers, await response.read()


def chat_body(model: str = "llama3.2", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], **extra}


# --- The real ollama client ---------------------------------------------------------------


async def test_ollama_chat_streams_one_chunk_per_token(ollama_api: ollama.AsyncClient) -> None:
    parts = [part async for part in await ollama_api.chat(**chat_body(), stream=True)]

    assert [part.message.content for part in parts[:-1]] == list(REPLY_TOKENS)
    final = parts[-1]
    assert (final.done, final.done_reason, final.message.content) == (True, "stop", "")
    assert final.eval_count == len(REPLY_TOKENS)
    assert final.prompt_eval_count == 15
    assert final.total_duration == final.load_duration + final.prompt_eval_duration + final.eval_duration


async def test_ollama_chat_and_generate_without_streaming(ollama_api: ollama.AsyncClient) -> None:
    chat = await ollama_api.chat(**chat_body())
    generated = await ollama_api.generate(model="llama3.2", prompt=PROMPT)

    assert chat.message.content == REPLY and chat.eval_count == len(REPLY_TOKENS)
    assert generated.response == REPLY and generated.done_reason == "stop"
    assert len(generated.context) == 15 + len(REPLY_TOKENS)


async def test_ollama_generate_stream_and_num_predict(ollama_api: ollama.AsyncClient) -> None:
    parts = [part async for part in await ollama_api.generate(model="llama3.2", prompt=PROMPT, stream=True)]
    short = await ollama_api.generate(model="llama3.2", prompt=PROMPT, options={"num_predict": 2})

    assert "".join(part.response for part in parts) == REPLY
    assert parts[-1].context and parts[-1].eval_count == len(REPLY_TOKENS)
    assert (short.response, short.done_reason, short.eval_count) == ("The sky", "length", 2)


async def test_ollama_embed(ollama_api: ollama.AsyncClient) -> None:
    embedded = await ollama_api.embed(model="nomic-embed-text", input=["a b", "c"])

    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 32
    assert embedded.prompt_eval_count == 5


async def test_ollama_list_show_pull_and_delete(fake: TestServer, ollama_api: ollama.AsyncClient) -> None:
    listed = await ollama_api.list()
    shown = await ollama_api.show("llama3.2")
    progress = [step async for step in await ollama_api.pull("tinyllama", stream=True)]
    after_pull = await ollama_api.list()
    await ollama_api.delete("tinyllama")

    assert "llama3.2:latest" in [m.model for m in listed.models]
    assert shown.details.family == "llama" and shown.capabilities == ["completion"]
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    assert any(step.completed == step.total for step in progress if step.total)
    assert "tinyllama:latest" in [m.model for m in after_pull.models]
    assert "tinyllama:latest" not in fake.app[FAKE_STATE].models


async def test_ollama_create_blob_streams_an_upload(
    fake: TestServer, ollama_api: ollama.AsyncClient, tmp_path: Path
) -> None:
    model_file = tmp_path / "model.gguf"
    model_file.write_bytes(b"GGUF" + bytes(200_000))

    digest = await ollama_api.create_blob(model_file)  # an async generator body: chunked

    assert fake.app[FAKE_STATE].blobs == {digest: 200_004}
    assert fake.app[FAKE_STATE].requests[-1].body_length == 200_004


async def test_ollama_client_errors(ollama_api: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as unknown:
        await ollama_api.chat(**chat_body("no-such-model"))
    parts = []
    with pytest.raises(ollama.ResponseError) as mid_stream:
        async for part in await ollama_api.chat(**chat_body("error-mid"), stream=True):
            parts.append(part)

    assert unknown.value.status_code == 404 and unknown.value.error == "model 'no-such-model' not found"
    assert len(parts) == 3 and "unexpectedly stopped" in mid_stream.value.error


# --- The real openai client ---------------------------------------------------------------


async def test_openai_chat_without_streaming(openai_api: openai.AsyncOpenAI) -> None:
    completion = await openai_api.chat.completions.create(**chat_body())

    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        15,
        9,
        24,
    )


async def test_openai_chat_stream_with_include_usage(openai_api: openai.AsyncOpenAI) -> None:
    stream = await openai_api.chat.completions.create(
        **chat_body(), stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content for c in chunks if c.choices) == REPLY
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].choices[0].delta.content == ""
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 24


async def test_openai_chat_stream_carries_usage_only_when_asked(openai_api: openai.AsyncOpenAI) -> None:
    stream = await openai_api.chat.completions.create(**chat_body(), stream=True)

    chunks = [chunk async for chunk in stream]

    assert all(chunk.usage is None and chunk.choices for chunk in chunks)


async def test_openai_completions_embeddings_and_models(aiohttp_server: Any) -> None:
    server = await aiohttp_server(create_fake_ollama(models=["llama3.2:latest", "hf.co/someone/tiny:Q4_K_M"]))
    async with openai_client(server) as client:
        completion = await client.completions.create(model="llama3.2", prompt=PROMPT, max_tokens=3)
        embeddings = await client.embeddings.create(model="llama3.2", input=["one", "two"])
        models = await client.models.list()
        retrieved = await client.models.retrieve("hf.co/someone/tiny:Q4_K_M")  # sent as hf.co%2Fsomeone%2F...

    assert (completion.choices[0].text, completion.choices[0].finish_reason) == ("The sky is", "length")
    assert [len(e.embedding) for e in embeddings.data] == [32, 32]
    assert [m.id for m in models.data] == ["llama3.2:latest", "hf.co/someone/tiny:Q4_K_M"]
    assert (retrieved.id, retrieved.owned_by) == ("hf.co/someone/tiny:Q4_K_M", "someone")
    assert server.app[FAKE_STATE].requests[-1].raw_path == "/v1/models/hf.co%2Fsomeone%2Ftiny:Q4_K_M"


async def test_openai_responses_stream(openai_api: openai.AsyncOpenAI) -> None:
    stream = await openai_api.responses.create(model="llama3.2", input=PROMPT, stream=True)
    events = [event async for event in stream]

    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REPLY
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    usage = events[-1].response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (15, 9, 24)


# --- Raw wire checks -----------------------------------------------------------------------


async def test_native_stream_is_compact_ndjson_with_usage_on_the_last_line(fake: TestServer) -> None:
    status, headers, body = await fetch(fake, "POST", "/api/chat", json=chat_body())
    lines = body.decode().split("\n")

    assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
    assert headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in headers
    assert lines[-1] == "" and len(lines) == len(REPLY_TOKENS) + 2
    for line in lines[:-1]:
        assert line == json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False)
    final = json.loads(lines[-2])
    assert final["done"] is True and final["done_reason"] == "stop"
    for key in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ):
        assert isinstance(final[key], int), key
    assert "eval_count" not in json.loads(lines[0])


async def test_whole_replies_and_model_loads_are_gin_json(fake: TestServer) -> None:
    _, whole_headers, _ = await fetch(
        fake, "POST", "/api/generate", json={"model": "llama3.2", "prompt": "hi", "stream": False}
    )
    _, load_headers, load = await fetch(fake, "POST", "/api/generate", json={"model": "llama3.2"})
    _, _, unload = await fetch(fake, "POST", "/api/chat", json={"model": "llama3.2", "messages": [], "keep_alive": 0})

    assert whole_headers["Content-Type"] == load_headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(load)["done_reason"] == "load" and "eval_count" not in json.loads(load)
    assert json.loads(unload)["done_reason"] == "unload"


async def test_errors_look_like_ollama(fake: TestServer) -> None:
    status, headers, body = await fetch(fake, "GET", "/api/nope")
    assert (status, headers["Content-Type"], body) == (404, "text/plain", b"404 page not found")
    status, _, body = await fetch(fake, "POST", "/api/tags")
    assert (status, body) == (405, b"405 method not allowed")
    status, _, body = await fetch(fake, "POST", "/api/chat")
    assert (status, body) == (400, b'{"error":"missing request body"}')
    status, _, body = await fetch(fake, "POST", "/api/chat", data=b"{oops")
    assert status == 400 and b"invalid character" in body
    status, headers, body = await fetch(fake, "POST", "/v1/chat/completions", json=chat_body("nope"))
    assert (status, headers["Content-Type"]) == (404, "application/json")
    assert json.loads(body)["error"] == {
        "message": "model 'nope' not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }


async def test_openai_stream_is_sse_ending_in_done(fake: TestServer) -> None:
    status, headers, body = await fetch(fake, "POST", "/v1/chat/completions", json=chat_body(stream=True))

    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    assert body.endswith(b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    assert body.count(b"data: ") == len(REPLY_TOKENS) + 2


async def test_anthropic_messages_stream(fake: TestServer) -> None:
    payload = chat_body(max_tokens=100, stream=True)
    _, headers, body = await fetch(fake, "POST", "/v1/messages", json=payload)
    events = [frame.split("\n") for frame in body.decode().split("\n\n") if frame]

    assert headers["Content-Type"] == "text/event-stream"
    kinds = [lines[0].removeprefix("event: ") for lines in events]
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-3:] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = json.loads(events[-2][1].removeprefix("data: "))
    assert delta["usage"] == {"input_tokens": 15, "output_tokens": 9}


async def test_error_mid_sends_an_error_line_with_status_200(fake: TestServer) -> None:
    status, _, body = await fetch(fake, "POST", "/api/generate", json={"model": "error-mid", "prompt": "x"})
    lines = body.decode().splitlines()

    assert status == 200 and len(lines) == 4 and "error" in json.loads(lines[-1])


async def test_die_mid_truncates_the_chunked_body(fake: TestServer) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(fake, "POST", "/api/chat", json=chat_body("die-mid"))

    state = fake.app[FAKE_STATE]
    await wait_until(lambda: state.active == 0, "the handler ended")  # cancelled once its connection went
    assert state.cancelled == []  # a connection it dropped itself is no client going away


async def test_big_context_makes_a_final_line_over_1_5_mb(fake: TestServer) -> None:
    _, _, body = await fetch(fake, "POST", "/api/generate", json={"model": "big-context", "prompt": "x"})

    assert len(body.splitlines()[-1]) > 1_500_000


async def test_hang_records_the_cancellation_when_the_client_leaves(fake: TestServer) -> None:
    state = fake.app[FAKE_STATE]

    with pytest.raises(asyncio.TimeoutError):
        await fetch(fake, "POST", "/api/chat", json=chat_body("hang"), timeout=aiohttp.ClientTimeout(total=0.2))
    left_at = time.monotonic()

    assert await state.wait_cancelled(timeout=1.0)
    path, cancelled_at = state.cancelled[0]
    assert path == "/api/chat" and cancelled_at - left_at < 1.0
    assert state.active == 0 and state.peak_active == 1


async def test_a_client_leaving_mid_stream_is_recorded(fake: TestServer) -> None:
    state = fake.app[FAKE_STATE]
    state.token_interval = 0.1

    async with aiohttp.ClientSession() as session:
        async with session.post(base_url(fake) + "/api/chat", json=chat_body()) as response:
            await response.content.readline()
            assert state.active == 1
            response.close()  # drop the connection mid-stream

    assert await state.wait_cancelled(timeout=1.0)
    assert state.cancelled[0][0] == "/api/chat" and state.active == 0


async def test_quiet_sends_headers_then_nothing(fake: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url(fake) + "/api/chat", json=chat_body("quiet")) as response:
            assert response.status == 200 and response.headers["Content-Type"] == "application/x-ndjson"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(response.content.read(1), 0.2)


async def test_token_interval_paces_each_chunk(fake: TestServer) -> None:
    fake.app[FAKE_STATE].token_interval = 0.03
    arrivals = []
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url(fake) + "/api/chat", json=chat_body()) as response:
            async for _ in response.content.iter_any():
                arrivals.append(time.monotonic())

    assert len(arrivals) >= len(REPLY_TOKENS)  # chunks arrive one by one, not in a batch
    assert arrivals[-1] - arrivals[0] >= 0.03 * (len(REPLY_TOKENS) - 1)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost:8080", 200),
        ("127.0.0.1", 200),
        ("[::1]:11434", 200),
        ("10.1.2.3:80", 200),
        ("ollama.internal", 200),
        ("box.local:1", 200),
        ("example.com", 403),
        ("8.8.8.8:11434", 403),
    ],
)
async def test_host_check(fake: TestServer, host: str, status: int) -> None:
    got, _, body = await fetch(fake, "GET", "/api/version", headers={"Host": host})

    assert got == status and (body == b"") == (status == 403)


async def test_blob_upload_streams_and_checks_the_digest(fake: TestServer) -> None:
    data = b"GGUF" + bytes(300_000)
    path = f"/api/blobs/sha256:{hashlib.sha256(data).hexdigest()}"

    missing, _, _ = await fetch(fake, "HEAD", path)
    created, _, _ = await fetch(fake, "POST", path, data=data)
    again, _, _ = await fetch(fake, "POST", path, data=data)
    present, _, _ = await fetch(fake, "HEAD", path)
    mismatch, _, body = await fetch(fake, "POST", path, data=b"other")

    assert (missing, created, again, present) == (404, 201, 200, 200)
    assert mismatch == 400 and b"digest mismatch" in body
    assert fake.app[FAKE_STATE].requests[2].body_length == len(data)


async def test_pull_without_streaming_answers_exactly_application_json(fake: TestServer) -> None:
    status, headers, body = await fetch(fake, "POST", "/api/pull", json={"name": "tinyllama", "stream": False})

    assert (status, headers["Content-Type"], body) == (200, "application/json", b'{"status":"success"}')


async def test_requests_are_recorded(fake: TestServer) -> None:
    url = URL(base_url(fake) + "/api/show?verbose=1&x=%2F", encoded=True)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"model": "llama3.2"}, headers={"X-Test": "yes"}) as response:
            await response.read()

    recorded = fake.app[FAKE_STATE].requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/api/show")
    assert (recorded.raw_path, recorded.query_string) == ("/api/show?verbose=1&x=%2F", "verbose=1&x=%2F")
    assert recorded.headers["X-Test"] == "yes" and recorded.json_body == {"model": "llama3.2"}
    assert recorded.body_length == len(b'{"model": "llama3.2"}')


async def test_a_busy_fake_answers_ollamas_503_to_everything(fake: TestServer) -> None:
    fake.app[FAKE_STATE].fault = "busy"
    async with aiohttp.ClientSession() as http, http.get(f"{base_url(fake)}/api/tags") as response:
        assert response.status == 503
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert await response.read() == (
            b'{"error":"server busy, please try again.  maximum pending requests exceeded"}'
        )


async def test_a_hanging_fake_accepts_and_never_answers(fake: TestServer) -> None:
    state = fake.app[FAKE_STATE]
    state.fault = "hang"
    async with aiohttp.ClientSession() as http:
        pending = asyncio.ensure_future(http.get(f"{base_url(fake)}/api/version"))
        await wait_until(lambda: len(state.requests) == 1, "the request arrived")
        await asyncio.sleep(0.1)  # a chance to answer, which it must not take
        assert not pending.done()
        pending.cancel()
    assert await state.wait_cancelled()
