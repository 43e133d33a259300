"""Usage, model and error read from a parsed Ollama answer: native, OpenAI, /v1/responses and anthropic shapes."""

from __future__ import annotations

import json

from proxy.values import json_text
from proxy.values.text import MAX_MODEL

ERROR_CHARS = 500
MODEL_CHARS = MAX_MODEL  # as much of a reported model name as the request log keeps

# Usage field names: OpenAI, then /v1/responses and anthropic, then native metrics.
PROMPT = ("prompt_tokens", "input_tokens", "prompt_eval_count")
COMPLETION = ("completion_tokens", "output_tokens", "eval_count")
# Final lines of calls that only load or unload a model: no tokens, and none to estimate.
NO_WORK = ("load", "unload")
# Fields only text answers carry: native generate and chat, OpenAI, /v1/responses, anthropic.
TEXT_FIELDS = frozenset({"response", "message", "choices", "output", "content"})


def loads(data: bytes | bytearray) -> object:
    """json.loads that never raises: a malformed answer is simply not measured."""
    try:
        return json_text.loads(data)
    except (ValueError, RecursionError):
        return None


def model_of(obj: dict) -> str | None:
    model = obj.get("model")
    return model[:MODEL_CHARS] if isinstance(model, str) and model else None


def pair(usage: dict) -> tuple[int | None, int | None]:
    """(prompt, completion) under whichever names the answer's format uses."""
    prompt = next((n for k in PROMPT if type(n := usage.get(k)) is int), None)
    return prompt, next((n for k in COMPLETION if type(n := usage.get(k)) is int), None)


def placeholder(holder: dict, usage: dict) -> bool:
    """The all-zero usage Ollama's /v1/completions repeats on every chunk that still has choices
    (CompleteWriter in https://github.com/ollama/ollama/blob/v0.32.15/middleware/openai.go): the real counts follow on a
    `"choices":[]` chunk."""
    return bool(holder.get("choices")) and not any(usage.get(k) for k in PROMPT + COMPLETION)


def is_embedding(obj: dict) -> bool:
    """Native /api/embed and /api/embeddings, or OpenAI's `{"object":"list","data":[{"embedding"...`."""
    data = obj.get("data")
    return (
        "embedding" in obj
        or "embeddings" in obj
        or (isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "embedding" in data[0])
    )


def error_text(obj: dict) -> str | None:
    error = obj.get("error")
    if error is None and isinstance(obj.get("response"), dict):  # /v1/responses response.failed
        error = obj["response"].get("error")
    if isinstance(error, dict):  # OpenAI and anthropic shapes
        error = error.get("message") or json.dumps(error)
    if error is None and obj.get("type") == "error":  # /v1/responses error event
        error = obj.get("message")
    return str(error)[:ERROR_CHARS] if error else None


def body_text(body: bytes | bytearray) -> str | None:
    """The start of an error body that is not JSON (a proxy's HTML page, Go's plain-text 404)."""
    return bytes(body[: ERROR_CHARS * 4]).decode("utf-8", "replace").strip()[:ERROR_CHARS] or None
