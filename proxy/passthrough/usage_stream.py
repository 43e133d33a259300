"""Usage read from the whole lines of a streamed answer: Ollama's native NDJSON, or OpenAI/anthropic SSE.

Only lines that can carry usage or an error are parsed; they are found with byte checks tuned to the
compact JSON Go's encoder writes. Those checks are safe against model output because JSON escapes
every quote inside a string value. When they find no usage, the final line is parsed, so any equally
valid spelling (spaces, reordered keys, CRLF) is still read.
"""

from __future__ import annotations

from proxy.passthrough.usage import Usage, estimate_tokens
from proxy.passthrough.usage_fields import (
    NO_WORK,
    error_text,
    loads,
    model_of,
    pair,
    placeholder,
)
from proxy.passthrough.usage_scan import (
    LOOSE_DONE,
    last_int,
    leading_model,
    loose_last_int,
)

# Final lines up to this size are json-parsed when the byte scans (tuned to Go's compact output)
# find nothing: another encoder, or a proxy in between, may write `"done": true` or reorder keys.
FINAL_LINE_PARSE_CAP = 64 * 1024
# /v1/completions with include_usage repeats this placeholder on every chunk (CompleteWriter in
# https://github.com/ollama/ollama/blob/v0.32.15/middleware/openai.go); the real numbers come last, on
# a `"choices":[]` chunk.
_ZEROED = b'"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'


class StreamUsage:
    """What the lines seen so far report; blocks of whole lines go in, one Usage comes out."""

    __slots__ = ("_last", "_chunks", "_done", "_prompt", "_completion", "_model", "_error")

    def __init__(self) -> None:
        self._last: bytes | bytearray = b""  # the last block of whole NDJSON lines: the final line's home
        self._chunks = 0  # content chunks: Ollama emits about one token per chunk
        self._done = False  # the final `done: true` line was seen
        self._prompt: int | None = None
        self._completion: int | None = None
        self._model: str | None = None
        self._error: str | None = None

    def read_ndjson(self, block: bytes | bytearray) -> None:
        self._last = block  # a reference, not a copy: finish_ndjson() may parse its last line
        # Every native chunk has a `done` field, one per line (a key inside a string is escaped).
        self._chunks += block.count(b'"done"')
        if b'{"error"' in block:  # rare: every line, in order
            for line in block.split(b"\n"):
                if line.startswith(b'{"error"'):
                    self._take_event(loads(line))
                elif b'"done":true' in line:
                    self._take_done(line)
        elif (at := block.rfind(b'"done":true')) >= 0:  # only its line, not a split of the block
            end = block.find(b"\n", at)
            self._take_done(block[block.rfind(b"\n", 0, at) + 1 : end if end >= 0 else len(block)])

    def read_sse(self, block: bytes | bytearray) -> None:
        # Each search costs about as much to start as to scan a 200-byte event, so what most events
        # lack (usage, an error, a finish) is looked for once in the block rather than once per line.
        if b'"usage"' in block or b'"error"' in block:  # the last events of a stream, or a failure
            for line in block.split(b"\n"):
                if (
                    line.startswith(b"data:")  # not event:, id:, comments or blank separators
                    and (b'"usage"' in line or b'"error"' in line)
                    and (_ZEROED not in line or b'"choices":[]' in line)
                ):
                    self._take_event(loads(line[5:]))  # and still counted below if it is a content chunk
        self._chunks += _content_chunks(block)

    def finish_ndjson(self) -> None:
        """The stream ended: if no Go-compact `"done":true` was seen, parse the last complete line."""
        if self._done:
            return
        line = self._last.rstrip()
        line = line[line.rfind(b"\n") + 1 :]
        if len(line) <= FINAL_LINE_PARSE_CAP:
            obj = loads(line)
            if isinstance(obj, dict):
                self._error = error_text(obj) or self._error
                self._take_final(obj)
        elif LOOSE_DONE.search(line):  # a final /api/generate line with a long `context`
            self._done = True
            prompt, completion = loose_last_int(line, "prompt_eval_count"), loose_last_int(line, "eval_count")
            if prompt is not None or completion is not None:
                self._prompt, self._completion = prompt or 0, completion or 0

    def usage(self, request_bytes: int) -> Usage:
        """The counts read; on a cut stream, an estimate from the request and the content chunks seen."""
        prompt, completion, chunks = self._prompt, self._completion, self._chunks - self._done
        if prompt is None and completion is None and not chunks:
            # Progress streams, load calls, errors before content.
            return Usage(0, 0, False, self._error, self._model)
        estimated = prompt is None or completion is None
        prompt = estimate_tokens(request_bytes) if prompt is None else prompt
        return Usage(prompt, chunks if completion is None else completion, estimated, self._error, self._model)

    def _take_done(self, line: bytes | bytearray) -> None:
        # No json.loads: this line may be megabytes of `context`. The top-level metrics come last,
        # so the last occurrence of a key is the real one.
        self._done = True
        prompt, completion = last_int(line, ("prompt_eval_count",)), last_int(line, ("eval_count",))
        model = leading_model(line)
        # Not Go's layout, or a load/unload line without metrics: a small line is parsed instead.
        if (
            ((prompt is None and completion is None) or model is None)
            and len(line) <= FINAL_LINE_PARSE_CAP
            and (isinstance(obj := loads(line), dict))
        ):
            self._take_final(obj)
            return
        self._model = model or self._model
        if prompt is not None or completion is not None:
            self._prompt, self._completion = prompt or 0, completion or 0

    def _take_final(self, obj: dict) -> None:
        """A parsed native final line: metrics and model, top level only."""
        if obj.get("done") is not True:
            return
        self._done = True
        self._model = model_of(obj) or self._model
        prompt, completion = obj.get("prompt_eval_count"), obj.get("eval_count")
        prompt, completion = (n if type(n) is int else None for n in (prompt, completion))
        if prompt is not None or completion is not None or obj.get("done_reason") in NO_WORK:
            self._prompt, self._completion = prompt or 0, completion or 0

    def _take_event(self, obj: object) -> None:
        if not isinstance(obj, dict):
            return
        self._error = error_text(obj) or self._error
        # Top level: OpenAI's final chunk, anthropic message_delta; `response`: /v1/responses completed;
        # `message`: anthropic message_start, whose output_tokens is a placeholder. The last value wins.
        for holder, has_completion in (obj, True), (obj.get("response"), True), (obj.get("message"), False):
            if not isinstance(holder, dict):
                continue
            self._model = model_of(holder) or self._model
            usage = holder.get("usage")
            if isinstance(usage, dict) and not placeholder(holder, usage):
                prompt, completion = pair(usage)
                if prompt is not None:
                    self._prompt = prompt
                if completion is not None and has_completion:
                    self._completion = completion


_FINISH = b'"finish_reason":"'


def _content_chunks(block: bytes | bytearray) -> int:
    """The `data:` lines with a chat, responses or anthropic delta or completion text, less finish chunks."""
    count = 0
    for line in block.split(b"\n"):
        if line.startswith(b"data:") and (b'delta"' in line or b'"text_completion"' in line):
            count += 1
    if not count:
        return 0
    at = block.find(_FINISH)
    while at >= 0:  # rare: a choice's last chunk, which says why it ended and carries no token
        start = block.rfind(b"\n", 0, at) + 1
        end = block.find(b"\n", at)
        line = block[start:] if end < 0 else block[start:end]
        if line.startswith(b"data:") and (b'delta"' in line or b'"text_completion"' in line):
            count -= 1
        if end < 0:
            break
        at = block.find(_FINISH, end)  # from the next line: each line is taken off once
    return count
