"""Which models a request names, and whether a key may use them."""

from __future__ import annotations

from typing import Any

from .apikeys import KeyRecord
from .model_names import model_allowed

# Native routes name the model in `model`, older clients (ollama-js pull/push/delete) in `name`;
# create may start `from` another model, copy names two (ollama-api.md §5).
_MODEL_FIELDS = ("model", "name", "from", "source", "destination")


def requested_models(body: dict[str, Any]) -> list[str]:
    return [value for field in _MODEL_FIELDS if isinstance(value := body.get(field), str) and value]


def is_cloud_model(name: str) -> bool:
    """`:cloud` / `-cloud` models run on ollama.com under the server's identity (ollama-api.md §1)."""
    name = name.removesuffix(":latest")
    return name.endswith((":cloud", "-cloud"))


def key_may_use(key: KeyRecord, model: str) -> bool:
    """Allow-list rules, plus: a user key reaches a cloud model only when its allow-list names it,
    since every such call spends the server's ollama.com account, not the user's."""
    if is_cloud_model(model) and not key.is_admin:
        return key.models is not None and model_allowed(key.models, model)
    return model_allowed(key.models, model)
