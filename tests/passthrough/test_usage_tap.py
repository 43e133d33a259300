"""UsageTap on Ollama's real wire formats: native NDJSON, OpenAI/anthropic SSE, JSON bodies, errors."""

from __future__ import annotations

import json
import random
import tracemalloc

import pytest

from proxy.passthrough import usage_body, usage_stream
from proxy.passthrough import usage_tap as usage
from proxy.passthrough.usage_tap import Usage, UsageTap, estimate_tokens

NDJSON = "application/x-ndjson"
JSON = "application/json; charset=utf-8"
SSE = "text/event-stream"

# Native /api/chat stream, shaped as Ollama's streamResponse writes it (docs/api.md "Chat request (streaming)").
CHAT_LINES = [
    b'{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00",'
    b'"message":{"role":"assistant","content":"The"},"done":false}\n',
    b'{"model":"llama3.2","created_at":"2023-08-04T08:52:19.412349231-07:00",'
    b'"message":{"role":"assistant","content":" sky"},"done":false}\n',
    b'{"model":"llama3.2","created_at":"2023-08-04T08:52:19.438791826-07:00",'
    b'"message":{"role":"assistant","content":" is \\"done\\":true"},"done":false}\n',
]
CHAT_DONE = (
    b'{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z",'
    b'"message":{"role":"assistant","content":""},"done_reason":"stop","done":true,'
    b'"total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,'
    b'"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}\n'
)
CHAT_STREAM = b"".join(CHAT_LINES) + CHAT_DONE


def generate_line(text: str) -> bytes:
    return (
        b'{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","response":'
        + json.dumps(text).encode()
        + b',"done":false}\n'
    )


def generate_done(context_len: int) -> bytes:
    rng = random.Random(7)
    context = ",".join(str(rng.randrange(128256)) for _ in range(context_len)).encode()
    return (
        b'{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","response":"","done":true,'
        b'"done_reason":"stop","context":[' + context + b'],"total_duration":10706818083,'
        b'"load_duration":6338219291,"prompt_eval_count":3917,"prompt_eval_duration":130079000,'
        b'"eval_count":259,"eval_duration":4232710000}\n'
    )


def measure(content_type: str, chunks, **kwargs) -> Usage:
    tap = UsageTap(content_type, **kwargs)
    for chunk in chunks:
        tap.feed(chunk)
    return tap.finish()


