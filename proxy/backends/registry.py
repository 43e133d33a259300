"""Every node, what requests did to them, and the choice of nodes for a request."""

from __future__ import annotations

import enum
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from uuid import UUID

from aiohttp import web

from proxy.backends.config import NodeConfig
from proxy.backends.node import Node
from proxy.backends.routing import any_node, nodes_for
from proxy.errors import GatewayError
from proxy.values.model_name import is_cloud_model, normalize_model

MAX_FAILOVERS = 2  # more candidates tried after the first, before the first byte only
AFFINITY_ENTRIES = 10_000  # (key, model) pairs remembered, oldest forgotten first
HEADER = "X-Ollama-Backend"


class Outcome(enum.Enum):
    ANSWERED = "answered"  # any answer that is not one of the failures below
    FAILED = "failed"  # 502, 503 or 504: counts towards the circuit breaker
    UNREACHABLE = "unreachable"  # connection refused or lost before an answer: out at once
    SILENT = "silent"  # no answer within the first-byte timeout: out at once
    MODEL_MISSING = "model missing"  # 404 for a model its /api/tags listed: re-read its tags


class Backends:
    """The nodes in configuration order. With one node, nothing is polled in the background and nothing is chosen:
    the gateway behaves exactly as it did with one OLLAMA_BASE_URL."""

    def __init__(
        self,
        configs: Sequence[NodeConfig],
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_after: float = 2.0,
    ) -> None:
        self.nodes = [Node(config, clock=clock) for config in configs]
        self.by_name = {node.name: node for node in self.nodes}
        self.single = self.nodes[0] if len(self.nodes) == 1 else None
        self._affinity: OrderedDict[tuple[UUID | None, str], Node] = OrderedDict()
        self._retry_after = retry_after  # the poller's interval: when a node can next be found back
        # Set by the poller: asks for a node's /api/tags to be read again now.
        self.refresh_tags: Callable[[Node], None] = lambda node: None

    def named(self, name: str) -> Node:
        """The node an X-Ollama-Backend header names; 400 listing the names (never URLs) otherwise."""
        node = self.by_name.get(name.strip())
        if node is None:
            names = ", ".join(node.name for node in self.nodes)
            raise GatewayError(400, f"{HEADER} names no configured node; the nodes are: {names}")
        return node

    def candidates(self, model: str | None, key_id: UUID | None) -> list[Node]:
        """Nodes to try, best first; 404 when no node has `model`, 503 when only nodes that are out do."""
        if model is None or is_cloud_model(model):
            choice = any_node(self.nodes)
            if not choice.nodes:
                raise self._unavailable("no Ollama node is available")
            return choice.nodes
        wanted = normalize_model(model)
        choice = nodes_for(self.nodes, wanted, preferred=self._affinity.get((key_id, wanted)))
        if choice.nodes:
            return choice.nodes
        if choice.only_unhealthy:
            raise self._unavailable(f"every node that has model '{model}' is unavailable")
        for node in self.nodes:
            if node.healthy:
                self.refresh_tags(node)  # a model pulled on a node directly shows up at once
        # Ollama's own words and shape (GenerateHandler, server/routes.go).
        raise GatewayError(404, f"model '{model}' not found")

    def healthy(self) -> list[Node]:
        return [node for node in self.nodes if node.healthy]

    def first_healthy(self) -> Node:
        """Where create and blob uploads go without a header: the same node for both, in config order."""
        for node in self.nodes:
            if node.healthy:
                return node
        raise self._unavailable("no Ollama node is available")

    def begin(self, node: Node) -> None:
        node.in_flight += 1
        node.requests += 1
        node.breaker.claim()

    def abandon(self, node: Node) -> None:
        """A begun request cancelled before any answer: it says nothing of the node."""
        node.in_flight -= 1
        node.breaker.abandon()

    def end(self, node: Node, outcome: Outcome, *, model: str | None = None, key_id: UUID | None = None) -> None:
        node.in_flight -= 1
        if outcome is Outcome.ANSWERED:
            node.breaker.record_success()
            if not node.reachable:
                self.mark_up(node)
            if model is not None and not is_cloud_model(model):
                self._served(node, normalize_model(model), key_id)
            return
        if outcome is Outcome.MODEL_MISSING:
            if model is not None:
                node.models = node.models - {normalize_model(model)}
            self.refresh_tags(node)
            return
        node.failures_total += 1
        node.breaker.record_failure()
        if outcome is Outcome.UNREACHABLE:
            self.mark_down(node, "unreachable")
        elif outcome is Outcome.SILENT:
            self.mark_down(node, "no answer before the first-byte timeout")

    def mark_down(self, node: Node, reason: str) -> None:
        """Out of rotation until its liveness probe answers again."""
        node.reachable = False
        node.down_reason = reason

    def mark_up(self, node: Node) -> None:
        if not node.reachable:
            node.breaker.reset()  # it restarted, or its network came back: old failures are history
            self.refresh_tags(node)
        node.reachable = True
        node.down_reason = None

    def _served(self, node: Node, model: str, key_id: UUID | None) -> None:
        # Ollama loaded the model to answer: known at once, before the next /api/ps says so.
        if model not in node.loaded:
            node.loaded = node.loaded | {model}
        key = (key_id, model)
        if self._affinity.get(key) is not node:
            self._affinity[key] = node
            self._affinity.move_to_end(key)
            if len(self._affinity) > AFFINITY_ENTRIES:
                self._affinity.popitem(last=False)

    def _unavailable(self, message: str) -> GatewayError:
        return GatewayError(503, message, {"Retry-After": str(math.ceil(self._retry_after))})


BACKENDS = web.AppKey("backends", Backends)
