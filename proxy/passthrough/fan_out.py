"""Pull, delete and copy without X-Ollama-Backend: sent to every healthy node, answers merged.

A streamed pull relays each node's progress as it comes, every line with `"backend": "<name>"`
added. A node's own last line becomes a status line (`"success on gpu1"`, or `"error on gpu1:
…"`): the clients stop at the first `success` and raise at the first `error`
(ollama-js AbortableAsyncIterator, ollama-python Client._stream). The stream then ends with one
`{"status":"success"}` once every node succeeded, or one `{"error":"…"}` naming the nodes that
failed. Without streaming (and for delete and copy), the answer is the nodes' common answer, or the
first failure with the nodes named. docs/backends.md shows the shapes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from proxy.backends.node import Node
from proxy.backends.registry import BACKENDS, Outcome
from proxy.errors import GatewayError
from proxy.passthrough.relay import Relayed
from proxy.passthrough.upstream import UPSTREAM_ERRORS, upstream_request_headers, upstream_url
from proxy.state import UPSTREAM_SESSION

NDJSON = "application/x-ndjson"
ANSWER_LIMIT = 1024 * 1024


async def fan_out(request: web.Request, body: bytes, forwarded: Any) -> web.StreamResponse:
    """`forwarded` is the request's Forwarded record: what was relayed is noted there."""
    nodes = request.app[BACKENDS].healthy()
    if not nodes:
        raise GatewayError(503, "no Ollama node is available", {"Retry-After": "2"})
    headers = upstream_request_headers(request.headers, drop_length=True)
    if request.path == "/api/pull" and _streams(body):
        return await _relay_progress(request, nodes, headers, body, forwarded)
    answers = await asyncio.gather(*(_answer(request, node, headers, body) for node in nodes))
    status, content_type, payload = _combine(request.path, list(zip(nodes, answers, strict=True)))
    forwarded.relayed = Relayed(bytes_out=len(payload))
    return web.Response(status=status, body=payload, headers={"Content-Type": content_type} if payload else None)


def _streams(body: bytes) -> bool:
    """Native `stream` is a *bool: only an explicit false turns streaming off (api/types.go)."""
    try:
        data = json.loads(body)
    except ValueError:
        return True
    return not (isinstance(data, dict) and data.get("stream") is False)


Answer = tuple[int, str, bytes]  # status (0: no answer), content type, body


async def _answer(request: web.Request, node: Node, headers: CIMultiDict[str], body: bytes) -> Answer:
    backends = request.app[BACKENDS]
    backends.begin(node)
    outcome = Outcome.UNREACHABLE
    try:
        async with request.app[UPSTREAM_SESSION].request(
            request.method, upstream_url(node.config.url, request.rel_url), headers=headers, data=body
        ) as answer:
            payload = await answer.content.read(ANSWER_LIMIT)
            outcome = Outcome.FAILED if answer.status in (502, 503, 504) else Outcome.ANSWERED
            return answer.status, answer.headers.get("Content-Type", ""), payload
    except UPSTREAM_ERRORS:
        return 0, "", b""
    finally:
        backends.end(node, outcome)
        backends.refresh_tags(node)  # what it holds has changed


def _combine(path: str, answers: list[tuple[Node, Answer]]) -> Answer:
    ok = [answer for _, answer in answers if 200 <= answer[0] < 300]
    missing = [answer for _, answer in answers if answer[0] == 404]
    failed = [(node, answer) for node, answer in answers if not 200 <= answer[0] < 300 and answer[0] != 404]
    if not failed:
        # Deleted (or copied) where the model was; 404 only if no node had it, in the node's words.
        return ok[0] if ok else missing[0]
    node, (status, _, payload) = failed[0]
    names = ", ".join(node.name for node, _ in failed)
    done = ", ".join(node.name for node, answer in answers if 200 <= answer[0] < 300) or "none"
    message = f"{path} failed on {names} ({_error_text(status, payload)}); succeeded on: {done}"
    return status or 502, "application/json; charset=utf-8", json.dumps({"error": message}).encode()


def _error_text(status: int, payload: bytes) -> str:
    if status == 0:
        return "unreachable"
    try:
        data = json.loads(payload)
    except ValueError:
        return f"answered {status}"
    return str(data.get("error")) if isinstance(data, dict) and "error" in data else f"answered {status}"


async def _relay_progress(
    request: web.Request, nodes: list[Node], headers: CIMultiDict[str], body: bytes, forwarded: Any
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    await response.prepare(request)
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()
    failures: dict[str, str] = {}
    tasks = [asyncio.create_task(_progress(request, node, headers, body, lines, failures)) for node in nodes]
    relayed = forwarded.relayed = Relayed()
    try:
        remaining = len(tasks)
        while remaining:
            line = await lines.get()
            if line is None:
                remaining -= 1
                continue
            relayed.bytes_out += len(line)
            await response.write(line)
        if failures:
            text = "; ".join(f"{name}: {error}" for name, error in failures.items())
            relayed.error = f"pull failed on {text}"
            last = {"error": relayed.error}
        else:
            last = {"status": "success"}
        end = _ndjson(last)
        relayed.bytes_out += len(end)
        await response.write_eof(end)
    finally:
        for task in tasks:
            task.cancel()
    return response


async def _progress(
    request: web.Request,
    node: Node,
    headers: CIMultiDict[str],
    body: bytes,
    lines: asyncio.Queue[bytes | None],
    failures: dict[str, str],
) -> None:
    """One node's progress lines, tagged with its name, onto `lines`; None when it has ended."""
    backends = request.app[BACKENDS]
    backends.begin(node)
    outcome, succeeded = Outcome.UNREACHABLE, False
    try:
        async with request.app[UPSTREAM_SESSION].request(
            request.method, upstream_url(node.config.url, request.rel_url), headers=headers, data=body
        ) as answer:
            outcome = Outcome.FAILED if answer.status in (502, 503, 504) else Outcome.ANSWERED
            if answer.status != 200:
                payload = await answer.content.read(ANSWER_LIMIT)
                failures[node.name] = _error_text(answer.status, payload)
                return
            pending = b""
            async for chunk in answer.content.iter_any():
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    if line.strip():
                        succeeded = _tagged(node, line, lines, failures) or succeeded
            if pending.strip():
                succeeded = _tagged(node, pending, lines, failures) or succeeded
        if not succeeded and node.name not in failures:
            failures[node.name] = "the stream ended before success"
    except UPSTREAM_ERRORS:
        failures.setdefault(node.name, "connection lost" if outcome is Outcome.ANSWERED else "unreachable")
    finally:
        backends.end(node, outcome)
        backends.refresh_tags(node)
        lines.put_nowait(None)


def _tagged(node: Node, line: bytes, lines: asyncio.Queue[bytes | None], failures: dict[str, str]) -> bool:
    """Queue one progress line with the node's name; True when it is the node's success."""
    try:
        data = json.loads(line)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    success = False
    if "error" in data:
        failures[node.name] = str(data.pop("error"))
        data["status"] = f"error on {node.name}: {failures[node.name]}"
    elif data.get("status") == "success":
        data["status"] = f"success on {node.name}"
        success = True
    data["backend"] = node.name
    lines.put_nowait(_ndjson(data))
    return success


def _ndjson(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"
