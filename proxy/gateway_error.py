"""Deprecated: the names moved to `proxy.plugin_api` (plugins) and `proxy.errors` (the gateway)."""

from __future__ import annotations

import warnings

from proxy.errors import UNAUTHORIZED, GatewayError, forbidden, unauthorized

__all__ = ["UNAUTHORIZED", "GatewayError", "forbidden", "unauthorized"]

warnings.warn(
    "proxy.gateway_error is deprecated; import GatewayError from proxy.plugin_api", DeprecationWarning, stacklevel=2
)