def random_chunks(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        size = rng.randint(1, largest)
        out.append(data[at : at + size])
        at += size
    return out


@pytest.fixture
def parse_calls(monkeypatch):
    """Counts json parses, to hold the tap to its promise of parsing only the lines that matter."""
    calls = []
    real = usage_stream.loads

    def counting(data):
        calls.append(len(data))
        return real(data)

    for reader in (usage_stream, usage_body):
        monkeypatch.setattr(reader, "loads", counting)
    return calls


# --- native NDJSON ---------------------------------------------------------------------------------


def test_chat_stream_reports_final_metrics(parse_calls):
    got = measure(NDJSON, CHAT_LINES + [CHAT_DONE], request_bytes=999)
    assert got == Usage(26, 282, False, None)
    assert got.total_tokens == 308
    assert parse_calls == []  # the done line is read with byte scans, not json.loads


def test_chat_stream_split_at_every_byte_boundary():
    for cut in range(len(CHAT_STREAM) + 1):
        got = measure(NDJSON, [CHAT_STREAM[:cut], CHAT_STREAM[cut:]])
        assert got == Usage(26, 282, False, None), cut


def test_chat_stream_fed_one_byte_at_a_time():
    got = measure(NDJSON, [CHAT_STREAM[i : i + 1] for i in range(len(CHAT_STREAM))])
    assert got == Usage(26, 282, False, None)


def test_generate_stream_with_huge_context_in_random_chunks():
    done = generate_done(300_000)
    assert len(done) > 1_500_000
    stream = b"".join(generate_line(w) for w in ["Why", " is", " the", " sky", " blue"]) + done
    rng = random.Random(1234)
    for largest in (13, 4096, 65536, 2_000_000):
        chunks = random_chunks(stream, rng, largest)
        assert b"".join(chunks) == stream
        assert measure(NDJSON, chunks) == Usage(3917, 259, False, None), largest


def test_final_line_without_newline_is_measured():
    assert measure(NDJSON, [CHAT_STREAM[:-1]]) == Usage(26, 282, False, None)


def test_cut_stream_estimates_from_content_chunks_and_request_bytes():
    # Client gone after three content chunks: no done line ever arrives.
    got = measure(NDJSON, CHAT_LINES, request_bytes=101)
    assert got == Usage(26, 3, True, None)  # ceil(101 / 4) = 26


def test_cut_stream_mid_line_counts_only_whole_lines():
    got = measure(NDJSON, [b"".join(CHAT_LINES) + CHAT_DONE[:80]], request_bytes=8)
    assert got == Usage(2, 3, True, None)


def test_thinking_chunks_count_as_content():
    lines = [
        b'{"model":"qwen3","created_at":"2025-05-29T09:35:56.836222Z",'
        b'"message":{"role":"assistant","content":"","thinking":"Let"},"done":false}\n',
        b'{"model":"qwen3","created_at":"2025-05-29T09:35:56.856222Z",'
        b'"message":{"role":"assistant","content":"","thinking":" me"},"done":false}\n',
    ]
    assert measure(NDJSON, lines, request_bytes=40) == Usage(10, 2, True, None)


def test_mid_stream_error_line_keeps_status_200():
    error = b'{"error":"an error was encountered while running the model: unexpected EOF"}\n'
    got = measure(NDJSON, CHAT_LINES[:2] + [error], request_bytes=16)
    assert got == Usage(4, 2, True, "an error was encountered while running the model: unexpected EOF")


@pytest.mark.parametrize("reason", ["load", "unload"])
def test_load_and_unload_lines_are_zero_not_estimated(reason):
    line = (
        b'{"model":"llama3.2","created_at":"2024-09-12T21:17:29.110811Z","response":"",'
        b'"done":true,"done_reason":"' + reason.encode() + b'"}\n'
    )
    assert measure(NDJSON, [line], request_bytes=500) == Usage(0, 0, False, None)
    assert measure(JSON, [line], request_bytes=500) == Usage(0, 0, False, None)


def test_pull_progress_stream_is_zero_usage():
    stream = [
        b'{"status":"pulling manifest"}\n',
        b'{"status":"pulling dde5aa3fc5ff","digest":"sha256:dde5aa3fc5ff","total":2019377376,"completed":241970}\n',
        b'{"status":"verifying sha256 digest"}\n{"status":"writing manifest"}\n',
        b'{"status":"success"}\n',
    ]
    assert measure(NDJSON, stream, request_bytes=60) == Usage(0, 0, False, None)


def test_pull_of_missing_model_reports_the_error_line():
    stream = [b'{"status":"pulling manifest"}\n{"error":"pull model manifest: file does not exist"}\n']
    assert measure(NDJSON, stream) == Usage(0, 0, False, "pull model manifest: file does not exist")


def test_over_cap_lines_are_dropped_and_the_stream_resyncs(monkeypatch):
    monkeypatch.setattr(usage, "LINE_CAP", 1024)
    huge_content = generate_line("x" * 6000)  # given up: its `"done":false` tail must not count
    done = generate_done(2000)  # ~13 KB: its metrics are given up too
    error = b'{"error":"later line still seen"}\n'
    stream = generate_line("Hi") + huge_content + done + generate_line("!") + error
    for size in (100, 5000):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert measure(NDJSON, chunks, request_bytes=12) == Usage(3, 2, True, "later line still seen")


def test_memory_stays_bounded_on_a_huge_line(monkeypatch):
    monkeypatch.setattr(usage, "LINE_CAP", 1024 * 1024)
    line = generate_line("y" * 24 * 1024 * 1024)
    tracemalloc.start()
    tap = UsageTap(NDJSON, request_bytes=4)
    for i in range(0, len(line), 65536):
        tap.feed(line[i : i + 65536])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3 * 1024 * 1024
    assert tap.finish() == Usage(0, 0, False, None)


def test_metric_keys_inside_tool_arguments_do_not_fool_the_scan():
    done = (
        b'{"model":"llama3.2","created_at":"2024-07-22T20:33:28.123648Z","message":{"role":"assistant",'
        b'"content":"","tool_calls":[{"function":{"name":"log_stats","arguments":{"prompt_eval_count":1,'
        b'"eval_count":2}}}]},"done_reason":"stop","done":true,"total_duration":885095291,'
        b'"load_duration":3753500,"prompt_eval_count":122,"prompt_eval_duration":328493000,"eval_count":33,'
        b'"eval_duration":552222000}\n'
    )
    assert measure(NDJSON, [done]) == Usage(122, 33, False, None)


def test_malformed_lines_never_raise():
    stream = [b'{"error":\n', b'{"done":true,"eval_count":x}\n', b'\xff\xfe{"done":false\n']
    assert measure(NDJSON, stream) == Usage(0, 1, True, None)  # counts unreadable: estimated


# --- SSE: /v1/chat/completions, /v1/completions, /v1/responses, /v1/messages ---------------------


def chat_chunk(content: str, finish: str | None = None) -> bytes:
    reason = "null" if finish is None else json.dumps(finish)
    return (
        b'data: {"id":"chatcmpl-466","object":"chat.completion.chunk","created":1721421223,'
        b'"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,'
        b'"delta":{"role":"assistant","content":'
        + json.dumps(content).encode()
        + b'},"finish_reason":'
        + reason.encode()
        + b"}]}\n\n"
    )


CHAT_USAGE = (
    b'data: {"id":"chatcmpl-466","object":"chat.completion.chunk","created":1721421223,'
    b'"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[],'
    b'"usage":{"prompt_tokens":31,"completion_tokens":4,"total_tokens":35}}\n\n'
)
DONE = b"data: [DONE]\n\n"


def test_sse_chat_with_include_usage(parse_calls):
    stream = [chat_chunk("Hello"), chat_chunk("!"), chat_chunk(" How"), chat_chunk("", "stop"), CHAT_USAGE, DONE]
    assert measure(SSE, stream, request_bytes=400) == Usage(31, 4, False, None)
    assert len(parse_calls) == 1


def test_sse_chat_without_include_usage_estimates():
    stream = [chat_chunk("Hello"), chat_chunk("!"), chat_chunk(" How"), chat_chunk("", "stop"), DONE]
    assert measure(SSE, stream, request_bytes=400) == Usage(100, 3, True, None)


def test_sse_chat_split_at_every_byte_boundary():
    stream = chat_chunk("Hi") + chat_chunk("", "stop") + CHAT_USAGE + DONE
    for cut in range(len(stream) + 1):
        assert measure(SSE, [stream[:cut], stream[cut:]]) == Usage(31, 4, False, None), cut


def test_sse_with_crlf_line_endings():
    stream = (chat_chunk("Hi") + chat_chunk("", "stop") + CHAT_USAGE + DONE).replace(b"\n", b"\r\n")
    assert measure(SSE, [stream]) == Usage(31, 4, False, None)


def completion_chunk(text: str, finish: str | None = None, usage_json: bytes = b"") -> bytes:
    reason = "null" if finish is None else json.dumps(finish)
    choices = (
        b"[]"
        if usage_json and text == "" and finish is None
        else (b'[{"text":' + json.dumps(text).encode() + b',"index":0,"finish_reason":' + reason.encode() + b"}]")
    )
    return (
        b'data: {"id":"cmpl-123","object":"text_completion","created":1721421223,"choices":'
        + choices
        + b',"model":"llama3.2","system_fingerprint":"fp_ollama"'
        + (b',"usage":' + usage_json if usage_json else b"")
        + b"}\n\n"
    )


ZEROED = b'{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'


def test_sse_completions_zeroed_usage_then_real(parse_calls):
    stream = [completion_chunk(w, usage_json=ZEROED) for w in ["Once", " upon", " a"]]
    stream += [completion_chunk("", "stop", ZEROED)]
    stream += [completion_chunk("", usage_json=b'{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}'), DONE]
    assert b'"choices":[]' in stream[-2]
    assert measure(SSE, stream, request_bytes=50) == Usage(9, 3, False, None)
    assert len(parse_calls) == 1  # the zeroed placeholders are not parsed


def test_sse_completions_cut_before_real_usage_estimates():
    stream = [completion_chunk(w, usage_json=ZEROED) for w in ["Once", " upon", " a"]]
    assert measure(SSE, stream, request_bytes=50) == Usage(13, 3, True, None)


def sse_event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def responses_stream(complete: bool) -> list[bytes]:
    base = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1756000000,
        "status": "in_progress",
        "model": "llama3.2",
        "output": [],
        "error": None,
        "usage": None,
    }
    events = [
        sse_event("response.created", {"type": "response.created", "sequence_number": 0, "response": base}),
        sse_event("response.in_progress", {"type": "response.in_progress", "sequence_number": 1, "response": base}),
        sse_event(
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "sequence_number": 2,
                "output_index": 0,
                "item": {"id": "msg_1", "type": "message"},
            },
        ),
    ]
    for n, word in enumerate(["Under", " the", " sea"]):
        events.append(
            sse_event(
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": 3 + n,
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": word,
                },
            )
        )
    events.append(
        sse_event(
            "response.output_text.done",
            {"type": "response.output_text.done", "sequence_number": 6, "text": "Under the sea"},
        )
    )
    if complete:
        usage_obj = {
            "input_tokens": 18,
            "output_tokens": 3,
            "total_tokens": 21,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        events.append(
            sse_event(
                "response.completed",
                {
                    "type": "response.completed",
                    "sequence_number": 7,
                    "response": {**base, "status": "completed", "usage": usage_obj},
                },
            )
        )
    return events


def test_sse_responses_completed_event():
    assert measure(SSE, responses_stream(True), request_bytes=80) == Usage(18, 3, False, None)


def test_sse_responses_cut_counts_only_text_deltas():
    assert measure(SSE, responses_stream(False), request_bytes=80) == Usage(20, 3, True, None)


def test_sse_responses_failed_event_is_an_error():
    failed = sse_event(
        "response.failed",
        {
            "type": "response.failed",
            "sequence_number": 4,
            "response": {
                "id": "resp_1",
                "status": "failed",
                "error": {"code": "server_error", "message": "model crashed"},
                "usage": None,
            },
        },
    )
    got = measure(SSE, responses_stream(False)[:3] + [failed], request_bytes=80)
    assert got == Usage(0, 0, False, "model crashed")


def anthropic_stream(complete: bool) -> list[bytes]:
    events = [
        sse_event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01",
                    "type": "message",
                    "role": "assistant",
                    "model": "llama3.2",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 12, "output_tokens": 0},
                },
            },
        ),
        sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        sse_event("ping", {"type": "ping"}),
    ]
    for word in ["Hello", "!", " Hi"]:
        events.append(
            sse_event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}},
            )
        )
    if complete:
        events += [
            sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            sse_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 5},
                },
            ),
            sse_event("message_stop", {"type": "message_stop"}),
        ]
    return events


