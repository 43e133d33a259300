"""Error responses in the shape each client family parses: Ollama, OpenAI or Anthropic."""

from __future__ import annotations

import json

from aiohttp import web

# Statuses the gateway itself produces; reasons are used when a handler gives no message.
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    529: "overloaded_error"}


def error_body(path: str, status: int, message: str) -> dict:
    """Native `{"error": "…"}` (ollama-api.md §4); OpenAI shape on /v1; Anthropic on /v1/messages."""
    if path.startswith("/v1/messages"):
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if path.startswith("/v1/"):
        kind = _OPENAI_TYPES.get(status, "api_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"error": message}


def error_response(request: web.BaseRequest, status: int, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(
        status=status,
        body=json.dumps(error_body(request.path, status, message)).encode(),
        content_type="application/json",
        headers=headers,
    )
    if status in (401, 403):
        # The OpenAI SDK retries anything it is not told to leave alone; a bad key stays bad.
        response.headers["x-should-retry"] = "false"
    return response
