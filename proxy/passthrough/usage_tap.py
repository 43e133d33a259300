"""Token usage measured on the side of a relayed Ollama response, without touching the bytes."""

from __future__ import annotations

import functools

from proxy.passthrough.usage import Usage, estimate_tokens
from proxy.passthrough.usage_body import body_usage
from proxy.passthrough.usage_fields import MODEL_CHARS
from proxy.passthrough.usage_stream import StreamUsage

__all__ = ["LINE_CAP", "PARSE_CAP", "TAIL", "Usage", "UsageTap", "estimate_tokens"]

# A partial NDJSON/SSE line is held until its newline arrives. The final /api/generate line carries
# `context` and can pass 1.5 MB; past this cap we stop measuring that line rather than grow memory.
LINE_CAP = 16 * 1024 * 1024
# Non-stream bodies up to this size are json-parsed once at finish(). Bigger ones are embedding or
# `context` arrays, and json.loads on them blocks the event loop (~14 ms per MiB of floats), so only
# a tail is kept and scanned: Go encodes usage and metrics after those arrays.
PARSE_CAP = 1024 * 1024
TAIL = 64 * 1024


class UsageTap:
    """Fed each relayed chunk as read from upstream; finish() returns the usage. Never raises on bad input.

    A body is kept (or, past PARSE_CAP, its head and tail) and read at the end (usage_body.py); a
    stream is cut into whole lines here, and each block of them read as it arrives (usage_stream.py).
    """

    __slots__ = ("_status", "_request_bytes", "_mode", "_buf", "_head", "_skipping", "_overflow", "_stream", "_result")

    def __init__(self, content_type: str, *, status: int = 200, request_bytes: int = 0) -> None:
        self._status = status
        self._request_bytes = request_bytes
        self._mode = _mode(content_type, status)
        self._buf = bytearray()
        self._head = b""  # the start of a body over PARSE_CAP, where native answers name the model
        self._skipping = self._overflow = False
        self._stream = StreamUsage()
        self._result: Usage | None = None

    @classmethod
    def whole(cls, content_type: str, body: bytes, *, status: int = 200, request_bytes: int = 0) -> Usage:
        """The usage of an answer whose body is all here: what feed(body) then finish() give, without
        the copy into the tap when it is one JSON body to parse."""
        if len(body) <= PARSE_CAP and _mode(content_type, status) == "body":
            return body_usage(body, status=status, request_bytes=request_bytes)
        tap = cls(content_type, status=status, request_bytes=request_bytes)
        tap.feed(body)
        return tap.finish()

    def feed(self, chunk: bytes) -> None:
        if self._result is not None or not chunk:
            return
        if self._mode == "body":
            self._buf += chunk
            if len(self._buf) > PARSE_CAP:
                if not self._overflow:
                    self._head = bytes(self._buf[: MODEL_CHARS + 16])
                self._overflow = True
            if self._overflow:
                del self._buf[:-TAIL]
        elif self._mode != "ignore":
            self._feed_lines(chunk)

    def finish(self) -> Usage:
        """The usage so far; on a cut stream, an estimate from what was seen. Idempotent."""
        if self._result is None:
            if self._mode == "body":
                self._result = body_usage(
                    self._buf,
                    status=self._status,
                    request_bytes=self._request_bytes,
                    head=self._head,
                    overflow=self._overflow,
                )
            else:
                if self._buf:  # a final line without its newline
                    self._read(self._buf)
                self._buf = bytearray()
                if self._mode == "ndjson":
                    self._stream.finish_ndjson()
                self._result = self._stream.usage(self._request_bytes)
        return self._result

    def _feed_lines(self, chunk: bytes) -> None:
        if self._skipping:  # the rest of an over-cap line: drop it up to its newline
            start = chunk.find(b"\n")
            if start < 0:
                return
            self._skipping = False
            chunk = chunk[start + 1 :]
        end = chunk.rfind(b"\n")
        if end < 0:
            self._hold(chunk)
            return
        if self._buf:
            self._buf += chunk[: end + 1]
            block, self._buf = self._buf, bytearray()
        else:  # the common case: whole lines, read without a copy
            block = chunk if end == len(chunk) - 1 else chunk[: end + 1]
        self._read(block)
        if end + 1 < len(chunk):
            self._hold(chunk[end + 1 :])

    def _hold(self, part: bytes) -> None:
        if len(self._buf) + len(part) > LINE_CAP:
            self._buf = bytearray()
            self._skipping = True
        else:
            self._buf += part

    def _read(self, block: bytes | bytearray) -> None:
        if self._mode == "ndjson":
            self._stream.read_ndjson(block)
        else:
            self._stream.read_sse(block)


@functools.lru_cache(maxsize=256)  # an upstream sends a handful of types; asked twice for a whole answer
def _mode(content_type: str, status: int) -> str:
    mime = content_type.split(";", 1)[0].strip().lower()
    if status >= 400 or (mime.endswith("json") and "ndjson" not in mime):
        return "body"  # error bodies are parsed whatever their type, for the message
    if "ndjson" in mime:
        return "ndjson"
    if mime == "text/event-stream":
        return "sse"
    return "ignore"
