"""What one relayed answer used: its token counts, whether they were estimated, its error and model."""

from __future__ import annotations

from dataclasses import dataclass, field


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
