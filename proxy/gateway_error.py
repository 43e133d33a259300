"""The one exception the gateway raises to reject a request; the errors middleware renders it."""

from __future__ import annotations


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
