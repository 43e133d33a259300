"""Many concurrent /api/chat streams; for every line, the time since the paced upstream wrote it.

Raw asyncio with a minimal HTTP/1.1 reader (chunked or Content-Length), so the client costs as
little CPU as it can. Prints one JSON object: lines received, delay percentiles in ms, errors.

python -m tests.bench.stream_client --port 8103 --streams 200 --repeat 3 [--key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

from tests.bench.canned import MODEL

_CONTENT = re.compile(rb'"content":"(\d+)"')


class StreamReader(asyncio.Protocol):
    """One keep-alive connection running `repeat` streams one after another."""

    def __init__(self, request: bytes, repeat: int, delays: list[int], done: asyncio.Future) -> None:
        self.request, self.left, self.delays, self.done = request, repeat, delays, done
        self.buf = bytearray()
        self.body = bytearray()  # the decoded body so far, lines not yet complete
        self.state = "head"
        self.remaining = 0  # bytes left in the current chunk, or of a Content-Length body
        self.chunked = False
        self.lines = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost after {self.lines} lines: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.buf += data
        try:
            self._parse(now)
        except Exception as exc:  # a protocol error is a failed stream, not a crashed client
            if not self.done.done():
                self.done.set_exception(exc)
            assert self.transport is not None
            self.transport.close()

    def _parse(self, now: int) -> None:
        buf = self.buf
        while True:
            if self.state == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                if not head.startswith(b"http/1.1 200"):
                    raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
                self.chunked = b"transfer-encoding: chunked" in head
                if not self.chunked:
                    at = head.find(b"content-length:")
                    self.remaining = int(head[at + 15 :].split(b"\r\n", 1)[0])
                del buf[: end + 4]
                self.state = "size" if self.chunked else "data"
            elif self.state == "size":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                self.remaining = int(bytes(buf[:end]).split(b";", 1)[0], 16)
                del buf[: end + 2]
                self.state = "data" if self.remaining else "trailer"
            elif self.state == "data":
                if not buf:
                    return
                take = min(self.remaining, len(buf))
                self._lines(buf[:take], now)
                del buf[:take]
                self.remaining -= take
                if self.remaining:
                    return
                if not self.chunked:
                    self._stream_done()
                    continue
                self.state = "crlf"
            elif self.state == "crlf":
                if len(buf) < 2:
                    return
                del buf[:2]
                self.state = "size"
            elif self.state == "trailer":
                if len(buf) < 2:
                    return
                del buf[:2]
                self._stream_done()

    def _lines(self, data: bytearray, now: int) -> None:
        self.body += data
        end = self.body.rfind(b"\n")
        if end < 0:
            return
        for sent in _CONTENT.findall(self.body, 0, end):
            self.delays.append(now - int(sent))
            self.lines += 1
        del self.body[: end + 1]

    def _stream_done(self) -> None:
        self.left -= 1
        self.state = "head"
        if self.left:
            assert self.transport is not None
            self.transport.write(self.request)
        elif not self.done.done():
            self.done.set_result(self.lines)
            assert self.transport is not None
            self.transport.close()


async def run(port: int, path: str, streams: int, repeat: int, key: str | None, ramp: float) -> dict:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Why is the sky blue?"}]}).encode()
    auth = f"Authorization: Bearer {key}\r\n".encode() if key else b""
    request = (
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()
        + auth
        + b"\r\n"
        + body
    )
    loop = asyncio.get_running_loop()
    delays: list[int] = []
    started = time.monotonic()

    async def one(i: int) -> int:
        await asyncio.sleep(ramp * i / streams)  # spread the connects: no SYN flood
        done = loop.create_future()
        await loop.create_connection(lambda: StreamReader(request, repeat, delays, done), "127.0.0.1", port)
        return await done

    results = await asyncio.gather(*(one(i) for i in range(streams)), return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    delays.sort()
    ms = [d / 1e6 for d in delays]

    def pct(p: float) -> float | None:
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 3) if ms else None

    return {
        "streams": streams,
        "repeat": repeat,
        "lines": len(ms),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": round(ms[-1], 3) if ms else None,
        "seconds": round(time.monotonic() - started, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/api/chat")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--key")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds over which connections open")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    print(json.dumps(asyncio.run(run(args.port, args.path, args.streams, args.repeat, args.key, args.ramp))))
