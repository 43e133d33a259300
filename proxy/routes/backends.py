"""GET /api/backends (admin key): each Ollama node as the gateway sees it. Never a password: URLs
are shown without one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from proxy.backends.node import Node
from proxy.backends.poller import NODE_PROBE
from proxy.backends.registry import BACKENDS, Backends
from proxy.db.errors import DatabaseUnavailable
from proxy.ledger.context import LIMITER
from proxy.queue.gate import FAIR_QUEUE, FairQueue
from proxy.routes.access import require_admin


def describe(node: Node, queue: FairQueue | None = None) -> dict[str, Any]:
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
        **(_queue(node, queue) if queue is not None else {}),
    }


def _queue(node: Node, queue: FairQueue) -> dict[str, Any]:
    """The fair queue at this node, as this process sees it (each process has its own line)."""
    if not queue.active:
        return {"capacity_enforced": False, "slots_in_use": None, "slots_held": None, "queued": 0}
    used, held = queue.slots(node)
    return {"capacity_enforced": True, "slots_in_use": used, "slots_held": held, "queued": queue.waiting_for(node)}


def _queue_summary(queue: FairQueue) -> dict[str, Any]:
    """Requests waiting now, per model and per key, with the longest wait so far (ms)."""
    by_model: dict[str, list[float]] = {}
    by_key: dict[str, list[float]] = {}
    for model, key_id, waited in queue.waiting():
        by_model.setdefault(model, []).append(waited)
        by_key.setdefault(str(key_id) if key_id is not None else "-", []).append(waited)

    def rows(groups: dict[str, list[float]], label: str) -> list[dict[str, Any]]:
        return [
            {label: name, "waiting": len(waits), "longest_wait_ms": round(max(waits) * 1000, 1)}
            for name, waits in sorted(groups.items(), key=lambda item: -len(item[1]))
        ]

    return {
        "timeout_seconds": queue.timeout,
        "waiting": len(queue.waiting()),
        "by_model": rows(by_model, "model"),
        "by_key": rows(by_key, "key_id"),
    }


def process_activity(backends: Backends, queue: FairQueue) -> dict[str, Any]:
    """What this process is doing at each node: [requests under way, requests waiting that may run there].
    Sent with every heartbeat (ledger/context.py), so that each process can show the whole gateway."""
    return {
        "nodes": {
            node.name: [node.in_flight, queue.waiting_for(node) if queue.active else 0] for node in backends.nodes
        }
    }


async def _everywhere(request: web.Request, own: dict[str, Any]) -> tuple[int | None, dict[str, list[int]]]:
    """(live gateway processes, per node [under way, waiting] over all of them); (None, {}) when the
    ledger cannot say. Other processes' figures are as of their last heartbeat (every 2 s)."""
    store = request.app[LIMITER].store
    if store is None:
        return None, {}
    try:
        others = await store.activity_elsewhere()
    except DatabaseUnavailable:
        return None, {}
    totals = {name: list(figures) for name, figures in own["nodes"].items()}
    # A process of a version that sends no activity counts in neither the totals nor the processes.
    reporting = [a["nodes"] for a in others if isinstance(a, dict) and isinstance(a.get("nodes"), dict)]
    for nodes in reporting:
        for name, figures in nodes.items():
            # A shape this version does not know (another version of the gateway) is left out.
            if (
                name in totals
                and isinstance(figures, list)
                and len(figures) == 2
                and all(type(n) is int for n in figures)
            ):
                totals[name] = [totals[name][0] + figures[0], totals[name][1] + figures[1]]
    return 1 + len(reporting), totals


async def list_backends(request: web.Request) -> web.Response:
    require_admin(request)
    backends, queue = request.app[BACKENDS], request.app[FAIR_QUEUE]
    probe = request.app.get(NODE_PROBE)
    if probe is not None and backends.single is not None:
        await probe.refresh(backends.single)  # one node is not polled: probed now, when someone looks
    processes, everywhere = await _everywhere(request, process_activity(backends, queue))
    nodes = []
    for node in backends.nodes:
        under_way, waiting = everywhere.get(node.name, (None, None))
        nodes.append({**describe(node, queue), "in_flight_all": under_way, "queued_all": waiting})
    return web.json_response(
        {
            "polled": backends.single is None,
            "processes": processes,
            "backends": nodes,
            "queue": _queue_summary(queue),
        },
        headers={"Cache-Control": "no-store"},
    )


def setup_backend_routes(app: web.Application) -> None:
    app.router.add_get("/api/backends", list_backends)
