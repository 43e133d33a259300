"""Model names as Ollama resolves them, so an allow-list entry `llama3` also admits `llama3:latest`."""

from __future__ import annotations

from collections.abc import Iterable

from proxy.values.model_name import normalize_model

__all__ = ["model_allowed", "normalize_model"]


def model_allowed(allow_list: Iterable[str] | None, model: str) -> bool:
    """None allows every model; an entry ending in `*` allows every name that starts with it."""
    if allow_list is None:
        return True
    wanted = normalize_model(model)
    for entry in allow_list:
        if entry.endswith("*"):
            if wanted.startswith(entry[:-1].strip().lower()):
                return True
        elif normalize_model(entry) == wanted:
            return True
    return False
