"""A paced streaming upstream: every request gets LINES /api/chat NDJSON lines, INTERVAL apart.

Raw asyncio rather than aiohttp, so that on a 2-core box the upstream costs as little CPU as
possible and the proxy under test gets the rest. Each line carries the CLOCK_MONOTONIC time it was
written, in nanoseconds, as its content, so the client can tell how long it spent in between.

python -m tests.bench.paced_upstream --port 8102 [--lines 50] [--interval 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import time

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
    b"Date: Thu, 01 Jan 2026 12:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n"
)
# Ollama's own line (api.ChatResponse, https://github.com/ollama/ollama/blob/v0.32.15/api/types.go),
# content = the send time: about the size of a real chunk.
LINE = (
    b'{"model":"llama3.2","created_at":"2026-01-01T12:00:00.123456789Z",'
    b'"message":{"role":"assistant","content":"%d"},"done":false}\n'
)
LAST = (
    b'{"model":"llama3.2","created_at":"2026-01-01T12:00:00.123456789Z","message":{"role":"assistant",'
    b'"content":"%d"},"done_reason":"stop","done":true,"total_duration":1000000000,'
    b'"load_duration":1000000,"prompt_eval_count":16,"prompt_eval_duration":1000000,'
    b'"eval_count":%d,"eval_duration":990000000}\n'
)


class PacedStream(asyncio.Protocol):
    def __init__(self, lines: int, interval: float) -> None:
        self.lines, self.interval = lines, interval
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next_request()

    def _next_request(self) -> None:
        if self.streaming:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        del self.buf[: end + 4 + length]
        self.streaming = True
        assert self.transport is not None
        self.transport.write(HEAD)
        loop = asyncio.get_running_loop()
        self._send(loop, loop.time(), 0)

    def _send(self, loop: asyncio.AbstractEventLoop, start: float, sent: int) -> None:
        if self.transport is None:
            return
        if sent == self.lines:
            self.transport.write(b"0\r\n\r\n")
            self.streaming = False
            self._next_request()
            return
        sent += 1
        line = (LAST % (time.monotonic_ns(), sent)) if sent == self.lines else LINE % time.monotonic_ns()
        self.transport.write(b"%x\r\n%b\r\n" % (len(line), line))
        # Paced from the stream's start, so a late tick does not push every later line back.
        self.timer = loop.call_at(start + sent * self.interval, self._send, loop, start, sent)


async def serve(port: int, lines: int, interval: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: PacedStream(lines, interval), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(serve(args.port, args.lines, args.interval))
