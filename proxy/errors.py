"""Rejecting a request: the one exception the gateway raises, and the JSON error in the shape each client
family parses (Ollama, OpenAI or Anthropic)."""

from __future__ import annotations

import json

from aiohttp import web

from proxy.values.digits import is_ascii_digits


class GatewayError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


# One body for every kind of bad key: missing, unknown, revoked and expired look alike.
UNAUTHORIZED = "invalid or missing API key"


def unauthorized() -> GatewayError:
    return GatewayError(401, UNAUTHORIZED, {"WWW-Authenticate": 'Bearer realm="ollama-gateway"'})


def forbidden(message: str) -> GatewayError:
    return GatewayError(403, message)


# Statuses the gateway itself produces; reasons are used when a handler gives no message.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


# The OpenAI SDKs wait out a Retry-After only below 60 s and otherwise retry on their own back-off of
# at most 8 s (openai-node src/client.ts `retryRequest`: `timeoutMillis < 60 * 1000`; older releases
# slept the whole Retry-After, uninterruptibly). A longer wait (a daily token quota, a slow refill)
# cannot end within any retry, so the client is told to stop and surface the 429 at once.
LONG_RETRY_AFTER = 60  # seconds


def error_body(path: str, status: int, message: str) -> dict:
    """Native `{"error": "…"}` (api.StatusError in https://github.com/ollama/ollama/blob/v0.32.15/api/types.go);
    OpenAI shape on /v1; Anthropic on /v1/messages."""
    if path.startswith("/v1/messages"):
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if path.startswith("/v1/"):
        kind = _OPENAI_TYPES.get(status, "api_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"error": message}


def error_response(
    request: web.BaseRequest, status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    response = web.Response(
        status=status,
        body=json.dumps(error_body(request.path, status, message)).encode(),
        content_type="application/json",
        headers=headers,
    )
    if status in (401, 403) or (status == 429 and _long_wait(response.headers.get("Retry-After"))):
        # The OpenAI SDK retries anything it is not told to leave alone; a bad key stays bad,
        # and a long wait outlasts every retry it would make.
        response.headers["x-should-retry"] = "false"
    return response


def _long_wait(retry_after: str | None) -> bool:
    return retry_after is not None and is_ascii_digits(retry_after) and int(retry_after) >= LONG_RETRY_AFTER
