"""A fake Ollama server that speaks Ollama's real wire formats, for the gateway's tests.

Ollama cannot run here, so the gateway's tests drive this instead. The formats follow Ollama's
source at https://github.com/ollama/ollama/tree/v0.32.15 (the files named below are in it):
Go-style compact JSON, NDJSON and SSE framing, content types, status codes and error shapes.
Replies are deterministic (fixed timestamps, ids, tokens and durations), so one request always
gets the same bytes, whether it is sent directly or through the gateway.

Run it with handler cancellation on, or a client that goes away is never noticed.
pytest-aiohttp's ``await aiohttp_server(create_fake_ollama())`` already does: aiohttp 3.14's
TestServer always passes handler_cancellation=True (passing it again is a TypeError).
Elsewhere use ``web.run_app(app, handler_cancellation=True)``, or from a shell
``python -m tests.support.fake_ollama --host 127.0.0.1 --port 11434 --token-interval 0.05``.

Every model answers REPLY_TOKENS ("The sky is blue because of Rayleigh scattering."), one
chunk per token, so eval_count is 9; ``options.num_predict`` (``max_tokens`` on /v1) cuts it
short with done_reason "length". prompt_eval_count is the prompt's whitespace-separated words
plus 10 (chat: all message contents joined).

Special model names, always known whether listed or not (a ``:latest`` tag is ignored):

- ``hang``: never answers; waits until cancelled, which is recorded.
- ``quiet``: sends the response headers, then nothing more, ever (idle-timeout tests).
- ``error-mid``: a few chunks, then an ``{"error": ...}`` line and the end, status 200
  (streamResponse in server/routes.go; docs/api/errors.mdx). On /v1 the stream stops before its
  finish events; without streaming it is a 500. Pulling it streams a few progress lines, then the error.
- ``die-mid``: a few chunks, then the TCP connection is aborted inside the chunked body.
- ``big-context``: /api/generate's final line carries a ``context`` array over 1.5 MB.

Pacing for every model comes from ``FakeOllamaState.token_interval``, which tests may change
while the server runs.

``FakeOllamaState.fault`` makes the whole server misbehave, for tests of several nodes: ``"hang"``
accepts every request and never answers; ``"busy"`` answers every request with Ollama's 503 for a
full queue (``handleScheduleError``, server/routes.go). To make one die, stop its server
(tests/support/fake_nodes.py runs fakes that stop and start again on the same port).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import itertools
import json
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

VERSION = "0.33.0"
DEFAULT_MODELS = ("llama3.2:latest", "qwen3:0.6b", "nomic-embed-text:latest")
REPLY_TOKENS = ("The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", ".")
SPECIAL_MODELS = frozenset({"hang", "quiet", "error-mid", "die-mid", "big-context"})
FAIL_AFTER = 3  # chunks that error-mid and die-mid send before misbehaving
BUSY_ERROR = "server busy, please try again.  maximum pending requests exceeded"  # server/sched.go
FAULTS = (None, "hang", "busy")
MID_STREAM_ERROR = (
    "model runner has unexpectedly stopped, this may be due to resource limitations"
    " or an internal error, check ollama server logs for details"
)
PULL_ERROR = "pull model manifest: file does not exist"

# A fixed clock. Go prints time.Time as RFC 3339 with nanoseconds; /v1 uses Unix seconds.
CREATED_AT = "2026-01-01T12:00:00.123456789Z"
CREATED_UNIX = 1767268800
MODIFIED_AT = "2025-12-01T09:30:00Z"
MODIFIED_UNIX = 1764581400
EXPIRES_AT = "2026-01-01T12:05:00.123456789Z"
# Durations are integer nanoseconds (time.Duration in api.Metrics, api/types.go).
LOAD_NS = 25_000_000
PROMPT_TOKEN_NS = 1_000_000
EVAL_TOKEN_NS = 20_000_000

MODEL_SIZE = 2_019_393_189
LAYER_SIZE = 2_019_377_376
BIG_CONTEXT_LEN = 250_000  # 7-byte entries: a final line of about 1.75 MB
EMBEDDING_DIM = 32
CHAT_ID, COMPLETION_ID = "chatcmpl-123", "cmpl-123"
RESPONSE_ID, RESPONSE_ITEM_ID = "resp_123456", "msg_123456"
ANTHROPIC_ID, ANTHROPIC_REQUEST_ID = "msg_0123456789abcdef01234567", "req_0123456789abcdef01234567"

GIN_JSON = "application/json; charset=utf-8"  # gin's c.JSON (render/json.go)
BARE_JSON = "application/json"  # waitForStream (server/routes.go), middleware/openai.go
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
SSE_DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive"}  # /v1/responses, /v1/messages
GIN_MISSES = {404: b"404 page not found", 405: b"405 method not allowed"}
GO_PRIVATE_NETS = tuple(
    ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
GO_ESCAPED = "<>&\u2028\u2029"  # json.Marshal escapes these inside strings
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
DIGEST_PATTERN = re.compile(r"sha256[:-][0-9a-fA-F]{64}")  # manifest/paths.go
ZERO_DURATION = re.compile(r"[+-]?0+(\.0*)?(ns|us|µs|ms|s|m|h)?")
BLOB_CHUNK = 64 * 1024
MAX_BODY = 256 * 1024**2  # Ollama has no cap; base64 images make bodies large


@dataclass
class RecordedRequest:
    """One request as it reached the fake, before any check."""

    method: str
    path: str
    raw_path: str  # undecoded, with the query string
    query_string: str  # as sent, still percent-encoded
    headers: CIMultiDict[str]
    body_length: int = 0  # for blob uploads, the bytes streamed in
    json_body: Any = None  # None when the body is not JSON


@dataclass
class FakeOllamaState:
    """What tests inspect and steer; the app keeps one under FAKE_STATE."""

    models: list[str]  # pull and create add, delete removes
    token_interval: float = 0.0  # seconds before each streamed chunk
    requests: list[RecordedRequest] = field(default_factory=list)
    cancelled: list[tuple[str, float]] = field(default_factory=list)  # (path, time.monotonic())
    active: int = 0  # handlers doing model work right now
    peak_active: int = 0
    loaded: list[str] = field(default_factory=list)  # what /api/ps shows
    blobs: dict[str, int] = field(default_factory=dict)  # "sha256:<hex>" -> size
    # Local names whose config points at another model: Ollama answers with that model's name
    # (`req.Model = m.Config.RemoteModel` in GenerateHandler and ChatHandler, server/routes.go).
    remote_models: dict[str, str] = field(default_factory=dict)
    fault: str | None = None  # one of FAULTS: the whole server hangs, or answers 503
    _cancel_seen: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def record_cancelled(self, path: str) -> None:
        self.cancelled.append((path, time.monotonic()))
        self._cancel_seen.set()

    async def wait_cancelled(self, timeout: float = 1.0, count: int = 1) -> bool:
        """Wait until `count` handlers have seen their client go; False on timeout."""

        async def enough() -> None:
            while len(self.cancelled) < count:
                self._cancel_seen.clear()
                await self._cancel_seen.wait()

        try:
            await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            return False
        return True


FAKE_STATE = web.AppKey("fake_ollama_state", FakeOllamaState)
_RECORD = web.RequestKey("fake_ollama_record", RecordedRequest)
_BODY = web.RequestKey("fake_ollama_body", bytes)
_DROPPED = web.RequestKey("fake_ollama_dropped", bool)


class _Halt(Exception):
    """Answer at once with `response`; raised by helpers deep inside a handler."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class _ModelFailed(Exception):
    """error-mid gave up after its first few chunks."""