def test_sse_anthropic_messages():
    assert measure(SSE, anthropic_stream(True), request_bytes=300) == Usage(12, 5, False, None)


def test_sse_anthropic_cumulative_message_delta_wins():
    # Anthropic documents message_delta usage as cumulative; when it carries input_tokens, the later value wins.
    stream = anthropic_stream(True)
    stream[-2] = stream[-2].replace(b'"usage":{"output_tokens":5}', b'"usage":{"input_tokens":14,"output_tokens":5}')
    assert b'"input_tokens":14' in stream[-2]
    assert measure(SSE, stream, request_bytes=300) == Usage(14, 5, False, None)


def test_sse_anthropic_cut_keeps_reported_input_and_estimates_output():
    assert measure(SSE, anthropic_stream(False), request_bytes=300) == Usage(12, 3, True, None)


def test_sse_anthropic_error_event():
    error = sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    got = measure(SSE, anthropic_stream(False) + [error], request_bytes=4)
    assert got == Usage(12, 3, True, "Overloaded")


def test_sse_openai_mid_stream_error():
    error = (
        b'data: {"error":{"message":"model runner has unexpectedly stopped","type":"api_error",'
        b'"param":null,"code":null}}\n\n'
    )
    got = measure(SSE, [chat_chunk("Hel"), chat_chunk("lo"), error], request_bytes=20)
    assert got == Usage(5, 2, True, "model runner has unexpectedly stopped")


