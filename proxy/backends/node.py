"""One node's state as the gateway knows it: configuration, health, models, requests under way."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from proxy.backends.breaker import CircuitBreaker
from proxy.backends.config import NodeConfig
from proxy.values.model_name import normalize_model


class Node:
    """Written by the poller (what the node says of itself) and by the requests sent to it."""

    __slots__ = (
        "config",
        "name",
        "reachable",
        "down_reason",
        "models",
        "model_names",
        "loaded",
        "in_flight",
        "requests",
        "failures_total",
        "breaker",
        "last_probe",
        "tags_known",
    )

    def __init__(self, config: NodeConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.name = config.name
        self.reachable = True  # until a probe or a request finds otherwise
        self.down_reason: str | None = None
        self.models: frozenset[str] = frozenset()  # normalised names, from /api/tags
        self.model_names: tuple[str, ...] = ()  # as the node spells them, for /api/backends
        self.loaded: frozenset[str] = frozenset()  # normalised names, from /api/ps
        self.in_flight = 0
        self.requests = 0
        self.failures_total = 0
        self.breaker = CircuitBreaker(clock=clock)
        self.last_probe: float | None = None  # wall-clock time of the last liveness answer or failure
        self.tags_known = False  # /api/tags has answered at least once

    @property
    def healthy(self) -> bool:
        return self.reachable and self.breaker.available()

    @property
    def status(self) -> str:
        if not self.reachable:
            return "down"
        if self.breaker.is_open:
            return "circuit open"
        return "up"

    def has(self, model: str) -> bool:
        return model in self.models

    def is_loaded(self, model: str) -> bool:
        return model in self.loaded

    def load_ratio(self) -> float:
        return self.in_flight / self.config.capacity

    def full(self) -> bool:
        return self.in_flight >= self.config.capacity

    def set_models(self, names: Iterable[str]) -> None:
        self.model_names = tuple(names)
        self.models = frozenset(normalize_model(name) for name in self.model_names)
        self.tags_known = True

    def set_loaded(self, names: Iterable[str]) -> None:
        self.loaded = frozenset(normalize_model(name) for name in names)
