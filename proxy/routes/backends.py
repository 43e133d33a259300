"""GET /api/backends (admin key): each Ollama node as the gateway sees it. Never a password: URLs
are shown without one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from proxy.backends.node import Node
from proxy.backends.registry import BACKENDS
from proxy.routes.access import require_admin


def describe(node: Node) -> dict[str, Any]:
    config = node.config
    last_probe = node.last_probe
    return {
        "name": node.name,
        "url": config.display_url,
        "status": node.status,  # up, down, circuit open
        "healthy": node.healthy,
        "reason": node.down_reason,
        "capacity": config.capacity,
        "weight": config.weight,
        "labels": list(config.labels),
        "in_flight": node.in_flight,
        "requests": node.requests,
        "failures": node.breaker.failures,  # consecutive, towards the circuit breaker
        "failures_total": node.failures_total,
        "models": list(node.model_names),
        "loaded": sorted(node.loaded),
        "last_probe": datetime.fromtimestamp(last_probe, UTC).isoformat() if last_probe is not None else None,
    }


async def list_backends(request: web.Request) -> web.Response:
    require_admin(request)
    backends = request.app[BACKENDS]
    return web.json_response(
        {"polled": backends.single is None, "backends": [describe(node) for node in backends.nodes]},
        headers={"Cache-Control": "no-store"},
    )


def setup_backend_routes(app: web.Application) -> None:
    app.router.add_get("/api/backends", list_backends)