def test_sse_error_before_content_is_zero_usage():
    error = b'data: {"error":{"message":"boom","type":"api_error","param":null,"code":null}}\n\n'
    assert measure(SSE, [error], request_bytes=20) == Usage(0, 0, False, "boom")


class LineByLineUsage(usage_stream.StreamUsage):
    """The SSE reading as first written, every check on every line: the reference for the block checks."""

    def read_sse(self, block):
        for line in block.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            if (b'"usage"' in line or b'"error"' in line) and (
                usage_stream._ZEROED not in line or b'"choices":[]' in line
            ):
                self._take_event(usage_stream.loads(line[5:]))
            if (b'delta"' in line or b'"text_completion"' in line) and b'"finish_reason":"' not in line:
                self._chunks += 1


def sse_events() -> list[bytes]:
    """One of every kind of event the four SSE routes send, and odd lines besides."""
    events = [chat_chunk("Hi"), chat_chunk("", "stop"), chat_chunk("", "length"), CHAT_USAGE, DONE]
    events += [completion_chunk("Once", usage_json=ZEROED), completion_chunk("", "stop", ZEROED), completion_chunk("a")]
    events += [completion_chunk("", usage_json=b'{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}')]
    events += responses_stream(True) + anthropic_stream(True)
    events += [
        b'data: {"error":{"message":"boom","type":"api_error","param":null,"code":null}}\n\n',
        b': keep-alive comment with delta" in it\n\n',
        b'id: 7\nretry: 100\ndata:{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}\n\n',
        b'data: {"choices":[{"delta":{},"finish_reason":"stop"},{"delta":{"content":"y"},"finish_reason":null}]}\n\n',
        b'data: {"note":"\\"finish_reason\\":\\"stop\\" and delta\\" inside a string"}\n\n',
        b'data: {"choices":[{"delta":{},"finish_reason":"stop"},{"delta":{},"finish_reason":"length"}]}\n\n',
        b'data: {"choices":[{"finish_reason":"stop"}]}\n\n',
        b'data: not json at all, "usage"\n\n',
    ]
    return events


