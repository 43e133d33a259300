"""Which nodes may serve a request, best first: pure, so it is tested without a server.

Only healthy nodes that have the model; among them a node with the model loaded (a node without it
pays seconds to load it, and evicts another), then the least busy for its capacity. A key keeps its
node for a model while that node stays a good choice, so Ollama reuses the conversation's KV cache
(its prompt cache is per runner: https://github.com/ollama/ollama/blob/v0.32.15/runner/ollamarunner/cache.go).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proxy.backends.node import Node


@dataclass(slots=True)  # not frozen: one per routed request, and frozen costs ~2.7 k instructions more
class Choice:
    nodes: list[Node]  # best first; empty when none may serve
    only_unhealthy: bool = False  # the model exists, but only on nodes that are out


def any_node(nodes: Sequence[Node]) -> Choice:
    """A request that names no model (or a cloud one): every healthy node, least busy first."""
    healthy = [node for node in nodes if node.healthy]
    healthy.sort(key=_busy)
    return Choice(healthy, only_unhealthy=not healthy)


def nodes_for(nodes: Sequence[Node], model: str, *, preferred: Node | None = None) -> Choice:
    """`model` is normalised. `preferred`: the key's node for this model last time (affinity)."""
    having = [node for node in nodes if node.has(model)]
    healthy = [node for node in having if node.healthy]
    if not healthy:
        return Choice([], only_unhealthy=bool(having))
    someone_loaded = any(node.is_loaded(model) for node in healthy)
    healthy.sort(key=lambda node: (node.full(), not node.is_loaded(model), *_busy(node)))
    if (
        preferred is not None
        and preferred is not healthy[0]
        and preferred in healthy
        and not preferred.full()
        and (preferred.is_loaded(model) or not someone_loaded)
    ):
        healthy.remove(preferred)
        healthy.insert(0, preferred)
    return Choice(healthy)


def _busy(node: Node) -> tuple[float, float]:
    return (node.load_ratio(), -node.config.weight)
