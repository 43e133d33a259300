"""Which client family a request path belongs to: a bounded label for metrics and access lines."""

from __future__ import annotations

import re

from aiohttp import web

from proxy.passthrough.routes import ROUTES

NATIVE, OPENAI, ANTHROPIC, GATEWAY, OTHER = "native", "openai", "anthropic", "gateway", "other"


def canonical(pattern: str) -> str:
    """aiohttp's canonical form of a route pattern: `/v1/models/{model:.+}` -> `/v1/models/{model}`."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", pattern)


# The pass-through's routes as `resource.canonical` spells them.
OLLAMA_PATHS = frozenset(canonical(route.path) for route in ROUTES)


class RouteFamilies:
    """native (Ollama's /api/* and /), openai (/v1/*), anthropic (/v1/messages), gateway (its own
    routes, learnt from the router once it is complete) or other (no such route)."""

    def __init__(self) -> None:
        self._exact: frozenset[str] = frozenset()
        self._prefixes: tuple[str, ...] = ()

    def learn(self, router: web.UrlDispatcher) -> None:
        exact, prefixes = set(), set()
        for resource in router.resources():
            path = resource.canonical
            if path in OLLAMA_PATHS:
                continue
            if "{" in path:
                prefixes.add(path.split("{", 1)[0])  # /api/keys/{key_id} -> /api/keys/
            else:
                exact.add(path)
        self._exact, self._prefixes = frozenset(exact), tuple(sorted(prefixes))

    def of(self, path: str) -> str:
        if path.startswith("/v1/"):
            return ANTHROPIC if path.startswith("/v1/messages") else OPENAI
        if path in self._exact or path.startswith(self._prefixes):
            return GATEWAY
        if path == "/" or path.startswith("/api/"):
            return NATIVE
        return OTHER