@pytest.mark.parametrize("seed", range(40))
def test_sse_block_checks_read_what_line_by_line_checks_read(seed):
    rng = random.Random(seed)
    pool = sse_events()
    events = [rng.choice(pool) for _ in range(rng.randrange(1, 30))]
    stream = b"".join(events)
    if rng.random() < 0.3:
        stream = stream.replace(b"\n", b"\r\n")
    lines = stream.splitlines(keepends=True)
    cuts = sorted(rng.sample(range(1, len(lines)), min(len(lines) - 1, rng.randrange(0, 6)))) if len(lines) > 1 else []
    blocks = [b"".join(lines[a:b]) for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    got, want = usage_stream.StreamUsage(), LineByLineUsage()
    for block in blocks:
        got.read_sse(block)
        want.read_sse(bytearray(block) if rng.random() < 0.5 else block)
    assert got.usage(100) == want.usage(100)
    assert (got._chunks, got._prompt, got._completion) == (want._chunks, want._prompt, want._completion)


# --- non-stream JSON bodies ------------------------------------------------------------------------

CHAT_JSON = (
    b'{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z","message":{"role":"assistant",'
    b'"content":"Hello! How are you today?"},"done_reason":"stop","done":true,"total_duration":5191566416,'
    b'"load_duration":2154458,"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,'
    b'"eval_duration":4799921000}'
)
OPENAI_CHAT_JSON = (
    b'{"id":"chatcmpl-626","object":"chat.completion","created":1721421223,"model":"llama3.2",'
    b'"system_fingerprint":"fp_ollama","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":2,'
    b'"total_tokens":13}}\n'
)
OPENAI_EMBEDDINGS_JSON = (
    b'{"object":"list","data":[{"object":"embedding","embedding":[0.010071029,-0.0017594862],"index":0}],'
    b'"model":"all-minilm","usage":{"prompt_tokens":8,"total_tokens":8}}\n'
)
RESPONSES_JSON = (
    b'{"id":"resp_1","object":"response","created_at":1756000000,"status":"completed","model":"llama3.2",'
    b'"output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{'
    b'"type":"output_text","text":"Hi"}]}],"usage":{"input_tokens":15,"output_tokens":2,"total_tokens":17,'
    b'"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":0}},"error":null}\n'
)
ANTHROPIC_JSON = (
    b'{"id":"msg_01","type":"message","role":"assistant","model":"llama3.2","content":[{"type":"text",'
    b'"text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,'
    b'"output_tokens":6}}\n'
)
EMBED_JSON = (
    b'{"model":"all-minilm","embeddings":[[0.010071029,-0.0017594862,0.05007221]],'
    b'"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8}'
)


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        pytest.param(JSON, CHAT_JSON, Usage(26, 298, False, None), id="native-chat"),
        pytest.param("application/json", OPENAI_CHAT_JSON, Usage(11, 2, False, None), id="openai-chat"),
        pytest.param("application/json", OPENAI_EMBEDDINGS_JSON, Usage(8, 0, False, None), id="openai-embeddings"),
        pytest.param("application/json", RESPONSES_JSON, Usage(15, 2, False, None), id="responses"),
        pytest.param("application/json", ANTHROPIC_JSON, Usage(10, 6, False, None), id="anthropic"),
        pytest.param(JSON, EMBED_JSON, Usage(8, 0, False, None), id="native-embed"),
        pytest.param(
            JSON,
            b'{"embedding":[0.5670403838157654,0.009260174818336964]}',
            Usage(25, 0, True, None),
            id="legacy-embeddings-estimated",
        ),
        pytest.param(
            JSON,
            b'{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","size":2019393189}]}',
            Usage(0, 0, False, None),
            id="tags-no-usage",
        ),
        pytest.param("application/json", b'{"status":"success"}', Usage(0, 0, False, None), id="pull-status"),
        pytest.param(JSON, b"", Usage(0, 0, False, None), id="empty"),
        pytest.param(JSON, b"not json", Usage(0, 0, False, None), id="not-json"),
    ],
)
def test_json_bodies(content_type, body, expected):
    rng = random.Random(5)
    assert measure(content_type, random_chunks(body, rng, 9), request_bytes=97) == expected


def test_generate_json_body_with_context_over_parse_cap(parse_calls):
    body = generate_done(300_000).rstrip(b"\n")  # /api/generate with "stream": false
    assert len(body) > usage.PARSE_CAP
    rng = random.Random(3)
    assert measure(JSON, random_chunks(body, rng, 65536)) == Usage(3917, 259, False, None)
    assert parse_calls == []  # only the tail is kept, and it is scanned


