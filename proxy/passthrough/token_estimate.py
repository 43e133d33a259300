"""How many LLM tokens to reserve from a key's daily quota before a request goes upstream."""

from __future__ import annotations

from typing import Any

from proxy.values import json_text

# The request's own cap on output, where each API takes it: Ollama's options.num_predict
# (https://github.com/ollama/ollama/blob/main/docs/modelfile.md#valid-parameters-and-values), OpenAI's
# max_tokens / max_completion_tokens (chat and completions), max_output_tokens (responses), and
# Anthropic's max_tokens (messages).
_CAP_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Without a cap, Ollama generates until the model stops (num_predict -1): the reservation assumes this many.
COMPLETION_ESTIMATE = 512
# The prompt is counted at about 4 bytes of request body per token (OpenAI's rule of thumb for English
# text, https://help.openai.com/en/articles/4936856); images in base64 are counted high and settled after.
BYTES_PER_TOKEN = 4
# Larger bodies are not parsed again for the cap: their size alone gives the estimate.
PARSE_LIMIT = 256 * 1024


def tokens_to_reserve(body: bytes | bytearray) -> int:
    """The prompt's estimate plus the request's output cap, else COMPLETION_ESTIMATE."""
    cap = _output_cap(body) if len(body) <= PARSE_LIMIT else None
    return len(body) // BYTES_PER_TOKEN + (cap if cap is not None else COMPLETION_ESTIMATE)


def _output_cap(body: bytes | bytearray) -> int | None:
    try:
        data: Any = json_text.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    options = data.get("options")
    candidates = [options.get("num_predict")] if isinstance(options, dict) else []
    candidates += [data.get(name) for name in _CAP_FIELDS]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
