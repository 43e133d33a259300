"""µs per relayed chunk in UsageTap vs a touch-only loop; run: PYTHONPATH=. python tests/bench/bench_usage_tap.py"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import time

from proxy.passthrough.usage_tap import UsageTap

LINES = 500
ROUNDS = 7
REPEATS = 200  # streams per round


def native_chat() -> list[bytes]:
    """One NDJSON line per chunk, as Ollama flushes them."""
    line = (
        '{"model":"llama3.2","created_at":"2025-08-04T08:52:19.385406455-07:00",'
        '"message":{"role":"assistant","content":%s},"done":false}\n'
    )
    chunks = [(line % json.dumps(f" word{i}")).encode() for i in range(LINES - 1)]
    chunks.append(
        b'{"model":"llama3.2","created_at":"2025-08-04T19:22:45.499127Z","message":{"role":"assistant",'
        b'"content":""},"done_reason":"stop","done":true,"total_duration":4883583458,'
        b'"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,'
        b'"eval_count":499,"eval_duration":4535599000}\n'
    )
    return chunks


def resplit(chunks: list[bytes], seed: int = 1) -> list[bytes]:
    """The same bytes cut at random places (1-300 bytes), so most lines span two reads."""
    data, rng, out, at = b"".join(chunks), random.Random(seed), [], 0
    while at < len(data):
        size = rng.randint(1, 300)
        out.append(data[at : at + size])
        at += size
    return out


def sse_chat() -> list[bytes]:
    head = (
        'data: {"id":"chatcmpl-466","object":"chat.completion.chunk","created":1721421223,'
        '"model":"llama3.2","system_fingerprint":"fp_ollama","choices":'
    )
    chunks = [
        (
            head
            + '[{{"index":0,"delta":{{"role":"assistant","content":{}}},"finish_reason":null}}]}}\n\n'.format(
                json.dumps(f" word{i}")
            )
        ).encode()
        for i in range(LINES - 3)
    ]
    chunks.append(
        (head + '[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}\n\n').encode()
    )
    chunks.append((head + '[],"usage":{"prompt_tokens":26,"completion_tokens":497,"total_tokens":523}}\n\n').encode())
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def sse_completions() -> list[bytes]:
    """include_usage: a zeroed usage on every chunk, the real one on the last."""
    zeroed = '{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'
    line = (
        'data: {"id":"cmpl-1","object":"text_completion","created":1721421223,"choices":[{"text":%s,'
        '"index":0,"finish_reason":null}],"model":"llama3.2","system_fingerprint":"fp_ollama","usage":%s}\n\n'
    )
    chunks = [(line % (json.dumps(f" word{i}"), zeroed)).encode() for i in range(LINES - 2)]
    chunks.append(
        (line % ('""', '{"prompt_tokens":9,"completion_tokens":498,"total_tokens":507}'))
        .replace('[{"text":"","index":0,"finish_reason":null}]', "[]")
        .encode()
    )
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def touch_only(chunks: list[bytes]) -> int:
    total = 0
    for chunk in chunks:
        total += len(chunk)
    return total


def tap_all(chunks: list[bytes], content_type: str) -> int:
    tap = UsageTap(content_type, request_bytes=400)
    for chunk in chunks:
        tap.feed(chunk)
    return tap.finish().completion_tokens or 0


def per_chunk_us(fn, chunks: list[bytes], *args) -> tuple[float, float]:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(REPEATS):
            fn(chunks, *args)
        samples.append((time.perf_counter_ns() - start) / REPEATS / len(chunks) / 1000)
    return min(samples), statistics.median(samples)


def main() -> None:
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python {platform.python_version()}, "
        f"{platform.machine()} x{os.cpu_count()} ({platform.processor() or platform.platform()})"
    )
    print(f"{LINES}-line streams, {REPEATS} streams per round, best / median of {ROUNDS} rounds, µs per chunk")
    cases = [
        ("native chat, line per chunk", native_chat(), "application/x-ndjson"),
        ("native chat, random cuts", resplit(native_chat()), "application/x-ndjson"),
        ("SSE chat + include_usage", sse_chat(), "text/event-stream"),
        ("SSE completions, zeroed usage", sse_completions(), "text/event-stream"),
    ]
    for name, chunks, content_type in cases:
        assert tap_all(chunks, content_type) >= 497, name  # the tap really measured the stream
        tap_best, tap_median = per_chunk_us(tap_all, chunks, content_type)
        base_best, base_median = per_chunk_us(touch_only, chunks)
        print(
            f"  {name:<31} {len(chunks):>5} chunks: tap {tap_best:.3f} / {tap_median:.3f}, "
            f"touch-only {base_best:.3f} / {base_median:.3f}, overhead {tap_best - base_best:.3f}"
        )


if __name__ == "__main__":
    main()