def _big_embeddings(rng: random.Random, **spelling) -> bytes:
    """An OpenAI /v1/embeddings answer larger than PARSE_CAP, its usage after the vectors."""
    data = [
        {"object": "embedding", "embedding": [rng.uniform(-1, 1) for _ in range(768)], "index": i} for i in range(80)
    ]
    body = json.dumps(
        {
            "object": "list",
            "data": data,
            "model": "nomic-embed-text",
            "usage": {"prompt_tokens": 640, "total_tokens": 640},
        },
        **spelling,
    ).encode()
    assert len(body) > usage.PARSE_CAP
    return body


def test_big_openai_embeddings_body_over_parse_cap():
    rng = random.Random(9)
    body = _big_embeddings(rng, separators=(",", ":"))
    assert measure("application/json", random_chunks(body, rng, 30000)) == Usage(640, 0, False, None)


def test_memory_stays_bounded_on_a_huge_body():
    head = b'{"model":"all-minilm","embeddings":[['
    piece = b"0.010071029,-0.0017594862,0.05007221," * 1771  # ~64 KiB
    tail = b'0.5]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":4096}'
    tracemalloc.start()
    tap = UsageTap(JSON)
    tap.feed(head)
    for _ in range(400):  # ~26 MB in all
        tap.feed(piece)
    tap.feed(tail)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * usage.PARSE_CAP  # not the 26 MB that went through
    assert tap.finish() == Usage(4096, 0, False, None)


# --- error bodies and other types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "content_type", "body", "error"),
    [
        pytest.param(
            404, JSON, b'{"error":"model \'llama9\' not found"}', "model 'llama9' not found", id="native-not-found"
        ),
        pytest.param(
            503,
            "application/json",
            b'{"error":"server busy, please try again.  maximum pending requests exceeded"}',
            "server busy, please try again.  maximum pending requests exceeded",
            id="native-busy",
        ),
        pytest.param(
            404,
            "application/json",
            b'{"error":{"message":"model \\"llama9\\" not found, try pulling it first",'
            b'"type":"not_found_error","param":null,"code":null}}\n',
            'model "llama9" not found, try pulling it first',
            id="openai-not-found",
        ),
        pytest.param(
            429,
            "application/json",
            b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"},"request_id":"req_1"}',
            "slow down",
            id="anthropic-rate-limit",
        ),
        pytest.param(400, NDJSON, b'{"error":"missing request body"}', "missing request body", id="ndjson-typed"),
        pytest.param(404, "text/plain", b"404 page not found", "404 page not found", id="go-plain-404"),
        pytest.param(
            405, "text/plain; charset=utf-8", b"405 method not allowed", "405 method not allowed", id="go-plain-405"
        ),
        pytest.param(
            502,
            "text/html",
            b"<html>\r\n<head><title>502 Bad Gateway</title></head></html>\r\n",
            "<html>\r\n<head><title>502 Bad Gateway</title></head></html>",
            id="proxy-html-page",
        ),
        pytest.param(403, "", b"", None, id="empty"),
    ],
)
def test_error_bodies(status, content_type, body, error):
    assert measure(content_type, [body[:5], body[5:]], status=status, request_bytes=400) == Usage(0, 0, False, error)


def test_long_error_text_is_truncated():
    got = measure("text/plain", [b"x" * 5000], status=500)
    assert got.error == "x" * 500


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "", "application/octet-stream"])
def test_other_types_have_no_usage(content_type):
    assert measure(content_type, [b"Ollama is running"], request_bytes=10) == Usage(0, 0, False, None)


# --- small pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("byte_count", "tokens"), [(0, 0), (1, 1), (4, 1), (5, 2), (400, 100), (-3, 0)])
def test_estimate_tokens(byte_count, tokens):
    assert estimate_tokens(byte_count) == tokens


def test_total_tokens():
    assert Usage(3, 4, False, None).total_tokens == 7
    assert Usage(None, 4, True, None).total_tokens == 4
    assert Usage(None, None, False, None).total_tokens is None


def test_finish_is_idempotent_and_later_chunks_are_ignored():
    tap = UsageTap(NDJSON)
    tap.feed(CHAT_LINES[0])
    first = tap.finish()
    tap.feed(CHAT_DONE)
    assert tap.finish() is first
    assert first == Usage(0, 1, True, None)


# --- any valid JSON spelling, not only Go's compact one --------------------------------------------


def _shuffled(value: object, rng: random.Random) -> object:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


# Each style writes one JSON value as another encoder or a proxy in between might.
RESPELL = {
    "spaced": lambda obj: json.dumps(obj, separators=(", ", ": ")),
    "spaced-around-colon": lambda obj: json.dumps(obj, separators=(" , ", " : ")),
    "shuffled": lambda obj: json.dumps(_shuffled(obj, random.Random(11)), separators=(",", ":")),
    "shuffled-spaced": lambda obj: json.dumps(_shuffled(obj, random.Random(12))),
}