# --- Wire encoding ---------------------------------------------------------------------


def _go_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Encode like Go's encoding/json: compact UTF-8, with <, >, & and U+2028/9 escaped.

    Go writes struct fields in declaration order (dict order here) but sorts map keys,
    so payloads that Ollama builds as map[string]any pass sort_keys=True.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    for char in GO_ESCAPED:
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode()


def _go_float(value: Any, default: float) -> int | float:
    """A float64 as Go prints it: 1.0 is `1`."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else default
    return int(number) if float(number).is_integer() else float(number)


def _json(value: Any, status: int = 200, content_type: str = GIN_JSON, *, newline: bool = False) -> web.Response:
    """A whole JSON reply; newline=True mimics Go's json.Encoder (the /v1 writers)."""
    body = _go_json(value) + (b"\n" if newline else b"")
    return web.Response(status=status, body=body, headers={"Content-Type": content_type})


def _ndjson(value: Any) -> bytes:
    return _go_json(value) + b"\n"


def _sse(value: Any) -> bytes:
    return b"data: " + _go_json(value) + b"\n\n"


def _sse_event(kind: str, value: Any, *, sort_keys: bool = False) -> bytes:
    return f"event: {kind}\ndata: ".encode() + _go_json(value, sort_keys=sort_keys) + b"\n\n"


def _native_error(status: int, message: str, content_type: str = GIN_JSON) -> web.Response:
    return _json({"error": message}, status, content_type)


def _openai_error(status: int, message: str, *, via_writer: bool = True) -> web.Response:
    """The OpenAI error shape (NewError, openai/openai.go). Handler errors pass through Ollama's
    OpenAI writer (json.Encoder: bare application/json and a trailing newline); the middleware's
    own 400s use gin's c.JSON.
    """
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return _json(body, status, BARE_JSON, newline=True) if via_writer else _json(body, status)


def _anthropic_error(status: int, message: str, *, via_writer: bool = True) -> web.Response:
    """The Anthropic error shape (anthropic/anthropic.go), framed like _openai_error."""
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        503: "overloaded_error",
    }
    body = {
        "type": "error",
        "error": {"type": kinds.get(status, "api_error"), "message": message},
        "request_id": ANTHROPIC_REQUEST_ID,
    }
    return _json(body, status, BARE_JSON, newline=True) if via_writer else _json(body, status)


# --- Request bodies and model names ---------------------------------------------------


def _go_strings(value: Any) -> Any:
    """Lone surrogates in JSON escapes ("\\ud800") become U+FFFD, as in Go's encoding/json: "invalid
    UTF-16 surrogate pairs are not treated as an error" (https://pkg.go.dev/encoding/json#Unmarshal)."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_go_strings(item) for item in value]
    if isinstance(value, dict):
        return {_go_strings(key): _go_strings(item) for key, item in value.items()}
    return value


def _decode(raw: bytes, go_type: str, *, empty: str) -> dict[str, Any]:
    """Parse a JSON object body, failing with Go's encoding/json wording (c.ShouldBindJSON)."""
    text = raw.decode("utf-8", "replace")
    if not text.strip():
        raise ValueError(empty)
    try:
        value = json.loads(text)
    except RecursionError:  # Go's decoder stops at 10,000 levels (encoding/json scanner.go, maxNestingDepth)
        raise ValueError("exceeded max depth") from None
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise ValueError("unexpected EOF") from None
        raise ValueError(f"invalid character {text[exc.pos]!r} looking for beginning of value") from None
    if value is None:
        return {}
    value = _go_strings(value)
    if not isinstance(value, dict):
        kind = {bool: "bool", str: "string", list: "array"}.get(type(value), "number")
        raise ValueError(f"json: cannot unmarshal {kind} into Go value of type {go_type}")
    return value


def _native_body(request: web.Request, go_type: str) -> dict[str, Any]:
    try:
        return _decode(request[_BODY], go_type, empty="missing request body")
    except ValueError as exc:
        raise _Halt(_native_error(400, str(exc))) from None


def _compat_body(request: web.Request, go_type: str, error: Callable[..., web.Response]) -> dict[str, Any]:
    """Bodies on /v1: the middleware's gin.ShouldBindJSON reports an empty body as Go's `EOF`."""
    try:
        return _decode(request[_BODY], go_type, empty="EOF")
    except ValueError as exc:
        raise _Halt(error(400, str(exc), via_writer=False)) from None


