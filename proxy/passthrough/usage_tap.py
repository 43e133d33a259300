"""Token usage measured on the side of a relayed Ollama response, without touching the bytes."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field

from proxy.values.text import MAX_MODEL

# A partial NDJSON/SSE line is held until its newline arrives. The final /api/generate line carries
# `context` and can pass 1.5 MB; past this cap we stop measuring that line rather than grow memory.
LINE_CAP = 16 * 1024 * 1024
# Non-stream bodies up to this size are json-parsed once at finish(). Bigger ones are embedding or
# `context` arrays, and json.loads on them blocks the event loop (~14 ms per MiB of floats), so only
# a tail is kept and scanned: Go encodes usage and metrics after those arrays.
PARSE_CAP = 1024 * 1024
TAIL = 64 * 1024
ERROR_CHARS = 500

# Final lines up to this size are json-parsed when the byte scans (tuned to Go's compact output)
# find nothing: another encoder, or a proxy in between, may write `"done": true` or reorder keys.
FINAL_LINE_PARSE_CAP = 64 * 1024
MODEL_CHARS = MAX_MODEL  # as much of a reported model name as the request log keeps

# Bounded: int() of a huge digit run raises (Python caps int-from-string length); counts are
# clamped to the request_log integer columns later anyway.
_DIGITS = re.compile(rb"\d{1,18}")
# Go's encoder writes `model` first in native answers (GenerateResponse, ChatResponse, EmbedResponse
# in https://github.com/ollama/ollama/blob/v0.32.15/api/types.go), so in their final line or body it is
# found without a parse.
_LEADING_MODEL = re.compile(rb'\{"model":("(?:[^"\\]|\\.){1,%d}")' % MODEL_CHARS)
# Usage field names: OpenAI, then /v1/responses and anthropic, then native metrics.
_PROMPT = ("prompt_tokens", "input_tokens", "prompt_eval_count")
_COMPLETION = ("completion_tokens", "output_tokens", "eval_count")
# /v1/completions with include_usage repeats this placeholder on every chunk (CompleteWriter in
# https://github.com/ollama/ollama/blob/v0.32.15/middleware/openai.go); the real numbers come last, on a
# `"choices":[]` chunk.
_ZEROED = b'"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'


@dataclass(slots=True)
class Usage:
    prompt_tokens: int | None
    completion_tokens: int | None
    estimated: bool  # the counts were not read from the answer: estimated, or zero for a cut answer
    error: str | None  # a mid-stream error (status stays 200), or the error body text on >= 400
    # The model the answer names: what Ollama ran, which may differ from the request's spelling.
    model: str | None = field(default=None, compare=False)

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

    Only lines that can carry usage or an error are parsed; they are found with byte checks tuned to the
    compact JSON Go's encoder writes. Those checks are safe against model output because JSON escapes
    every quote inside a string value. When they find no usage, the final line is parsed, so any
    equally valid spelling (spaces, reordered keys, CRLF) is still read.
    """

    __slots__ = ("_status", "_request_bytes", "_mode", "_buf", "_head", "_last", "_skipping", "_overflow",
                 "_chunks", "_done", "_prompt", "_completion", "_model", "_error", "_result")

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
        self._head = b""  # the start of a body over PARSE_CAP, where native answers name the model
        self._last: bytes | bytearray = b""  # the last block of whole NDJSON lines: the final line's home
        self._skipping = self._overflow = False
        self._chunks = 0  # lines with a `done` field: Ollama emits about one token per chunk
        self._done = False  # the final `done: true` line was seen
        self._prompt: int | None = None
        self._completion: int | None = None
        self._model: str | None = None
        self._error: str | None = None
        self._result: Usage | None = None

    def feed(self, chunk: bytes) -> None:
        if self._result is not None or not chunk:
            return
        if self._mode == "body":
            self._buf += chunk
            if len(self._buf) > PARSE_CAP:
                if not self._overflow:
                    self._head = bytes(self._buf[:MODEL_CHARS + 16])
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
                if self._mode == "ndjson" and not self._done:
                    self._take_final_line()
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
            self._last = block  # a reference, not a copy: finish() may parse its last line
            # Every native chunk has a `done` field, one per line (a key inside a string is escaped).
            self._chunks += block.count(b'"done"')
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
            if (b'"usage"' in line or b'"error"' in line) and (_ZEROED not in line or b'"choices":[]' in line):
                self._take_event(_loads(line[5:]))  # and still counted below if it is a content chunk
            if (b'delta"' in line or b'"text_completion"' in line) and b'"finish_reason":"' not in line:
                self._chunks += 1  # chat/responses/anthropic deltas and completion text; not finish chunks

    def _take_done(self, line: bytes | bytearray) -> None:
        # No json.loads: this line may be megabytes of `context`. The top-level metrics come last,
        # so the last occurrence of a key is the real one.
        self._done = True
        prompt, completion = _last_int(line, ("prompt_eval_count",)), _last_int(line, ("eval_count",))
        model = _leading_model(line)
        # Not Go's layout, or a load/unload line without metrics: a small line is parsed instead.
        if ((prompt is None and completion is None) or model is None) and len(line) <= FINAL_LINE_PARSE_CAP and (
                isinstance(obj := _loads(line), dict)):
            self._take_final(obj)
            return
        self._model = model or self._model
        if prompt is not None or completion is not None:
            self._prompt, self._completion = prompt or 0, completion or 0

    def _take_final_line(self) -> None:
        """The byte scans saw no Go-compact `"done":true`: parse the last complete line instead."""
        line = self._last.rstrip()
        line = line[line.rfind(b"\n") + 1:]
        if len(line) <= FINAL_LINE_PARSE_CAP:
            obj = _loads(line)
            if isinstance(obj, dict):
                self._error = _error_text(obj) or self._error
                self._take_final(obj)
        elif _LOOSE_DONE.search(line):  # a final /api/generate line with a long `context`
            self._done = True
            prompt, completion = _loose_last_int(line, "prompt_eval_count"), _loose_last_int(line, "eval_count")
            if prompt is not None or completion is not None:
                self._prompt, self._completion = prompt or 0, completion or 0

    def _take_final(self, obj: dict) -> None:
        """A parsed native final line: metrics and model, top level only."""
        if obj.get("done") is not True:
            return
        self._done = True
        self._model = _model_of(obj) or self._model
        prompt, completion = obj.get("prompt_eval_count"), obj.get("eval_count")
        prompt, completion = (n if type(n) is int else None for n in (prompt, completion))
        if prompt is not None or completion is not None or obj.get("done_reason") in _NO_WORK:
            self._prompt, self._completion = prompt or 0, completion or 0

    def _take_event(self, obj: object) -> None:
        if not isinstance(obj, dict):
            return
        self._error = _error_text(obj) or self._error
        # Top level: OpenAI's final chunk, anthropic message_delta; `response`: /v1/responses completed;
        # `message`: anthropic message_start, whose output_tokens is a placeholder. The last value wins.
        for holder, has_completion in (obj, True), (obj.get("response"), True), (obj.get("message"), False):
            if not isinstance(holder, dict):
                continue
            self._model = _model_of(holder) or self._model
            usage = holder.get("usage")
            if isinstance(usage, dict) and not _placeholder(holder, usage):
                prompt, completion = _pair(usage)
                if prompt is not None:
                    self._prompt = prompt
                if completion is not None and has_completion:
                    self._completion = completion

    def _finish_stream(self) -> Usage:
        prompt, completion, chunks = self._prompt, self._completion, self._chunks - self._done
        if prompt is None and completion is None and not chunks:
            # Progress streams, load calls, errors before content.
            return Usage(0, 0, False, self._error, self._model)
        estimated = prompt is None or completion is None
        prompt = estimate_tokens(self._request_bytes) if prompt is None else prompt
        return Usage(prompt, chunks if completion is None else completion, estimated, self._error, self._model)

    def _finish_body(self) -> Usage:
        body = self._buf
        if self._overflow:  # embedding or `context` arrays: usage and metrics come after them
            prompt, completion = _scan_int(body, _PROMPT), _scan_int(body, _COMPLETION)
            model = _leading_model(self._head) or _loose_last_str(body, "model")
            if prompt is None and completion is None:
                return Usage(estimate_tokens(self._request_bytes), 0, True, None, model)
            return Usage(prompt or 0, completion or 0, False, None, model)
        obj = _loads(body) if body else None
        error = _error_text(obj) if isinstance(obj, dict) else None
        if self._status >= 400:
            return Usage(0, 0, False, error or _text(body))
        if not isinstance(obj, dict):
            return Usage(0, 0, False, None)
        model = _model_of(obj)
        usage = obj.get("usage")
        prompt, completion = _pair(usage if isinstance(usage, dict) else obj)  # `usage`, else native metrics
        if prompt is not None or completion is not None:  # embeddings report no completion
            return Usage(prompt or 0, completion or 0, False, error, model)
        embedding = _is_embedding(obj)
        if obj.get("done_reason") in _NO_WORK or not (embedding or _TEXT_FIELDS.intersection(obj)):
            return Usage(0, 0, False, error, model)  # load/unload, tags, show, pull status, ...
        # Model output without counts (legacy /api/embeddings, or a server that reports none): the
        # prompt is estimated from the request, a text answer from its body (JSON syntax included).
        output = 0 if embedding else estimate_tokens(len(body))
        return Usage(estimate_tokens(self._request_bytes), output, True, error, model)