def respell_lines(data: bytes, style: str, *, prefix: bytes = b"", end: bytes = b"\n") -> bytes:
    """Every line re-encoded in `style`; lines that are not JSON (`data: [DONE]`, blanks) kept."""
    out = []
    for line in data.split(b"\n"):
        payload = line[len(prefix) :] if prefix and line.startswith(prefix) else None if prefix else line
        try:
            obj = json.loads(payload) if payload else None
        except ValueError:
            obj = None
        out.append(prefix + RESPELL[style](obj).encode() if isinstance(obj, dict) else line)
    return end.join(out)


GENERATE_STREAM = b"".join(generate_line(w) for w in ["Why", " is", " blue"]) + generate_done(50)


@pytest.mark.parametrize("style", [*RESPELL, "crlf"])
@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (CHAT_STREAM, Usage(26, 282, False, None)),
        (GENERATE_STREAM, Usage(3917, 259, False, None)),
    ],
    ids=["chat", "generate"],
)
def test_ndjson_in_any_spelling_is_read_from_the_final_line(stream, expected, style):
    data = stream.replace(b"\n", b"\r\n") if style == "crlf" else respell_lines(stream, style)
    for cuts in ([data], random_chunks(data, random.Random(2), 40)):
        got = measure(NDJSON, cuts, request_bytes=999)
        assert got == expected and got.model == "llama3.2"


def test_ndjson_final_line_over_parse_cap_in_another_spelling():
    done = json.loads(generate_done(30_000))
    data = generate_line("Hi") + json.dumps(done, separators=(", ", ": ")).encode() + b"\n"
    assert len(data) > usage_stream.FINAL_LINE_PARSE_CAP
    assert measure(NDJSON, random_chunks(data, random.Random(4), 5000)) == Usage(3917, 259, False, None)


@pytest.mark.parametrize("style", ["spaced", "shuffled-spaced"])
def test_ndjson_error_line_in_another_spelling(style):
    error = b'{"error":"an error was encountered while running the model: unexpected EOF"}\n'
    data = b"".join(CHAT_LINES[:2]) + respell_lines(error, style)
    got = measure(NDJSON, [data], request_bytes=16)
    assert got == Usage(4, 2, True, "an error was encountered while running the model: unexpected EOF")


@pytest.mark.parametrize("style", [*RESPELL, "crlf", "no-space-after-data"])
def test_sse_in_any_spelling(style):
    stream = b"".join([chat_chunk("Hello"), chat_chunk("!"), chat_chunk("", "stop"), CHAT_USAGE, DONE])
    if style == "crlf":
        data = stream.replace(b"\n", b"\r\n")
    elif style == "no-space-after-data":
        data = stream.replace(b"data: ", b"data:")
    else:
        data = respell_lines(stream, style, prefix=b"data: ")
    got = measure(SSE, random_chunks(data, random.Random(6), 50), request_bytes=400)
    assert got == Usage(31, 4, False, None) and got.model == "llama3.2"


@pytest.mark.parametrize("style", list(RESPELL))
def test_sse_completions_placeholders_in_another_spelling(style):
    zeroed = b'"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'
    chunk = (
        b'data: {"id":"cmpl-1","object":"text_completion","created":1,"choices":[{"text":"Hi","index":0,'
        b'"finish_reason":null}],"model":"llama3.2","system_fingerprint":"fp_ollama",' + zeroed + b"}\n\n"
    )
    final = (
        b'data: {"id":"cmpl-1","object":"text_completion","created":1,"choices":[],"model":"llama3.2",'
        b'"system_fingerprint":"fp_ollama","usage":{"prompt_tokens":9,"completion_tokens":2,'
        b'"total_tokens":11}}\n\n'
    )
    cut = respell_lines(chunk * 2, style, prefix=b"data: ")
    assert measure(SSE, [cut], request_bytes=40) == Usage(10, 2, True, None)  # placeholders are not counts
    assert measure(SSE, [respell_lines(chunk * 2 + final + DONE, style, prefix=b"data: ")]) == Usage(9, 2, False, None)


@pytest.mark.parametrize("style", [*RESPELL, "indent"])
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (CHAT_JSON, Usage(26, 298, False, None)),
        (generate_done(50), Usage(3917, 259, False, None)),
        (OPENAI_CHAT_JSON, Usage(11, 2, False, None)),
        (OPENAI_EMBEDDINGS_JSON, Usage(8, 0, False, None)),
        (EMBED_JSON, Usage(8, 0, False, None)),
    ],
    ids=["chat", "generate", "openai-chat", "openai-embeddings", "embed"],
)
def test_json_bodies_in_any_spelling(body, expected, style):
    obj = json.loads(body)
    data = (json.dumps(obj, indent=2) if style == "indent" else RESPELL[style](obj)).encode()
    got = measure(JSON, random_chunks(data, random.Random(8), 64), request_bytes=97)
    assert got == expected and got.model == obj["model"]


