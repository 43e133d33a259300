"""Token usage measured on the side of a relayed Ollama response, without touching the bytes."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

# A partial NDJSON/SSE line is held until its newline arrives. The final /api/generate line carries
# `context` and can pass 1.5 MB; past this cap we stop measuring that line rather than grow memory.
LINE_CAP = 16 * 1024 * 1024
# Non-stream bodies up to this size are json-parsed once at finish(). Bigger ones are embedding or
# `context` arrays, and json.loads on them blocks the event loop (~14 ms per MiB of floats), so only
# a tail is kept and scanned: Go encodes usage and metrics after those arrays.
PARSE_CAP = 1024 * 1024
TAIL = 64 * 1024
ERROR_CHARS = 500

# Bounded: int() of a huge digit run raises (Python caps int-from-string length); counts are
# clamped to the request_log integer columns later anyway.
_DIGITS = re.compile(rb"\d{1,18}")
# Usage field names: OpenAI, then /v1/responses and anthropic, then native metrics.
_PROMPT = ("prompt_tokens", "input_tokens", "prompt_eval_count")
_COMPLETION = ("completion_tokens", "output_tokens", "eval_count")
# /v1/completions with include_usage repeats this placeholder on every chunk (O middleware/openai.go
# CompleteWriter); the real numbers come last, on a `"choices":[]` chunk.
_ZEROED = b'"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'


@dataclass(slots=True)
class Usage:
    prompt_tokens: int | None
    completion_tokens: int | None
    estimated: bool  # Ollama reported nothing and we estimated
    error: str | None  # a mid-stream error (status stays 200), or the error body text on >= 400

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


def estimate_tokens(byte_count: int) -> int:
    """~4 bytes per token, rounded up: the usual rule of thumb for English under BPE tokenizers.

    Used only where Ollama reports nothing. Request bytes include JSON syntax and base64 images, so this
    over-counts those.
    """
    return max(0, -(-byte_count // 4))


class UsageTap:
    """Fed each relayed chunk as read from upstream; finish() returns the usage. Never raises on bad input.

    Only lines that can carry usage or an error are parsed; they are found with byte checks. Those checks
    are safe against model output because JSON escapes every quote inside a string value.
    """

    __slots__ = ("_status", "_request_bytes", "_mode", "_buf", "_skipping", "_overflow",
                 "_chunks", "_prompt", "_completion", "_error", "_result")

    def __init__(self, content_type: str, *, status: int = 200, request_bytes: int = 0) -> None:
        mime = content_type.split(";", 1)[0].strip().lower()
        self._status = status
        self._request_bytes = request_bytes
        if status >= 400 or (mime.endswith("json") and "ndjson" not in mime):
            self._mode = "body"  # error bodies are parsed whatever their type, for the message
        elif "ndjson" in mime:
            self._mode = "ndjson"
        elif mime == "text/event-stream":
            self._mode = "sse"
        else:
            self._mode = "ignore"
        self._buf = bytearray()
        self._skipping = self._overflow = False
        self._chunks = 0  # content-bearing chunks: Ollama emits about one token per chunk
        self._prompt: int | None = None
        self._completion: int | None = None
        self._error: str | None = None
        self._result: Usage | None = None

    def feed(self, chunk: bytes) -> None:
        if self._result is not None or not chunk:
            return
        if self._mode == "body":
            self._buf += chunk
            if len(self._buf) > PARSE_CAP:
                self._overflow = True
            if self._overflow:
                del self._buf[:-TAIL]
        elif self._mode != "ignore":
            self._feed_lines(chunk)

    def finish(self) -> Usage:
        """The usage so far; on a cut stream, an estimate from what was seen. Idempotent."""
        if self._result is None:
            if self._mode == "body":
                self._result = self._finish_body()
            else:
                if self._buf:  # a final line without its newline
                    self._scan(self._buf)
                self._buf = bytearray()
                self._result = self._finish_stream()
        return self._result

    def _feed_lines(self, chunk: bytes) -> None:
        if self._skipping:  # the rest of an over-cap line: drop it up to its newline
            start = chunk.find(b"\n")
            if start < 0:
                return
            self._skipping = False
            chunk = chunk[start + 1:]
        end = chunk.rfind(b"\n")
        if end < 0:
            self._hold(chunk)
            return
        if self._buf:
            self._buf += chunk[:end + 1]
            block, self._buf = self._buf, bytearray()
        else:  # the common case: whole lines, scanned without a copy
            block = chunk if end == len(chunk) - 1 else chunk[:end + 1]
        self._scan(block)
        if end + 1 < len(chunk):
            self._hold(chunk[end + 1:])

    def _hold(self, part: bytes) -> None:
        if len(self._buf) + len(part) > LINE_CAP:
            self._buf = bytearray()
            self._skipping = True
        else:
            self._buf += part

    def _scan(self, block: bytes | bytearray) -> None:
        if self._mode == "ndjson":
            # Every native chunk before the last says "done":false, compact as Go's encoder writes it.
            self._chunks += block.count(b'"done":false')
            if b'{"error"' in block:  # rare: every line, in order
                for line in block.split(b"\n"):
                    if line.startswith(b'{"error"'):
                        self._take_event(_loads(line))
                    elif b'"done":true' in line:
                        self._take_done(line)
            elif (at := block.rfind(b'"done":true')) >= 0:  # only its line, not a split of the block
                end = block.find(b"\n", at)
                self._take_done(block[block.rfind(b"\n", 0, at) + 1:end if end >= 0 else len(block)])
            return
        for line in block.split(b"\n"):
            if not line.startswith(b"data:"):  # event:, id:, comments and blank separators
                continue
            if b'"usage"' in line or b'"error"' in line:
                if _ZEROED not in line or b'"choices":[]' in line:
                    self._take_event(_loads(line[5:]))
                    continue
            if (b'delta"' in line or b'"text_completion"' in line) and b'"finish_reason":"' not in line:
                self._chunks += 1  # chat/responses/anthropic deltas and completion text; not finish chunks

    def _take_done(self, line: bytes | bytearray) -> None:
        # No json.loads: this line may be megabytes of `context`. The top-level metrics come last,
        # so the last occurrence of a key is the real one.
        self._prompt = _last_int(line, ("prompt_eval_count",)) or 0
        self._completion = _last_int(line, ("eval_count",)) or 0

    def _take_event(self, obj: object) -> None:
        if not isinstance(obj, dict):
            return
        self._error = _error_text(obj) or self._error
        # Top level: OpenAI's final chunk, anthropic message_delta; `response`: /v1/responses completed;
        # `message`: anthropic message_start, whose output_tokens is a placeholder. The last value wins.
        for holder, has_completion in (obj, True), (obj.get("response"), True), (obj.get("message"), False):
            usage = holder.get("usage") if isinstance(holder, dict) else None
            if isinstance(usage, dict):
                prompt, completion = _pair(usage)
                if prompt is not None:
                    self._prompt = prompt
                if completion is not None and has_completion:
                    self._completion = completion

    def _finish_stream(self) -> Usage:
        prompt, completion = self._prompt, self._completion
        if prompt is None and completion is None and not self._chunks:
            return Usage(0, 0, False, self._error)  # progress streams, load calls, errors before content
        estimated = prompt is None or completion is None
        prompt = estimate_tokens(self._request_bytes) if prompt is None else prompt
        return Usage(prompt, self._chunks if completion is None else completion, estimated, self._error)

    def _finish_body(self) -> Usage:
        body = self._buf
        if self._overflow:
            return Usage(_last_int(body, _PROMPT) or 0, _last_int(body, _COMPLETION) or 0, False, None)
        obj = _loads(body) if body else None
        error = _error_text(obj) if isinstance(obj, dict) else None
        if self._status >= 400:
            return Usage(0, 0, False, error or _text(body))
        if not isinstance(obj, dict):
            return Usage(0, 0, False, None)
        usage = obj.get("usage")
        prompt, completion = _pair(usage if isinstance(usage, dict) else obj)  # `usage`, else native metrics
        if prompt is not None or completion is not None:  # embeddings report no completion
            return Usage(prompt or 0, completion or 0, False, error)
        if "embedding" in obj:  # legacy /api/embeddings reports nothing
            return Usage(estimate_tokens(self._request_bytes), 0, True, error)
        return Usage(0, 0, False, error)  # load/unload, tags, show, pull status, ...


def _loads(data: bytes | bytearray) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


@functools.lru_cache(maxsize=None)  # a handful of field names
def _json_key(name: str) -> bytes:
    return b'"%s":' % name.encode()


def _last_int(data: bytes | bytearray, names: tuple[str, ...]) -> int | None:
    """The number after the last `"name":` of the first name that has one: a scan, not a parse."""
    for name in names:
        key = _json_key(name)
        at = data.rfind(key)
        if at >= 0 and (match := _DIGITS.match(data, at + len(key))):
            return int(match.group())
    return None


def _pair(usage: dict) -> tuple[int | None, int | None]:
    prompt = next((n for k in _PROMPT if type(n := usage.get(k)) is int), None)
    return prompt, next((n for k in _COMPLETION if type(n := usage.get(k)) is int), None)


def _error_text(obj: dict) -> str | None:
    error = obj.get("error")
    if error is None and isinstance(obj.get("response"), dict):  # /v1/responses response.failed
        error = obj["response"].get("error")
    if isinstance(error, dict):  # OpenAI and anthropic shapes
        error = error.get("message") or json.dumps(error)
    if error is None and obj.get("type") == "error":  # /v1/responses error event
        error = obj.get("message")
    return str(error)[:ERROR_CHARS] if error else None


def _text(body: bytes | bytearray) -> str | None:
    return bytes(body[:ERROR_CHARS * 4]).decode("utf-8", "replace").strip()[:ERROR_CHARS] or None
