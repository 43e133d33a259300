"""What a GATEWAY_PLUGINS middleware may rely on; these names keep their meaning across releases.

A plugin is `package.module:factory`: the factory is called once at startup with the `Settings` and returns
an aiohttp middleware, which runs after auth and the rate limits. On a keyed route `request[API_KEY]` is the
caller's `KeyRecord`; the middleware rejects by raising `GatewayError(status, message)`, which the gateway
renders in the route family's error shape. See examples/tenant_tag.py.

There is no shared per-request usage record to write into: the record is assembled once the request has
ended, from what each stage of the gateway noted under its own key.
"""

from __future__ import annotations

from proxy.errors import GatewayError
from proxy.keys.format import API_KEY, KeyRecord
from proxy.settings import Settings

__all__ = ["API_KEY", "GatewayError", "KeyRecord", "Settings"]