# Final lines of calls that only load or unload a model: no tokens, and none to estimate.
_NO_WORK = ("load", "unload")
# Fields only text answers carry: native generate and chat, OpenAI, /v1/responses, anthropic.
_TEXT_FIELDS = frozenset({"response", "message", "choices", "output", "content"})


def _is_embedding(obj: dict) -> bool:
    """Native /api/embed and /api/embeddings, or OpenAI's `{"object":"list","data":[{"embedding"...`."""
    data = obj.get("data")
    return ("embedding" in obj or "embeddings" in obj
            or (isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "embedding" in data[0]))
_LOOSE_DONE = re.compile(rb'"done"\s*:\s*true')


def _model_of(obj: dict) -> str | None:
    model = obj.get("model")
    return model[:MODEL_CHARS] if isinstance(model, str) and model else None


def _leading_model(data: bytes | bytearray) -> str | None:
    match = _LEADING_MODEL.match(data)
    return _string(match.group(1)) if match else None


def _string(quoted: bytes) -> str | None:
    """A JSON string literal's value; model names seldom need the decoder."""
    if b"\\" in quoted:
        try:
            value = json.loads(quoted)
        except ValueError:
            return None
    else:
        value = quoted[1:-1].decode("utf-8", "replace")
    return value[:MODEL_CHARS] if isinstance(value, str) and value else None


