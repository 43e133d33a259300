"""Ollama's route table with the access each route needs at the gateway.

The table is GenerateRoutes in https://github.com/ollama/ollama/blob/v0.32.15/server/routes.go.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Access(enum.Enum):
    PUBLIC = "public"  # the stock `ollama` CLI probes these and cannot send a key
    ANY_KEY = "any key"
    ADMIN = "admin"  # mutates the server or uses its ollama.com identity


class Listing(enum.Enum):
    """Responses that list models, filtered down to a key's allow-list."""

    NONE = 0
    NATIVE = 1  # {"models": [{"name", "model", ...}]}: /api/tags, /api/ps
    OPENAI = 2  # {"object": "list", "data": [{"id", ...}]}: /v1/models


class Placement(enum.Enum):
    """Which node serves the route when there are several (docs/backends.md)."""

    BY_MODEL = 0  # a healthy node that has the model named, or any healthy node if none is named
    EVERY_NODE = 1  # pull, delete, copy: each node, progress and answers merged
    FIRST_NODE = 2  # create and blob uploads: the first healthy node, so a blob and its create meet


@dataclass(frozen=True, slots=True)
class OllamaRoute:
    methods: tuple[str, ...]
    path: str  # aiohttp pattern
    access: Access
    json_body: bool = False  # a JSON body that may name models
    listing: Listing = Listing.NONE
    path_model: bool = False  # the model is the last path segment (/v1/models/{model})
    form_body: bool = False  # multipart/form-data with a `model` field
    # The JSON fields the handler reads model names from, the one it prefers first.
    model_fields: tuple[str, ...] = ("model",)
    placement: Placement = Placement.BY_MODEL
    # Runs the model (generation, embeddings, images, audio): takes one of a node's `capacity` slots,
    # and waits in the fair queue when every node with the model is full (proxy/queue/).
    inference: bool = False


_GET = ("GET",)  # aiohttp adds HEAD to every GET route
_POST = ("POST",)
# Model fields per handler, from the request types in https://github.com/ollama/ollama/blob/v0.32.15/api/types.go
# and the handlers that read them. GenerateRequest, ChatRequest, EmbedRequest, EmbeddingRequest, the /v1 requests
# (openai/openai.go, openai/responses.go) and anthropic/anthropic.go MessagesRequest: `model` only.
# PullHandler, DeleteHandler: cmp.Or(req.Model, req.Name); PushHandler, ShowHandler: Model, else Name
# (https://github.com/ollama/ollama/blob/v0.32.15/server/routes.go).
_MODEL_OR_NAME = ("model", "name")
# Create: the new model is cmp.Or(r.Model, r.Name), built `from` another
# (CreateHandler, https://github.com/ollama/ollama/blob/v0.32.15/server/create.go).
_CREATE = ("model", "name", "from")
# CopyHandler reads CopyRequest's Source and Destination (server/routes.go, api/types.go).
_COPY = ("source", "destination")

_EVERY, _FIRST = Placement.EVERY_NODE, Placement.FIRST_NODE

ROUTES: tuple[OllamaRoute, ...] = (
    OllamaRoute(_GET, "/", Access.PUBLIC),
    OllamaRoute(_GET, "/api/version", Access.PUBLIC),
    OllamaRoute(_GET, "/api/status", Access.ANY_KEY),
    OllamaRoute(_GET, "/api/tags", Access.ANY_KEY, listing=Listing.NATIVE),
    OllamaRoute(_GET, "/api/ps", Access.ANY_KEY, listing=Listing.NATIVE),
    OllamaRoute(_POST, "/api/show", Access.ANY_KEY, json_body=True, model_fields=_MODEL_OR_NAME),
    OllamaRoute(_POST, "/api/generate", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/api/chat", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/api/embed", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/api/embeddings", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/api/pull", Access.ADMIN, json_body=True, model_fields=_MODEL_OR_NAME, placement=_EVERY),
    OllamaRoute(_POST, "/api/push", Access.ADMIN, json_body=True, model_fields=_MODEL_OR_NAME),
    OllamaRoute(_POST, "/api/create", Access.ADMIN, json_body=True, model_fields=_CREATE, placement=_FIRST),
    OllamaRoute(_POST, "/api/copy", Access.ADMIN, json_body=True, model_fields=_COPY, placement=_EVERY),
    OllamaRoute(
        ("DELETE",), "/api/delete", Access.ADMIN, json_body=True, model_fields=_MODEL_OR_NAME, placement=_EVERY
    ),
    OllamaRoute(_POST, "/api/me", Access.ADMIN),
    OllamaRoute(_POST, "/api/signout", Access.ADMIN),
    OllamaRoute(("DELETE",), "/api/user/keys/{encoded_key}", Access.ADMIN),
    # Blobs are multi-GB model files: streamed through, never read.
    OllamaRoute(("POST", "HEAD"), "/api/blobs/{digest}", Access.ADMIN, placement=_FIRST),
    OllamaRoute(("GET", "POST"), "/api/experimental/{tail:.+}", Access.ADMIN),
    OllamaRoute(_POST, "/v1/chat/completions", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/v1/completions", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/v1/embeddings", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/v1/responses", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/v1/messages", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/v1/images/generations", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/v1/images/edits", Access.ANY_KEY, json_body=True, inference=True),
    OllamaRoute(_POST, "/v1/audio/transcriptions", Access.ANY_KEY, form_body=True, inference=True),
    OllamaRoute(_GET, "/v1/models", Access.ANY_KEY, listing=Listing.OPENAI),
    # `{model:.+}`: the OpenAI SDK sends `/` inside a model id as %2F
    # (https://github.com/openai/openai-python/blob/main/src/openai/_utils/_path.py).
    OllamaRoute(_GET, "/v1/models/{model:.+}", Access.ANY_KEY, path_model=True),
)

PUBLIC_PATHS = tuple(route.path for route in ROUTES if route.access is Access.PUBLIC)
