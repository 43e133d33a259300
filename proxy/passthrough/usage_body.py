"""The usage of a whole (non-streamed) answer body: JSON answers, error bodies, and bodies too big to parse."""

from __future__ import annotations

from proxy.passthrough.usage import Usage, estimate_tokens
from proxy.passthrough.usage_fields import (
    COMPLETION,
    NO_WORK,
    PROMPT,
    TEXT_FIELDS,
    body_text,
    error_text,
    is_embedding,
    loads,
    model_of,
    pair,
)
from proxy.passthrough.usage_scan import leading_model, loose_last_str, scan_int


def body_usage(
    body: bytes | bytearray, *, status: int, request_bytes: int, head: bytes = b"", overflow: bool = False
) -> Usage:
    """`body` whole, or with `overflow` only its tail (and `head`, its start): embedding and
    `context` arrays make a body too big to parse, and Go encodes usage and metrics after them."""
    if overflow:
        prompt, completion = scan_int(body, PROMPT), scan_int(body, COMPLETION)
        model = leading_model(head) or loose_last_str(body, "model")
        if prompt is None and completion is None:
            return Usage(estimate_tokens(request_bytes), 0, True, None, model)
        return Usage(prompt or 0, completion or 0, False, None, model)
    obj = loads(body) if body else None
    error = error_text(obj) if isinstance(obj, dict) else None
    if status >= 400:
        return Usage(0, 0, False, error or body_text(body))
    if not isinstance(obj, dict):
        return Usage(0, 0, False, None)
    model = model_of(obj)
    usage = obj.get("usage")
    prompt, completion = pair(usage if isinstance(usage, dict) else obj)  # `usage`, else native metrics
    if prompt is not None or completion is not None:  # embeddings report no completion
        return Usage(prompt or 0, completion or 0, False, error, model)
    embedding = is_embedding(obj)
    if obj.get("done_reason") in NO_WORK or not (embedding or TEXT_FIELDS.intersection(obj)):
        return Usage(0, 0, False, error, model)  # load/unload, tags, show, pull status, ...
    # Model output without counts (legacy /api/embeddings, or a server that reports none): the
    # prompt is estimated from the request, a text answer from its body (JSON syntax included).
    output = 0 if embedding else estimate_tokens(len(body))
    return Usage(estimate_tokens(request_bytes), output, True, error, model)