def test_big_body_in_another_spelling_over_parse_cap():
    rng = random.Random(10)
    body = _big_embeddings(rng, indent=2)
    got = measure(JSON, random_chunks(body, rng, 30000))
    assert got == Usage(640, 0, False, None) and got.model == "nomic-embed-text"


CHAT_NO_METRICS = b'{"model": "llama3.2", "message": {"role": "assistant", "content": "Hi"}, "done": true}'


@pytest.mark.parametrize(
    ("content_type", "chunks", "expected"),
    [
        # A final line without metrics: a server that reports none.
        (
            NDJSON,
            CHAT_LINES
            + [
                b'{"model": "llama3.2", "message": {"role": "assistant", "content": ""}, '
                b'"done": true, "done_reason": "stop"}\n'
            ],
            Usage(250, 3, True, None),
        ),
        (
            NDJSON,
            CHAT_LINES
            + [b'{"model":"llama3.2","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}\n'],
            Usage(250, 3, True, None),
        ),
        (JSON, [CHAT_NO_METRICS], Usage(250, estimate_tokens(len(CHAT_NO_METRICS)), True, None)),
        (
            JSON,
            [
                b'{"object": "list", "data": [{"object": "embedding", "embedding": [0.1], "index": 0}], '
                b'"model": "all-minilm"}'
            ],
            Usage(250, 0, True, None),
        ),
        (JSON, [b'{"model": "all-minilm", "embeddings": [[0.1, 0.2]]}'], Usage(250, 0, True, None)),
    ],
    ids=["ndjson-spaced", "ndjson-compact", "chat-json", "openai-embeddings", "embed"],
)
def test_answers_without_usage_are_estimated(content_type, chunks, expected):
    assert measure(content_type, chunks, request_bytes=1000) == expected


@pytest.mark.parametrize(
    ("content_type", "chunks", "model"),
    [
        (NDJSON, [CHAT_STREAM.replace(b'"llama3.2"', b'"tiny:latest"')], "tiny:latest"),
        (NDJSON, [generate_done(300_000).replace(b'"llama3.2"', b'"tiny:latest"')], "tiny:latest"),
        (JSON, [CHAT_JSON.replace(b'"llama3.2"', b'"tiny:latest"')], "tiny:latest"),
        (JSON, [generate_done(300_000).replace(b'"llama3.2"', b'"tiny:latest"')], "tiny:latest"),
        (SSE, [CHAT_USAGE.replace(b'"llama3.2"', b'"tiny:latest"')], "tiny:latest"),
        (JSON, [RESPONSES_JSON.replace(b'"llama3.2"', b'"a\\"b"')], 'a"b'),
        (JSON, [ANTHROPIC_JSON], "llama3.2"),
        (NDJSON, [b'{"status":"success"}\n'], None),
        (NDJSON, [CHAT_LINES[0]], None),  # a cut stream: the request's model stands
    ],
)
def test_the_model_the_answer_reports(content_type, chunks, model):
    assert measure(content_type, chunks).model == model


WHOLE = {
    "native chat": (200, JSON, CHAT_JSON),
    "openai chat": (200, "application/json", OPENAI_CHAT_JSON),
    "responses": (200, "application/json", RESPONSES_JSON),
    "anthropic": (200, "application/json", ANTHROPIC_JSON),
    "native embed": (200, JSON, EMBED_JSON),
    "not json": (200, JSON, b"not json"),
    "empty": (200, JSON, b""),
    "no metrics": (200, JSON, CHAT_NO_METRICS),
    "error body": (404, "text/plain", b"404 page not found"),
    "chat stream in one piece": (200, NDJSON, CHAT_STREAM),
    "cut stream": (200, NDJSON, CHAT_STREAM[:-40]),
    "sse": (200, SSE, b"".join(anthropic_stream(True))),
    "generate over the parse cap": (200, JSON, generate_done(300_000).rstrip(b"\n")),
    "other type": (200, "text/plain", b"hello"),
}


@pytest.mark.parametrize(("status", "content_type", "body"), WHOLE.values(), ids=WHOLE.keys())
def test_a_whole_body_measures_as_fed_in_chunks(status, content_type, body):
    fed = measure(content_type, random_chunks(body, random.Random(4), 7), status=status, request_bytes=120)
    whole = UsageTap.whole(content_type, body, status=status, request_bytes=120)
    assert whole == fed and whole.model == fed.model
