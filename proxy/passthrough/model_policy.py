"""Which models a request names, and whether a key may use them."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from proxy.errors import GatewayError
from proxy.keys.format import KeyRecord
from proxy.passthrough.model_names import model_allowed

# Every field any handler reads a model name from (the request types in
# https://github.com/ollama/ollama/blob/v0.32.15/api/types.go); the per-route lists in routes.py narrow
# this down, and a caller without one gets every field checked.
MODEL_FIELDS = ("model", "name", "from", "source", "destination")
# Go's encoding/json matches object keys case-insensitively with Unicode folding, so Ollama reads
# `"Model"`, `"MODEL"` and `"ſource"` as the fields above, and of several keys that fold to one
# field the last one decoded wins. See: https://github.com/golang/go/issues/43664
_GO_FOLD = str.maketrans({"ſ": "s", "\u212a": "k"})


def _go_key(key: str) -> str:
    # An ASCII key (nearly every key) has nothing to fold but its case.
    return key.lower() if key.isascii() else key.translate(_GO_FOLD).lower()


def requested_models(body: dict[str, Any], fields: tuple[str, ...] = MODEL_FIELDS) -> list[str]:
    """Every model the body names under any spelling of `fields`, the one Ollama acts on first.

    `fields` are in the order the handler prefers them (`cmp.Or(req.Model, req.Name)`). All values
    are returned, not only the one Go's decoder keeps: the cloud passthrough reads the exact key
    `model` from a map (extractModelField in https://github.com/ollama/ollama/blob/v0.32.15/server/cloud_proxy.go),
    so a shadowed value can be acted on too.
    """
    named: dict[str, list[str]] = {}
    for key, value in body.items():
        if isinstance(value, str) and value and (field := _go_key(key)) in fields:
            named.setdefault(field, []).append(value)
    acted = next((named[field][-1] for field in fields if field in named), None)
    models = [value for values in named.values() for value in values if value is not acted]
    return [] if acted is None else [acted, *models]


def multipart_model(content_type: str, body: bytes | bytearray) -> str | None:
    """The `model` form field of a multipart body (/v1/audio/transcriptions).

    400 for anything but well-formed multipart (no boundary, a boundary the body does not use, a
    truncated body): Ollama's Go parser refuses those too, and a body read two ways could name a
    model to Ollama that the allow-list check never saw.
    """
    # aiohttp decodes header bytes with surrogateescape: this gives back exactly the bytes sent.
    raw_type = content_type.encode("utf-8", "surrogateescape")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + raw_type + b"\r\n\r\n" + body)
    if message.get_content_type() != "multipart/form-data" or not message.is_multipart() or message.defects:
        raise GatewayError(400, "request body must be multipart/form-data with its boundary")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "model":
            # Go's mime/multipart decodes quoted-printable parts and passes any other encoding through
            # as sent (Reader.NextPart, https://pkg.go.dev/mime/multipart#Reader.NextPart); Python would
            # also decode base64, so the allow-list would check a name Ollama never reads.
            encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if encoding not in _AS_GO_READS:
                raise GatewayError(400, "the model form field must not use a Content-Transfer-Encoding")
            payload = part.get_payload(decode=True)
            return payload.decode("utf-8", "replace").strip() if payload else None
    return None


# Transfer encodings that Go's reader and Python's give the same bytes for.
_AS_GO_READS = frozenset({"", "7bit", "8bit", "binary", "quoted-printable"})


def is_cloud_model(name: str) -> bool:
    """`:cloud` / `-cloud` models run on ollama.com under the server's identity
    (https://github.com/ollama/ollama/blob/v0.32.15/server/cloud_proxy.go, cloudPassthroughMiddleware).

    Matched as Ollama's parseSourceSuffix does: trimmed and case-insensitive.
    """
    name = name.strip().lower().removesuffix(":latest")
    return name.endswith((":cloud", "-cloud"))


def key_may_use(key: KeyRecord, model: str) -> bool:
    """Allow-list rules, plus: a user key reaches a cloud model only when its allow-list names it,
    since every such call spends the server's ollama.com account, not the user's."""
    if is_cloud_model(model) and not key.is_admin:
        return key.models is not None and model_allowed(key.models, model)
    return model_allowed(key.models, model)
