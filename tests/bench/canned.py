"""The canned upstream: nginx answering fixed Ollama replies, and nginx as a plain reverse proxy.

The replies are the fake Ollama's own bytes (tests/support/fake_ollama.py speaks the real wire formats),
captured once per run, so the canned upstream answers exactly what Ollama would. nginx cannot look
inside a POST body, so a streamed request says so in `X-Bench-Stream: 1` as well as in its body.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from tests.support.fake_ollama import create_fake_ollama

MODEL = "llama3.2"
STREAM_HEADER = "X-Bench-Stream"
MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    stream: bool

    @property
    def body(self) -> bytes:
        return json.dumps({"model": MODEL, "messages": MESSAGES, "stream": self.stream}, separators=(",", ":")).encode()

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.stream:
            headers[STREAM_HEADER] = "1"
        return headers


SCENARIOS = (
    Scenario("api/chat", "/api/chat", False),
    Scenario("api/chat stream", "/api/chat", True),
    Scenario("v1/chat", "/v1/chat/completions", False),
    Scenario("v1/chat stream", "/v1/chat/completions", True),
)


@dataclass(frozen=True)
class Reply:
    content_type: str
    body: bytes


async def capture_replies() -> dict[Scenario, Reply]:
    """Each scenario's reply, as the fake Ollama sends it (no pacing)."""
    server = TestServer(create_fake_ollama())
    await server.start_server()
    try:
        async with ClientSession() as session:
            replies = {}
            for scenario in SCENARIOS:
                async with session.post(
                    server.make_url(scenario.path), data=scenario.body, headers=scenario.headers
                ) as response:
                    assert response.status == 200, (scenario, response.status)
                    replies[scenario] = Reply(response.headers["Content-Type"], await response.read())
            return replies
    finally:
        await server.close()


def _nginx_string(body: bytes) -> str:
    text = body.decode()
    assert "$" not in text, "nginx would read $ as a variable"
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _main_block(tmp: Path, name: str) -> str:
    as_root = "user root;\n" if os.geteuid() == 0 else ""  # workers keep the tmp dir readable
    return (
        f"{as_root}worker_processes 1;\ndaemon off;\npid {tmp / name}.pid;\n"
        f"error_log {tmp / name}-error.log warn;\nevents {{ worker_connections 4096; }}\n"
    )


def _http_common(tmp: Path, name: str) -> str:
    temp = "".join(
        f"    {d}_temp_path {tmp / (name + '-' + d)};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return temp + "    access_log off;\n    keepalive_requests 1000000;\n    keepalive_timeout 120s;\n"


def canned_conf(tmp: Path, port: int, replies: dict[Scenario, Reply]) -> str:
    """nginx answering every scenario from memory: `return 200` with the captured body."""
    locations = []
    for path in sorted({s.path for s in replies}):
        plain = next(r for s, r in replies.items() if s.path == path and not s.stream)
        streamed = next(r for s, r in replies.items() if s.path == path and s.stream)
        internal = "/_stream" + path
        locations.append(
            f"    location = {path} {{\n"
            f"      if ($http_x_bench_stream) {{ rewrite ^ {internal} last; }}\n"
            f'      default_type "{plain.content_type}";\n'
            f"      return 200 {_nginx_string(plain.body)};\n    }}\n"
            f"    location = {internal} {{\n      internal;\n"
            f'      default_type "{streamed.content_type}";\n'
            f"      return 200 {_nginx_string(streamed.body)};\n    }}\n"
        )
    return (
        _main_block(tmp, "canned")
        + "http {\n"
        + _http_common(tmp, "canned")
        + f"  server {{\n    listen 127.0.0.1:{port} reuseport backlog=4096;\n"
        + "".join(locations)
        + "  }\n}\n"
    )


def proxy_conf(tmp: Path, routes: list[tuple[int, int]]) -> str:
    """nginx as a reverse proxy, one server per (listen port, upstream port): keep-alive upstreams,
    no buffering, as nginx.conf does in front of the gateway."""
    servers = []
    for listen, upstream in routes:
        servers.append(
            f"  upstream u{listen} {{ server 127.0.0.1:{upstream}; keepalive 256; }}\n"
            f"  server {{\n    listen 127.0.0.1:{listen} reuseport backlog=4096;\n"
            f"    location / {{\n      proxy_pass http://u{listen};\n      proxy_http_version 1.1;\n"
            f'      proxy_set_header Connection "";\n      proxy_buffering off;\n'
            f"      proxy_request_buffering on;\n      proxy_read_timeout 300s;\n    }}\n  }}\n"
        )
    return _main_block(tmp, "proxy") + "http {\n" + _http_common(tmp, "proxy") + "".join(servers) + "}\n"
