"""Example GATEWAY_PLUGINS middleware: every keyed request must name its tenant in `X-Tenant`.

    GATEWAY_PLUGINS=examples.tenant_tag:tenant_required ollama-gateway serve

Requests without a key (the public probes) pass; keyed ones without a well-formed X-Tenant get
400 in their route family's error shape. A real plugin might map tenants to keys, or tag logs.
"""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from proxy.plugin_api import API_KEY, GatewayError, Settings

HEADER = "X-Tenant"
_TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def tenant_required(settings: Settings) -> Middleware:
    @web.middleware
    async def tenant(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.get(API_KEY) is not None and not _TENANT.fullmatch(request.headers.get(HEADER, "")):
            raise GatewayError(400, f"{HEADER} header required: a lower-case tenant name")
        return await handler(request)

    return tenant
