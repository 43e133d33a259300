"""What the gateway's upstream clients cost per request, against the least a keep-alive HTTP/1.1 client can do.

    PYTHONPATH=. python tests/bench/bench_upstream_client.py [requests]

aiohttp's ClientSession with the gateway's settings (proxy/passthrough/upstream.py), the gateway's
KeepAliveClient (proxy/passthrough/keepalive_client.py, what inference requests use) and a minimal
client (a pool of keep-alive connections, a request written in one `write`, the answer cut at its
Content-Length) each send the same non-streamed `/v1/chat/completions` request to a raw upstream in
another process, 32 at a time, rounds alternating; printed: requests/s and this process's CPU per
request. The minimal client is no candidate for the gateway (no chunked bodies, no timeouts, no
errors): it only bounds what a cheaper client could save.
"""

from __future__ import annotations

import asyncio
import collections
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from proxy.passthrough.keepalive_client import KeepAliveClient
from proxy.passthrough.silence import Silences

CONCURRENCY, ROUNDS = 32, 3
BODY = b'{"model":"llama3.2","messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":false}'
HEADERS = {"Content-Type": "application/json", "Accept": "*/*", "User-Agent": "wrk"}
ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"llama3.2",'
    b'"system_fingerprint":"fp_ollama","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"The sky is blue because of Rayleigh scattering."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}'
)
UPSTREAM = f"""
import asyncio
ANSWER = {ANSWER!r}
HEAD = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n"
REPLY = HEAD % len(ANSWER) + ANSWER

class Upstream(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while (end := self.buffer.find(b"\\r\\n\\r\\n")) >= 0:
            length = next((int(line[15:]) for line in self.buffer[:end].lower().split(b"\\r\\n")
                           if line.startswith(b"content-length:")), 0)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(REPLY)

async def main():
    server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.answer: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).split(b"\r\n")
        length = next((int(line[15:]) for line in head[1:] if line.lower().startswith(b"content-length:")), 0)
        if len(self.buffer) >= end + 4 + length:
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.answer.set_result((int(head[0].split(b" ", 2)[1]), body))


async def minimal_client(port: int, requests: int) -> tuple[float, float]:
    loop, idle = asyncio.get_running_loop(), collections.deque()
    head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}Content-Length: {len(BODY)}\r\n\r\n"
    )
    request_bytes = request.encode() + BODY

    async def one() -> None:
        connection = idle.pop() if idle else (await loop.create_connection(_Connection, "127.0.0.1", port))[1]
        connection.answer = loop.create_future()
        connection.transport.write(request_bytes)
        await connection.answer
        idle.append(connection)

    return await _timed(one, requests)


async def aiohttp_client(port: int, requests: int) -> tuple[float, float]:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        read_bufsize=256 * 1024,
    )
    url = aiohttp.client.URL(f"http://127.0.0.1:{port}/v1/chat/completions")
    headers_only = aiohttp.ClientTimeout(total=None, sock_connect=10)

    async def one() -> None:
        response = await session.request(
            "POST", url, headers=HEADERS, data=BODY, allow_redirects=False, timeout=headers_only
        )
        await response.read()
        response.release()

    try:
        return await _timed(one, requests)
    finally:
        await session.close()


async def keepalive_client(port: int, requests: int) -> tuple[float, float]:
    client = KeepAliveClient(connect_timeout=10, read_bufsize=256 * 1024, silences=Silences(300))
    url = URL(f"http://127.0.0.1:{port}/v1/chat/completions")
    headers = CIMultiDict(HEADERS)

    async def one() -> None:
        async with asyncio.timeout(300):  # as failover.send bounds the wait for the head
            answer = await client.request("POST", url, headers, BODY)
        answer.content.read_nowait()
        answer.release()

    try:
        return await _timed(one, requests)
    finally:
        client.close()


async def _timed(one, requests: int) -> tuple[float, float]:
    for _ in range(200):  # connections made, code warm
        await one()
    numbers = iter(range(requests))

    async def client() -> None:
        for _ in numbers:
            await one()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return requests / (time.perf_counter() - wall), (time.process_time() - cpu) / requests * 1e6


async def main(requests: int) -> None:
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE, text=True)
    try:
        port = int(upstream.stdout.readline())
        clients = {
            "aiohttp ClientSession": aiohttp_client,
            "the gateway's KeepAliveClient": keepalive_client,
            "minimal client": minimal_client,
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for _ in range(ROUNDS):
            for name, client in clients.items():
                results[name].append(await client(port, requests))
    finally:
        upstream.terminate()
    loop = type(asyncio.get_running_loop()).__module__
    machine = platform.processor() or platform.machine()
    print(f"{machine}, Python {platform.python_version()}, aiohttp {aiohttp.__version__}, loop {loop}")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"{requests} requests, {CONCURRENCY} at a time, {ROUNDS} rounds alternating\n")
    print("| client | requests/s | CPU µs per request |\n|---|---|---|")
    for name, runs in results.items():
        rates, cpus = sorted(r for r, _ in runs), sorted(c for _, c in runs)
        print(f"| {name} | {rates[0]:,.0f}–{rates[-1]:,.0f} | {cpus[0]:.1f}–{cpus[-1]:.1f} |")


if __name__ == "__main__":
    try:
        import uvloop  # as serve runs when it is installed
    except ImportError:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
    else:
        uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
