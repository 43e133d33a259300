"""Model names as Ollama resolves them: one spelling per model, for allow-lists and routing alike."""

from __future__ import annotations


def normalize_model(name: str) -> str:
    """`llama3` and `llama3:latest` are one model to Ollama; `ns/m` and `ns/m:latest` too; so are
    `Llama3` and `llama3`, since Ollama matches names case-insensitively."""
    name = name.strip().lower()
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def is_cloud_model(name: str) -> bool:
    """A `:cloud` or `-cloud` tag: Ollama relays it to ollama.com, so any node serves it
    (parseSourceSuffix, https://github.com/ollama/ollama/blob/v0.32.15/internal/modelref/modelref.go)."""
    tag = normalize_model(name).rsplit(":", 1)[-1]
    return tag == "cloud" or tag.endswith("-cloud")
