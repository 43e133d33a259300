"""Liveness: answers while the process serves, without a key and without touching anything else."""

from __future__ import annotations

from aiohttp import web

PATH = "/health"


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def setup_health_routes(app: web.Application) -> None:
    app.router.add_get(PATH, health)