def _placeholder(holder: dict, usage: dict) -> bool:
    """The all-zero usage Ollama's /v1/completions repeats on every chunk that still has choices
    (CompleteWriter in https://github.com/ollama/ollama/blob/v0.32.15/middleware/openai.go): the real counts
    follow on a `"choices":[]` chunk."""
    return bool(holder.get("choices")) and not any(usage.get(k) for k in _PROMPT + _COMPLETION)


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


@functools.lru_cache(maxsize=None)
def _loose_key(name: str, value: bytes) -> re.Pattern[bytes]:
    return re.compile(rb'"%s"\s*:\s*(%s)' % (name.encode(), value))


def _loose_last(data: bytes | bytearray, names: tuple[str, ...], value: bytes) -> bytes | None:
    """Like _last_int, with any JSON whitespace around the colon: for answers too big to parse."""
    for name in names:
        match = None
        for match in _loose_key(name, value).finditer(data):
            pass
        if match is not None:
            return match.group(1)
    return None


def _scan_int(data: bytes | bytearray, names: tuple[str, ...]) -> int | None:
    """Go's compact spelling first (a plain rfind), then any spelling."""
    found = _last_int(data, names)
    return _loose_last_int(data, *names) if found is None else found


def _loose_last_int(data: bytes | bytearray, *names: str) -> int | None:
    digits = _loose_last(data, names, rb"\d{1,18}")
    return None if digits is None else int(digits)


def _loose_last_str(data: bytes | bytearray, name: str) -> str | None:
    quoted = _loose_last(data, (name,), rb'"(?:[^"\\]|\\.){1,%d}"' % MODEL_CHARS)
    return None if quoted is None else _string(quoted)


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