def _name(body: dict[str, Any], *keys: str) -> str:
    """The first non-empty string among `keys`: `model`, then the deprecated `name` (cmp.Or in
    server/routes.go)."""
    for key in keys:
        if isinstance(value := body.get(key), str) and value:
            return value
    return ""


def _canonical(name: str) -> str:
    """Ollama's default tag: "llama3.2" means "llama3.2:latest"."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _special(name: str) -> str | None:
    base = _canonical(name).rsplit(":", 1)[0]
    return base if base in SPECIAL_MODELS else None


def _stored(state: FakeOllamaState, name: str) -> str | None:
    """The entry of `state.models` that `name` refers to, if any."""
    return next((m for m in state.models if _canonical(m) == _canonical(name)), None)


def _is_known(state: FakeOllamaState, name: str) -> bool:
    return bool(name) and (_special(name) is not None or _stored(state, name) is not None)


def _require_model(request: web.Request, name: str, error: Callable[..., web.Response] = _native_error) -> None:
    if not name:
        raise _Halt(error(400, "model is required"))
    if not _is_known(request.app[FAKE_STATE], name):
        raise _Halt(error(404, f"model '{name}' not found"))  # GenerateHandler, server/routes.go


def _reported(request: web.Request, name: str) -> str:
    """The model name an answer carries: the remote model for an alias, else the name as sent."""
    return request.app[FAKE_STATE].remote_models.get(name, name)


def _wants_stream(body: dict[str, Any]) -> bool:
    """Native `stream` is a *bool: only an explicit false turns streaming off (api/types.go)."""
    return body.get("stream") is not False


def _num_predict(body: dict[str, Any]) -> Any:
    options = body.get("options")
    return options.get("num_predict") if isinstance(options, dict) else None


def _is_unload(body: dict[str, Any]) -> bool:
    """keep_alive 0 (a number of seconds, or a Go duration string) unloads (Duration.UnmarshalJSON
    in api/types.go)."""
    keep_alive = body.get("keep_alive")
    if isinstance(keep_alive, (int, float)) and not isinstance(keep_alive, bool):
        return 0 <= keep_alive < 1  # Go truncates to whole seconds
    return isinstance(keep_alive, str) and ZERO_DURATION.fullmatch(keep_alive) is not None


def _note_loaded(state: FakeOllamaState, name: str, body: dict[str, Any]) -> None:
    stored = _stored(state, name)
    if stored is None:
        return
    if stored in state.loaded:
        state.loaded.remove(stored)
    if not _is_unload(body):
        state.loaded.append(stored)


def _texts(value: Any) -> list[str]:
    """Message contents as plain text: strings, or the `text` of content parts."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return []
    texts = []
    for item in value:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict):
            texts += _texts(item.get("content")) + _texts(item.get("text"))
    return texts


def _inputs(value: Any) -> list[str]:
    """Embedding inputs: one string or a list of strings."""
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


# --- The fake model --------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    """What the fake model says to one prompt: fixed tokens and counts that match them."""

    tokens: tuple[str, ...]
    prompt_eval_count: int
    done_reason: str

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def eval_count(self) -> int:
        return len(self.tokens)

    def metrics(self) -> dict[str, int]:
        """api.Metrics for the final chunk, in Go's field order (api/types.go)."""
        prompt_ns = self.prompt_eval_count * PROMPT_TOKEN_NS
        eval_ns = self.eval_count * EVAL_TOKEN_NS
        return {
            "total_duration": LOAD_NS + prompt_ns + eval_ns,
            "load_duration": LOAD_NS,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": prompt_ns,
            "eval_count": self.eval_count,
            "eval_duration": eval_ns,
        }

    def usage(self) -> dict[str, int]:
        """OpenAI usage: prompt_eval_count, eval_count and their sum (ToUsage, openai/openai.go)."""
        return {
            "prompt_tokens": self.prompt_eval_count,
            "completion_tokens": self.eval_count,
            "total_tokens": self.prompt_eval_count + self.eval_count,
        }


def _reply(prompt: str, num_predict: Any) -> _Reply:
    """REPLY_TOKENS, cut to num_predict (max_tokens on /v1) with done_reason "length"."""
    limited = isinstance(num_predict, int) and 0 < num_predict < len(REPLY_TOKENS)
    tokens = REPLY_TOKENS[:num_predict] if limited else REPLY_TOKENS
    return _Reply(tokens, len(prompt.split()) + 10, "length" if limited else "stop")


def _context(name: str, reply: _Reply) -> list[int]:
    size = BIG_CONTEXT_LEN if _special(name) == "big-context" else reply.prompt_eval_count + reply.eval_count
    return list(range(100_000, 100_000 + size))


def _embedding(text: str) -> list[float]:
    """A deterministic vector; (2b-255)/256 is exact in float32, so Go would print it the same."""
    return [(2 * byte - 255) / 256 for byte in hashlib.sha256(text.encode()).digest()[:EMBEDDING_DIM]]


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()


async def _stall(request: web.Request, name: str, content_type: str) -> None:
    """hang answers nothing; quiet sends its headers and then nothing."""
    kind = _special(name)
    if kind == "hang":
        await _forever()
    if kind == "quiet":
        await web.StreamResponse(headers={"Content-Type": content_type}).prepare(request)
        await _forever()


async def _paced(request: web.Request, name: str, items: Sequence[Any], failure: str) -> AsyncIterator[Any]:
    """Yield items token_interval apart; error-mid and die-mid give up after FAIL_AFTER."""
    state = request.app[FAKE_STATE]
    kind = _special(name)
    for index, item in enumerate(items):
        if index == FAIL_AFTER and kind == "error-mid":
            raise _ModelFailed(failure)
        if index == FAIL_AFTER and kind == "die-mid" and request.transport is not None:
            request[_DROPPED] = True
            request.transport.abort()  # the client sees a chunked body cut short
            await _forever()  # handler cancellation ends this handler
        if state.token_interval > 0:
            await asyncio.sleep(state.token_interval)
        yield item


