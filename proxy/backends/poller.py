"""Asking each node what it has: liveness and loaded models from /api/ps every few seconds, pulled
models from /api/tags every minute and whenever a request found a model missing.

Each gateway process polls on its own (docs/backends.md measures the load: one process costs a node
about half a request a second). With one node nothing is polled in the background, and requests go
to it whatever it says; GET /api/backends probes it when asked (OnDemandProbe).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from proxy.backends.config import nodes_from_settings
from proxy.backends.node import Node
from proxy.backends.registry import BACKENDS, Backends
from proxy.state import SETTINGS, UPSTREAM_SESSION

log = logging.getLogger(__name__)

PS_INTERVAL = 2.0  # seconds between liveness probes (/api/ps) of a node
TAGS_INTERVAL = 60.0  # seconds between two reads of a node's /api/tags
PROBE_TIMEOUT = 2.0  # a probe that takes longer finds the node down (Olla's health check: 2 s)
STARTUP_WAIT = PROBE_TIMEOUT + 1.0  # the first round of probes runs before serving, at most this long
LISTING_LIMIT = 16 * 1024 * 1024
_PROBE_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)


def node_url(base: URL, path: str) -> URL:
    """The node's URL (with any path prefix) + an absolute path."""
    return URL(str(base).rstrip("/") + path, encoded=True)


class Poller:
    def __init__(self, backends: Backends, session: aiohttp.ClientSession) -> None:
        self._backends = backends
        self._session = session
        self._tags_due: dict[str, asyncio.Event] = {node.name: asyncio.Event() for node in backends.nodes}
        backends.refresh_tags = self.want_tags

    def want_tags(self, node: Node) -> None:
        self._tags_due[node.name].set()

    async def poll_once(self, node: Node) -> None:
        """One liveness probe, and /api/tags when it is due; never raises."""
        try:
            loaded = await self._models(node, "/api/ps")
        except _PROBE_ERRORS as exc:
            node.last_probe = time.time()
            if node.reachable:
                log.warning("Ollama node %s is out of rotation: %s", node.name, _reason(exc))
            self._backends.mark_down(node, _reason(exc))
            return
        node.last_probe = time.time()
        node.set_loaded(loaded)
        if not node.reachable:
            log.info("Ollama node %s answers again: back in rotation", node.name)
        self._backends.mark_up(node)
        event = self._tags_due[node.name]
        if event.is_set() or not node.tags_known:
            event.clear()
            with contextlib.suppress(*_PROBE_ERRORS):
                node.set_models(await self._models(node, "/api/tags"))

    async def run(self, node: Node) -> None:
        event = self._tags_due[node.name]
        last_tags = time.monotonic()
        while True:
            # Wakes early when a request wants this node's tags read again.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PS_INTERVAL):
                    await event.wait()
            if time.monotonic() - last_tags >= TAGS_INTERVAL:
                event.set()
            if event.is_set():
                last_tags = time.monotonic()
            await self.poll_once(node)

    async def _models(self, node: Node, path: str) -> list[str]:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
        async with self._session.get(node_url(node.config.url, path), timeout=timeout) as response:
            if response.status != 200:
                raise ValueError(f"answered {response.status} to {path}")
            body = await response.content.read(LISTING_LIMIT)
        return model_names(json.loads(body))


def model_names(listing: Any) -> list[str]:
    """The names in an /api/tags or /api/ps answer, {"models": [{"name", "model", ...}]}."""
    models = listing.get("models") if isinstance(listing, dict) else None
    if not isinstance(models, list):
        raise ValueError("not a model listing")
    names = []
    for entry in models:
        if isinstance(entry, dict):
            name = entry.get("name") or entry.get("model")
            if isinstance(name, str) and name:
                names.append(name)
    return names


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {PROBE_TIMEOUT:g}s"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"unreachable ({type(exc).__name__})"


class OnDemandProbe:
    """The one node of a single-node gateway, which nothing routes around and so is not polled in the
    background: probed when someone looks (GET /api/backends, the console's Nodes page), at most once
    every ON_DEMAND_EVERY seconds, so what they see (health, models pulled and loaded) is current."""

    def __init__(self, poller: Poller) -> None:
        self._poller = poller

    async def refresh(self, node: Node) -> None:
        if node.last_probe is None or time.time() - node.last_probe >= ON_DEMAND_EVERY:
            await self._poller.poll_once(node)


ON_DEMAND_EVERY = 5.0
NODE_PROBE = web.AppKey("node_probe", OnDemandProbe)


async def backends_context(app: web.Application) -> AsyncIterator[None]:
    """After the upstream session: the nodes, polled from before the first request until shutdown."""
    backends = app[BACKENDS]
    if backends.single is not None:
        app[NODE_PROBE] = OnDemandProbe(Poller(backends, app[UPSTREAM_SESSION]))  # also re-reads tags after a pull
        yield
        return
    poller = Poller(backends, app[UPSTREAM_SESSION])
    names = ", ".join(f"{node.name} ({node.config.display_url})" for node in backends.nodes)
    log.info("routing over %d Ollama nodes: %s", len(backends.nodes), names)
    # A first round before serving, so the first requests know where each model is.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STARTUP_WAIT):
            await asyncio.gather(*(poller.poll_once(node) for node in backends.nodes))
    tasks = [asyncio.create_task(poller.run(node)) for node in backends.nodes]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def create_backends(app: web.Application) -> Backends:
    """The nodes of the settings; raises SettingsError (one line naming the entry) on a bad file."""
    return Backends(nodes_from_settings(app[SETTINGS]), retry_after=PS_INTERVAL)