@contextlib.asynccontextmanager
async def _in_flight(request: web.Request) -> AsyncIterator[None]:
    """Count model work, and record a cancellation (the client went away)."""
    state = request.app[FAKE_STATE]
    state.active += 1
    state.peak_active = max(state.peak_active, state.active)
    try:
        yield
    except asyncio.CancelledError:
        if not request.get(_DROPPED):
            state.record_cancelled(request.path)
        raise
    finally:
        state.active -= 1


async def _stream(
    request: web.Request,
    name: str,
    content_type: str,
    steps: Sequence[Sequence[bytes]],
    *,
    error_frame: Callable[[str], bytes] | None = None,
    failure: str = MID_STREAM_ERROR,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Write each step's frames token_interval apart, chunked and unbuffered
    (streamResponse, server/routes.go).

    A step is what Ollama writes for one model chunk: one NDJSON line, or a few SSE frames.
    """
    async with _in_flight(request):
        await _stall(request, name, content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type, **(headers or {})})
        await response.prepare(request)
        try:
            try:
                async for frames in _paced(request, name, steps, failure):
                    for frame in frames:
                        await response.write(frame)
            except _ModelFailed as failed:
                if error_frame is not None:
                    await response.write(error_frame(str(failed)))
            await response.write_eof()
        except ConnectionResetError:  # the client left between two writes
            request.app[FAKE_STATE].record_cancelled(request.path)
    return response


async def _collect(
    request: web.Request,
    name: str,
    items: Sequence[Any],
    content_type: str,
    error: Callable[[int, str], web.Response],
    failure: str = MID_STREAM_ERROR,
) -> list[Any]:
    """Produce a non-streamed reply at the same pace; a failure becomes a 500."""
    async with _in_flight(request):
        await _stall(request, name, content_type)
        try:
            return [item async for item in _paced(request, name, items, failure)]
        except _ModelFailed as failed:
            raise _Halt(error(500, str(failed))) from None


def _ndjson_error(message: str) -> bytes:
    # Mid-stream errors (streamResponse, server/routes.go): the status stays 200; the error is one more line.
    return _ndjson({"error": message})


# --- Native /api handlers --------------------------------------------------------------


async def _root(request: web.Request) -> web.Response:
    return web.Response(text="Ollama is running")  # c.String: text/plain; charset=utf-8


async def _version(request: web.Request) -> web.Response:
    return _json({"version": VERSION})


async def _status(request: web.Request) -> web.Response:
    return _json({"cloud": {"disabled": False, "source": "none"}})


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "3.2B",
        "quantization_level": "Q4_K_M",
    }


def _digest(name: str) -> str:
    return hashlib.sha256(_canonical(name).encode()).hexdigest()


async def _tags(request: web.Request) -> web.Response:
    models = [
        {
            "name": m,
            "model": m,
            "modified_at": MODIFIED_AT,
            "size": MODEL_SIZE,
            "digest": _digest(m),
            "details": _details(),
        }
        for m in request.app[FAKE_STATE].models
    ]
    return _json({"models": models})


async def _ps(request: web.Request) -> web.Response:
    models = [
        {
            "name": m,
            "model": m,
            "size": MODEL_SIZE,
            "digest": _digest(m),
            "details": _details(),
            "expires_at": EXPIRES_AT,
            "size_vram": MODEL_SIZE,
            "context_length": 4096,
        }
        for m in request.app[FAKE_STATE].loaded
    ]
    return _json({"models": models})


async def _show(request: web.Request) -> web.Response:
    body = _native_body(request, "api.ShowRequest")
    name = _name(body, "model", "name")
    _require_model(request, name)
    return _json(
        {
            "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {_canonical(name)}\n',
            "parameters": 'stop                           "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": _details(),
            "model_info": {
                "general.architecture": "llama",
                "general.parameter_count": 3212749888,
                "llama.context_length": 131072,
            },
            "capabilities": ["completion"],
            "modified_at": MODIFIED_AT,
        }
    )


async def _generate(request: web.Request) -> web.StreamResponse:
    body = _native_body(request, "api.GenerateRequest")
    name = _name(body, "model")
    _require_model(request, name)
    _note_loaded(request.app[FAKE_STATE], name, body)
    head = {"model": _reported(request, name), "created_at": CREATED_AT}
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
    if not prompt and not body.get("images"):  # a model-load call, even when streaming (GenerateHandler)
        reason = "unload" if _is_unload(body) else "load"
        return _json({**head, "response": "", "done": True, "done_reason": reason})
    reply = _reply(prompt, _num_predict(body))
    final = {**head, "response": "", "done": True, "done_reason": reply.done_reason}
    if not body.get("raw"):
        final["context"] = _context(name, reply)
    final.update(reply.metrics())
    if _wants_stream(body):
        lines = [{**head, "response": token, "done": False} for token in reply.tokens] + [final]
        steps = [[_ndjson(line)] for line in lines]
        return await _stream(request, name, NDJSON, steps, error_frame=_ndjson_error)
    await _collect(request, name, reply.tokens, GIN_JSON, _native_error)
    return _json({**final, "response": reply.text})


async def _chat(request: web.Request) -> web.StreamResponse:
    body = _native_body(request, "api.ChatRequest")
    name = _name(body, "model")
    _require_model(request, name)
    _note_loaded(request.app[FAKE_STATE], name, body)
    head = {"model": _reported(request, name), "created_at": CREATED_AT}
    if not body.get("messages"):  # `messages: []` only loads the model (ChatHandler)
        reason = "unload" if _is_unload(body) else "load"
        return _json({**head, "message": {"role": "assistant", "content": ""}, "done_reason": reason, "done": True})
    reply = _reply(" ".join(_texts(body["messages"])), _num_predict(body))
    final = {
        **head,
        "message": {"role": "assistant", "content": ""},
        "done_reason": reply.done_reason,
        "done": True,
        **reply.metrics(),
    }
    if _wants_stream(body):
        lines = [{**head, "message": {"role": "assistant", "content": token}, "done": False} for token in reply.tokens]
        steps = [[_ndjson(line)] for line in [*lines, final]]
        return await _stream(request, name, NDJSON, steps, error_frame=_ndjson_error)
    await _collect(request, name, reply.tokens, GIN_JSON, _native_error)
    return _json({**final, "message": {"role": "assistant", "content": reply.text}})


async def _embed(request: web.Request) -> web.Response:
    body = _native_body(request, "api.EmbedRequest")
    name = _name(body, "model")
    _require_model(request, name)
    _note_loaded(request.app[FAKE_STATE], name, body)
    inputs = _inputs(body.get("input"))
    [vectors] = await _collect(request, name, [[_embedding(text) for text in inputs]], GIN_JSON, _native_error)
    count = sum(len(text.split()) + 1 for text in inputs)
    return _json(
        {
            "model": name,
            "embeddings": vectors,
            "total_duration": LOAD_NS + count * PROMPT_TOKEN_NS,
            "load_duration": LOAD_NS,
            "prompt_eval_count": count,
        }
    )


async def _embeddings(request: web.Request) -> web.Response:
    """The legacy endpoint: only `embedding`, no usage (EmbeddingsHandler)."""
    body = _native_body(request, "api.EmbeddingRequest")
    name = _name(body, "model")
    if not name:
        return _native_error(400, "model is required")
    if not _is_known(request.app[FAKE_STATE], name):
        return _native_error(404, f'model "{name}" not found, try pulling it first')
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
    [vector] = await _collect(request, name, [_embedding(prompt) if prompt else []], GIN_JSON, _native_error)
    return _json({"embedding": vector})


def _progress(status: str, digest: str = "", total: int = 0, completed: int = 0) -> dict[str, Any]:
    """api.ProgressResponse: digest, total and completed are omitempty (api/types.go)."""
    line: dict[str, Any] = {"status": status}
    optional = {"digest": digest, "total": total, "completed": completed}
    line.update((key, value) for key, value in optional.items() if value)
    return line


def _layer_progress(verb: str, name: str) -> list[dict[str, Any]]:
    digest = f"sha256:{_digest(name)}"
    status = f"{verb} {digest[7:19]}"  # Ollama shows 12 hex digits
    return [_progress(status, digest, LAYER_SIZE, LAYER_SIZE * quarter // 4) for quarter in range(5)]


async def _progress_reply(
    request: web.Request, name: str, body: dict[str, Any], lines: list[dict[str, Any]]
) -> web.StreamResponse:
    """Pull, push and create: NDJSON progress, or with stream:false only the last object
    (waitForStream, server/routes.go)."""
    if _wants_stream(body):
        steps = [[_ndjson(line)] for line in lines]
        return await _stream(request, name, NDJSON, steps, error_frame=_ndjson_error, failure=PULL_ERROR)

    def error(status: int, message: str) -> web.Response:
        return _native_error(status, message, BARE_JSON)

    await _collect(request, name, lines, BARE_JSON, error, PULL_ERROR)
    return _json(lines[-1], content_type=BARE_JSON)  # waitForStream: exactly application/json


def _add_model(state: FakeOllamaState, name: str) -> None:
    if _special(name) is None and _stored(state, name) is None:
        state.models.append(_canonical(name))


async def _pull(request: web.Request) -> web.StreamResponse:
    body = _native_body(request, "api.PullRequest")
    name = _name(body, "model", "name")
    if not name:
        return _native_error(400, "invalid model name")
    lines = [
        _progress("pulling manifest"),
        *_layer_progress("pulling", name),
        _progress("verifying sha256 digest"),
        _progress("writing manifest"),
        _progress("removing any unused layers"),
        _progress("success"),
    ]
    response = await _progress_reply(request, name, body, lines)
    _add_model(request.app[FAKE_STATE], name)
    return response


async def _push(request: web.Request) -> web.StreamResponse:
    body = _native_body(request, "api.PushRequest")
    name = _name(body, "model", "name")
    if not _is_known(request.app[FAKE_STATE], name):
        return _native_error(404, f"model '{name}' not found")
    lines = [
        _progress("retrieving manifest"),
        *_layer_progress("pushing", name),
        _progress("pushing manifest"),
        _progress("success"),
    ]
    return await _progress_reply(request, name, body, lines)


async def _create(request: web.Request) -> web.StreamResponse:
    body = _native_body(request, "api.CreateRequest")
    name = _name(body, "model", "name")
    if not name:
        return _native_error(400, "invalid model name")
    lines = [
        _progress("gathering model components"),
        _progress(f"using existing layer sha256:{_digest(name)}"),
        _progress("writing manifest"),
        _progress("success"),
    ]
    response = await _progress_reply(request, name, body, lines)
    _add_model(request.app[FAKE_STATE], name)
    return response


async def _copy(request: web.Request) -> web.Response:
    body = _native_body(request, "api.CopyRequest")
    state = request.app[FAKE_STATE]
    source, destination = _name(body, "source"), _name(body, "destination")
    if not _is_known(state, source):
        return _native_error(404, f"model {json.dumps(source)} not found")  # Go's %q
    if not destination:
        return _native_error(400, "invalid destination name")
    _add_model(state, destination)
    return web.Response()  # 200, empty body (CopyHandler, server/routes.go)


async def _delete(request: web.Request) -> web.Response:
    body = _native_body(request, "api.DeleteRequest")
    state = request.app[FAKE_STATE]
    name = _name(body, "model", "name")
    stored = _stored(state, name)
    if stored is None:
        return _native_error(404, f"model '{name}' not found")
    state.models.remove(stored)
    if stored in state.loaded:
        state.loaded.remove(stored)
    return web.Response()


def _blob_digest(request: web.Request) -> str:
    digest = request.match_info["digest"]
    if not DIGEST_PATTERN.fullmatch(digest):
        raise _Halt(_native_error(400, "invalid digest format"))
    return f"sha256:{digest[7:].lower()}"


async def _head_blob(request: web.Request) -> web.Response:
    digest = _blob_digest(request)
    if digest in request.app[FAKE_STATE].blobs:
        return web.Response()
    return _native_error(404, f"blob {json.dumps(digest)} not found")


async def _create_blob(request: web.Request) -> web.Response:
    """Hash the upload as it streams in; never hold it in memory (CreateBlobHandler, server/routes.go).

    Unlike Ollama, a blob that already exists is still read to the end, so an uploader
    never sees its connection closed under it.
    """
    state = request.app[FAKE_STATE]
    expected = _blob_digest(request)
    sha256, size = hashlib.sha256(), 0
    async for chunk in request.content.iter_chunked(BLOB_CHUNK):
        sha256.update(chunk)
        size += len(chunk)
    request[_RECORD].body_length = size
    got = f"sha256:{sha256.hexdigest()}"
    if got != expected:
        return _native_error(400, f'digest mismatch, expected "{request.match_info["digest"]}", got "{got}"')
    existed = expected in state.blobs
    state.blobs[expected] = size
    return web.Response(status=200 if existed else 201)


async def _whoami(request: web.Request) -> web.Response:
    key = base64.urlsafe_b64encode(b"ssh-ed25519 AAAAfake").decode().rstrip("=")
    signin_url = f"https://ollama.com/connect?name=fake-ollama&key={key}"
    return _json({"error": "unauthorized", "signin_url": signin_url}, 401)


async def _signout(request: web.Request) -> web.Response:
    return _native_error(401, "you are not currently signed in")


# --- OpenAI- and Anthropic-compatible /v1 handlers -------------------------------------


def _stream_requested(body: dict[str, Any]) -> bool:
    return body.get("stream") is True  # a plain bool on /v1: false by default (openai/openai.go)


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _openai_chat(request: web.Request) -> web.StreamResponse:
    body = _compat_body(request, "openai.ChatCompletionRequest", _openai_error)
    if not body.get("messages"):
        return _openai_error(400, "[] is too short - 'messages'", via_writer=False)
    name = _name(body, "model")
    _require_model(request, name, _openai_error)
    reply = _reply(" ".join(_texts(body["messages"])), body.get("max_tokens"))

    def head(kind: str) -> dict[str, Any]:
        return {
            "id": CHAT_ID,
            "object": kind,
            "created": CREATED_UNIX,
            "model": _reported(request, name),
            "system_fingerprint": "fp_ollama",
        }

    if not _stream_requested(body):
        await _collect(request, name, reply.tokens, BARE_JSON, _openai_error)
        message = {"role": "assistant", "content": reply.text}
        choice = {"index": 0, "message": message, "finish_reason": reply.done_reason}
        completion = {**head("chat.completion"), "choices": [choice], "usage": reply.usage()}
        return _json(completion, content_type=BARE_JSON, newline=True)

    def chunk(content: str, finish: str | None) -> dict[str, Any]:
        delta = {"role": "assistant", "content": content}
        return {**head("chat.completion.chunk"), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    # ChatWriter (middleware/openai.go): a separate finish chunk, a usage chunk only when asked, then [DONE].
    last = [_sse(chunk("", reply.done_reason))]
    if _include_usage(body):
        last.append(_sse({**head("chat.completion.chunk"), "choices": [], "usage": reply.usage()}))
    steps = [[_sse(chunk(token, None))] for token in reply.tokens] + [[*last, SSE_DONE]]
    return await _stream(request, name, SSE, steps)


async def _openai_completions(request: web.Request) -> web.StreamResponse:
    body = _compat_body(request, "openai.CompletionRequest", _openai_error)
    name = _name(body, "model")
    _require_model(request, name, _openai_error)
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
    reply = _reply(prompt, body.get("max_tokens"))

    def choice(text: str, finish: str | None) -> dict[str, Any]:
        return {"text": text, "index": 0, "finish_reason": finish}

    if not _stream_requested(body):
        await _collect(request, name, reply.tokens, BARE_JSON, _openai_error)
        completion = {
            "id": COMPLETION_ID,
            "object": "text_completion",
            "created": CREATED_UNIX,
            "model": name,
            "system_fingerprint": "fp_ollama",
            "choices": [choice(reply.text, reply.done_reason)],
            "usage": reply.usage(),
        }
        return _json(completion, content_type=BARE_JSON, newline=True)

    include_usage = _include_usage(body)

    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None) -> bytes:
        # CompletionChunk's field order differs from Completion's: choices before model.
        value = {
            "id": COMPLETION_ID,
            "object": "text_completion",
            "created": CREATED_UNIX,
            "choices": choices,
            "model": name,
            "system_fingerprint": "fp_ollama",
        }
        return _sse(value if usage is None else {**value, "usage": usage})

    # CompleteWriter (middleware/openai.go): with include_usage every chunk carries a zeroed usage,
    # and a last one the real usage.
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0} if include_usage else None
    steps = [[chunk([choice(token, None)], zero)] for token in reply.tokens]
    last = [chunk([choice("", reply.done_reason)], zero)]
    if include_usage:
        last.append(chunk([], reply.usage()))
    steps.append([*last, SSE_DONE])
    return await _stream(request, name, SSE, steps)


async def _openai_embeddings(request: web.Request) -> web.Response:
    body = _compat_body(request, "openai.EmbedRequest", _openai_error)
    encoding = body.get("encoding_format") if isinstance(body.get("encoding_format"), str) else ""
    if encoding and encoding.lower() not in ("float", "base64"):
        message = f"Invalid value for 'encoding_format' = {encoding}. Supported values: ['float', 'base64']."
        return _openai_error(400, message, via_writer=False)
    inputs = _inputs(body.get("input"))
    if not inputs:
        return _openai_error(400, "invalid input", via_writer=False)
    name = _name(body, "model")
    _require_model(request, name, _openai_error)
    [vectors] = await _collect(request, name, [[_embedding(text) for text in inputs]], BARE_JSON, _openai_error)
    if encoding.lower() == "base64":  # little-endian float32, like floatsToBase64
        vectors = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors]
    count = sum(len(text.split()) + 1 for text in inputs)
    data = [{"object": "embedding", "embedding": vector, "index": i} for i, vector in enumerate(vectors)]
    usage = {"prompt_tokens": count, "total_tokens": count}
    embeddings = {"object": "list", "data": data, "model": name, "usage": usage}
    return _json(embeddings, content_type=BARE_JSON, newline=True)


def _openai_model(name: str) -> dict[str, Any]:
    path = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    parts = path.split("/")
    return {
        "id": name,
        "object": "model",
        "created": MODIFIED_UNIX,
        "owned_by": parts[-2] if len(parts) > 1 else "library",
    }  # model.ParseName(...).Namespace


async def _openai_models(request: web.Request) -> web.Response:
    # ToListCompletion (openai/openai.go) leaves an empty list a nil slice: null.
    data = [_openai_model(m) for m in request.app[FAKE_STATE].models] or None
    return _json({"object": "list", "data": data}, content_type=BARE_JSON, newline=True)


async def _openai_retrieve(request: web.Request) -> web.Response:
    # aiohttp matches the still-encoded path, so "a%2Fb" arrives here as one segment "a/b";
    # had the gateway decoded it, "/v1/models/a/b" would not match at all (the OpenAI SDK sends "/" as %2F).
    name = request.match_info["model"]
    if not _is_known(request.app[FAKE_STATE], name):
        return _openai_error(404, f"model '{name}' not found")
    return _json(_openai_model(name), content_type=BARE_JSON, newline=True)


def _responses_object(
    name: str,
    body: dict[str, Any],
    status: str,
    output: list[Any],
    usage: dict[str, Any] | None,
    completed_at: int | None,
) -> dict[str, Any]:
    """The Responses API `response` object that Ollama echoes the request into."""
    instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else ""
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": CREATED_UNIX,
        "completed_at": completed_at,
        "status": status,
        "incomplete_details": None,
        "model": name,
        "previous_response_id": None,
        "instructions": instructions or None,
        "output": output,
        "error": None,
        "tools": [],
        "tool_choice": "auto",
        "truncation": "disabled",
        "parallel_tool_calls": True,
        "text": {"format": {"type": "text"}},
        "top_p": _go_float(body.get("top_p"), 1.0),
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "top_logprobs": 0,
        "temperature": _go_float(body.get("temperature"), 1.0),
        "reasoning": None,
        "usage": usage,
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "store": False,
        "background": body.get("background") is True,
        "service_tier": "default",
        "metadata": {},
        "safety_identifier": None,
        "prompt_cache_key": None,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _output_message(status: str, content: list[Any]) -> dict[str, Any]:
    return {"id": RESPONSE_ITEM_ID, "type": "message", "status": status, "role": "assistant", "content": content}


def _responses_usage(reply: _Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt_eval_count,
        "output_tokens": reply.eval_count,
        "total_tokens": reply.prompt_eval_count + reply.eval_count,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _responses_steps(name: str, body: dict[str, Any], reply: _Reply) -> list[list[bytes]]:
    """The SSE events of a streamed /v1/responses, grouped per model chunk (openai/responses.go)."""
    sequence = itertools.count()

    def event(kind: str, **data: Any) -> bytes:
        # Ollama builds these as map[string]any, so Go sorts their keys.
        return _sse_event(kind, {**data, "type": kind, "sequence_number": next(sequence)}, sort_keys=True)

    where = {"item_id": RESPONSE_ITEM_ID, "output_index": 0, "content_index": 0}
    opening = _responses_object(name, body, "in_progress", [], None, None)
    # The opening events go out with the first model chunk; built first for their sequence numbers.
    first = [
        event("response.created", response=opening),
        event("response.in_progress", response=opening),
        event("response.output_item.added", output_index=0, item=_output_message("in_progress", [])),
        event("response.content_part.added", **where, part=_output_text("")),
    ]
    steps = [[event("response.output_text.delta", **where, delta=token, logprobs=[])] for token in reply.tokens]
    steps[0][:0] = first
    done = _output_message("completed", [_output_text(reply.text)])
    completed = _responses_object(name, body, "completed", [done], _responses_usage(reply), CREATED_UNIX)
    steps.append(
        [
            event("response.output_text.done", **where, text=reply.text, logprobs=[]),
            event("response.content_part.done", **where, part=_output_text(reply.text)),
            event("response.output_item.done", output_index=0, item=done),
            event("response.completed", response=completed),
        ]
    )
    return steps


async def _openai_responses(request: web.Request) -> web.StreamResponse:
    body = _compat_body(request, "openai.ResponsesRequest", _openai_error)
    name = _name(body, "model")
    _require_model(request, name, _openai_error)
    prompt = " ".join(_texts(body.get("instructions")) + _texts(body.get("input")))
    reply = _reply(prompt, body.get("max_output_tokens"))
    if _stream_requested(body):  # no [DONE] here (ResponsesMiddleware)
        return await _stream(request, name, SSE, _responses_steps(name, body, reply), headers=SSE_HEADERS)
    await _collect(request, name, reply.tokens, BARE_JSON, _openai_error)
    output = [_output_message("completed", [_output_text(reply.text)])]
    response = _responses_object(name, body, "completed", output, _responses_usage(reply), CREATED_UNIX)
    return _json(response, content_type=BARE_JSON, newline=True)


async def _anthropic_messages(request: web.Request) -> web.StreamResponse:
    body = _compat_body(request, "anthropic.MessagesRequest", _anthropic_error)
    name, max_tokens, messages = _name(body, "model"), body.get("max_tokens"), body.get("messages")
    if not name:
        return _anthropic_error(400, "model is required", via_writer=False)
    if not isinstance(max_tokens, int) or max_tokens <= 0:
        return _anthropic_error(400, "max_tokens is required and must be positive", via_writer=False)
    if not messages:
        return _anthropic_error(400, "messages is required", via_writer=False)
    _require_model(request, name, _anthropic_error)
    texts = _texts(body.get("system")) + _texts(messages)
    reply = _reply(" ".join(texts), max_tokens)
    stop_reason = "end_turn" if reply.done_reason == "stop" else "max_tokens"
    usage = {"input_tokens": reply.prompt_eval_count, "output_tokens": reply.eval_count}
    if _stream_requested(body):
        # message_start goes out with the first chunk, before Ollama knows prompt_eval_count,
        # so it carries Ollama's len/4 estimate; message_delta has the real counts (anthropic/anthropic.go).
        roles = [str(m.get("role", "")) for m in messages if isinstance(m, dict)]
        estimate = max(1, sum(map(len, texts + roles)) // 4)
        steps = _anthropic_steps(name, reply, estimate, stop_reason, usage)
        return await _stream(request, name, SSE, steps, headers=SSE_HEADERS)
    await _collect(request, name, reply.tokens, BARE_JSON, _anthropic_error)
    message = {
        "id": ANTHROPIC_ID,
        "type": "message",
        "role": "assistant",
        "model": name,
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": stop_reason,
        "usage": usage,
    }
    return _json(message, content_type=BARE_JSON, newline=True)


def _anthropic_steps(
    name: str, reply: _Reply, estimate: int, stop_reason: str, usage: dict[str, int]
) -> list[list[bytes]]:
    """The SSE events of a streamed /v1/messages, grouped per model chunk (anthropic/anthropic.go)."""
    start = {
        "type": "message_start",
        "message": {
            "id": ANTHROPIC_ID,
            "type": "message",
            "role": "assistant",
            "model": name,
            "content": [],
            "usage": {"input_tokens": estimate, "output_tokens": 0},
        },
    }
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    steps = [
        [
            _sse_event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}},
            )
        ]
        for token in reply.tokens
    ]
    steps[0][:0] = [_sse_event("message_start", start), _sse_event("content_block_start", block)]
    steps.append(
        [
            _sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse_event(
                "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": usage}
            ),
            _sse_event("message_stop", {"type": "message_stop"}),
        ]
    )
    return steps


# --- The app ---------------------------------------------------------------------------


def _split_host(host: str) -> str:
    """Go's net.SplitHostPort, falling back to the whole value when it fails."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end != -1 and host[end + 1 : end + 2] == ":" else host
    return host.split(":")[0] if host.count(":") == 1 else host


def _host_allowed(host_header: str) -> bool:
    """Ollama's allowedHostsMiddleware on a loopback listener (server/routes.go)."""
    host = _split_host(host_header)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.lower()
        return name in ("", "localhost", socket.gethostname().lower()) or name.endswith(
            (".localhost", ".local", ".internal")
        )
    private = any(ip.version == net.version and ip in net for net in GO_PRIVATE_NETS)
    return ip.is_loopback or ip.is_unspecified or private


@web.middleware
async def _gin(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    """Record the request, then answer like Ollama's gin engine: Host check, router misses, handler."""
    record = RecordedRequest(
        request.method, request.path, request.raw_path, request.rel_url.raw_query_string, request.headers.copy()
    )
    state = request.app[FAKE_STATE]
    state.requests.append(record)
    request[_RECORD] = record
    if state.fault == "hang":
        try:
            await _forever()
        except asyncio.CancelledError:
            state.record_cancelled(request.path)
            raise
    if state.fault == "busy":
        return _native_error(503, BUSY_ERROR)
    if not _host_allowed(request.headers.get("Host", "")):
        return web.Response(status=403)  # empty body
    miss = request.match_info.http_exception
    if miss is not None:  # gin's plain-text 404 and 405 (HandleMethodNotAllowed)
        return web.Response(status=miss.status, body=GIN_MISSES[miss.status], headers={"Content-Type": "text/plain"})
    if request.match_info.handler is not _create_blob:  # uploads stream through it instead
        request[_BODY] = await request.read()
        record.body_length = len(request[_BODY])
        with contextlib.suppress(ValueError, RecursionError):  # a body nested past Python's stack: not JSON here
            record.json_body = json.loads(request[_BODY])
    try:
        return await handler(request)
    except _Halt as halt:
        return halt.response


def create_fake_ollama(*, models: list[str] | None = None, token_interval: float = 0.0) -> web.Application:
    """Build the fake Ollama; its FakeOllamaState is app[FAKE_STATE].

    `models` defaults to DEFAULT_MODELS. Serve it with handler_cancellation=True (the module
    docstring says how).
    """
    app = web.Application(middlewares=[_gin], client_max_size=MAX_BODY)
    app[FAKE_STATE] = FakeOllamaState(
        models=list(DEFAULT_MODELS if models is None else models), token_interval=token_interval
    )
    # The table of GenerateRoutes (server/routes.go); web.get also answers HEAD unless
    # allow_head=False, as gin does here.
    app.router.add_routes(
        [
            web.get("/", _root),
            web.get("/api/version", _version),
            web.get("/api/status", _status, allow_head=False),
            web.post("/api/pull", _pull),
            web.post("/api/push", _push),
            web.get("/api/tags", _tags),
            web.post("/api/show", _show),
            web.delete("/api/delete", _delete),
            web.post("/api/me", _whoami),
            web.post("/api/signout", _signout),
            web.delete("/api/user/keys/{encoded_key}", _signout),
            web.post("/api/create", _create),
            web.post("/api/blobs/{digest}", _create_blob),
            web.head("/api/blobs/{digest}", _head_blob),
            web.post("/api/copy", _copy),
            web.get("/api/ps", _ps, allow_head=False),
            web.post("/api/generate", _generate),
            web.post("/api/chat", _chat),
            web.post("/api/embed", _embed),
            web.post("/api/embeddings", _embeddings),
            web.post("/v1/chat/completions", _openai_chat),
            web.post("/v1/completions", _openai_completions),
            web.post("/v1/embeddings", _openai_embeddings),
            web.get("/v1/models", _openai_models, allow_head=False),
            web.get("/v1/models/{model}", _openai_retrieve, allow_head=False),
            web.post("/v1/responses", _openai_responses),
            web.post("/v1/messages", _anthropic_messages),
        ]
    )
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake Ollama for manual runs and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--token-interval", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument(
        "--models", help="comma-separated model names (default: %(default)s)", default=",".join(DEFAULT_MODELS)
    )
    args = parser.parse_args(argv)
    app = create_fake_ollama(models=args.models.split(","), token_interval=args.token_interval)
    # No access log: benchmarks would measure the logger.
    web.run_app(app, host=args.host, port=args.port, handler_cancellation=True, access_log=None)


if __name__ == "__main__":
    main()
