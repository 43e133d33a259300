"""Prometheus metrics, observed from each finished request record and at response headers.

Records are counted in groups of records with the same labels, when a scrape reads them or once
FOLD_EVERY have gathered: a scrape sees every request that ended before it.

Label values stay bounded whatever clients send: route families are a fixed set, statuses are
HTTP codes, models and key ids are the first `max_models` / `max_keys` distinct values seen (a model
only once Ollama answered 2xx for it, so junk names never take a slot), then "other". Key ids,
never keys. Per-key history lives in /api/stats; these are for dashboards and alerts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from proxy.observability.route_family import RouteFamilies
from proxy.observability.tallies import Tallies
from proxy.passthrough.server_timing import UPSTREAM_TIMING
from proxy.request_log.record import REQUEST_START, RequestRecord
from proxy.values.text import safe_text

MAX_MODELS = 50
MAX_KEYS = 100
# Records kept before they are counted when no scrape comes first: a fold of this many takes about a
# millisecond, scheduled after the request that filled the batch (GatewayMetrics.observe).
FOLD_EVERY = 256
MAX_LABEL_LENGTH = 512
OTHER = "other"
# A generation runs for minutes; an admin call for milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class BoundedLabels:
    """The first `limit` distinct values admitted, then OTHER: a label can never grow a series per request.

    A value is made safe (safe_text) before it is admitted: one that cannot be encoded as UTF-8
    would make every later scrape fail, for the life of the process.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def label(self, value: str, *, admit: bool = True) -> str:
        if value in self._seen:
            return value
        value = safe_text(value, MAX_LABEL_LENGTH)
        if value in self._seen:
            return value
        if admit and len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return OTHER


class GatewayMetrics:
    """One registry per app (never the process-global one), so several apps in one process stay apart."""

    def __init__(
        self,
        *,
        writer: Any = None,
        pool: Callable[[], Any] = lambda: None,
        limiter: Any = None,
        backends: Any = None,
        fair_queue: Any = None,
        max_models: int = MAX_MODELS,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.registry = registry = CollectorRegistry()
        self.families = RouteFamilies()
        self._models = BoundedLabels(max_models)
        self._keys = BoundedLabels(max_keys)
        self._key_labels: dict[UUID, str] = {}  # the admitted keys' labels: str(UUID) costs ~2.5 µs
        # Request id -> its streams being relayed. A count, since a client may send one X-Request-ID on
        # several requests at once: the gauge may then drop early, but never drifts.
        self._streaming: dict[UUID, int] = {}
        tallies = Tallies()
        counter, histogram = tallies.counter, tallies.histogram
        family = ("family",)
        self._requests = counter(
            "ollama_gateway_requests", "Requests by route family, status and model", ("family", "status", "model")
        )
        self._duration = histogram(
            "ollama_gateway_request_duration_seconds", "Time from request to last byte sent", family, LATENCY_BUCKETS
        )
        self._ttfb = histogram(
            "ollama_gateway_upstream_ttfb_seconds",
            "Time from the upstream request to Ollama's first body byte",
            family,
            LATENCY_BUCKETS,
        )
        self._overhead = histogram(
            "ollama_gateway_overhead_seconds",
            "Gateway time before the upstream request: body read, auth, limits, checks",
            family,
            OVERHEAD_BUCKETS,
        )
        self._tokens = counter(
            "ollama_gateway_tokens",
            "LLM tokens Ollama reported (or the gateway estimated)",
            ("family", "model", "kind"),
        )
        self._key_requests = counter("ollama_gateway_key_requests", "Authenticated requests by key id", ("key_id",))
        self._key_tokens = counter("ollama_gateway_key_tokens", "Prompt + completion tokens by key id", ("key_id",))
        self._rejections = counter(
            "ollama_gateway_rate_limited", "Requests refused with 429, by the limit they hit", ("reason",)
        )
        self._queue_wait = histogram(
            "ollama_gateway_queue_wait_seconds",
            "Time requests waited in the fair queue for a node slot (those that waited), by model",
            ("model",),
            LATENCY_BUCKETS,
        )
        self._key_queue_wait = counter(
            "ollama_gateway_key_queue_wait_seconds", "Time waited in the fair queue, summed by key id", ("key_id",)
        )
        self._key_queued = counter(
            "ollama_gateway_key_queued", "Requests that waited in the fair queue, by key id", ("key_id",)
        )
        # Kept records are counted before the tallies are read, so a scrape sees every request that ended
        # before it (and the streams gauge, read after them, every stream that did).
        registry.register(_Folded(self.fold, tallies))
        self._pending: list[RequestRecord] = []
        self._fold_due = False
        self._loop: asyncio.AbstractEventLoop | None = None
        own = {"namespace": "ollama_gateway", "registry": registry}
        self._streams = Gauge("streams_in_flight", "Ollama answers being relayed right now", **own)
        registry.register(_StateCollector(writer, pool, limiter))
        if backends is not None:
            registry.register(_BackendsCollector(backends))
        if fair_queue is not None:
            registry.register(_QueueCollector(fair_queue, self._models, self._keys))

    async def on_startup(self, app: web.Application) -> None:
        self.families.learn(app.router)  # every route is added by now
        self._loop = asyncio.get_running_loop()

    def observe(self, record: RequestRecord) -> None:
        """A finished record (the timing middleware's sink): kept, and counted with the records like it at
        the next scrape, or once FOLD_EVERY have gathered, whichever comes first. No I/O."""
        pending = self._pending
        pending.append(record)
        if len(pending) >= FOLD_EVERY and not self._fold_due:
            if self._loop is None:  # no app has started this one (a test, a benchmark): at once
                self.fold()
            else:  # after the request that filled the batch has been answered
                self._fold_due = True
                self._loop.call_soon(self.fold)

    def fold(self) -> None:
        """Count the kept records: the labels, series and counters once per group of records that share
        them (route, status, model, key), the durations one by one. Per record, as counting each record
        on its own did, for about a third of its cost; the labels are admitted in the order the records
        came, so the bounded sets admit the same values."""
        self._fold_due = False
        records, self._pending = self._pending, []
        groups: dict[tuple[str, int, str | None, UUID | None], list[RequestRecord]] = {}
        for record in records:
            group = (record.endpoint, record.status_code, record.model, record.api_key_id)
            members = groups.get(group)
            if members is None:
                groups[group] = [record]
            else:
                members.append(record)
        if self._streaming:
            for record in records:
                self._stream_ended(record.id)
        for (endpoint, status, model_name, key_id), members in groups.items():
            self._count(self.families.of(endpoint), status, model_name, key_id, members)

    def _count(
        self, family: str, status: int, model_name: str | None, key_id: UUID | None, members: list[RequestRecord]
    ) -> None:
        model = self._models.label(model_name, admit=200 <= status < 300) if model_name else ""
        self._requests.inc((family, _status_text(status), model), len(members))
        self._duration.observe_each((family,), [r.response_time / 1000 for r in members if r.response_time is not None])
        self._ttfb.observe_each((family,), [r.ttfb / 1000 for r in members if r.ttfb is not None])
        prompt = sum(r.prompt_tokens for r in members if r.prompt_tokens)
        if prompt:
            self._tokens.inc((family, model, "prompt"), prompt)
        completion = sum(r.completion_tokens for r in members if r.completion_tokens)
        if completion:
            self._tokens.inc((family, model, "completion"), completion)
        key = None
        if key_id is not None:
            key = (self._key_label(key_id),)
            self._key_requests.inc(key, len(members))
            if prompt or completion:
                self._key_tokens.inc(key, prompt + completion)
        if status == 429:
            for record in members:
                self._rejections.inc((record.limit or OTHER,))
        waits = [r.queue_ms / 1000 for r in members if r.queue_ms is not None]
        if waits:
            self._queue_wait.observe_each((model,), waits)
            if key is not None:
                self._key_queue_wait.inc(key, sum(waits))
                self._key_queued.inc(key, len(waits))

    def _key_label(self, key_id: UUID) -> str:
        label = self._key_labels.get(key_id)
        if label is None:
            label = self._keys.label(str(key_id))
            if label != OTHER:  # bounded like the labels: the keys past max_keys are not kept
                self._key_labels[key_id] = label
        return label

    def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Proxied answers: the gateway's overhead, and a relayed stream starting (it ends in observe).

        A plain web.Response is prepared after its handler returned, so after observe: never counted.
        """
        timing = request.get(UPSTREAM_TIMING)
        if timing is None:
            return
        family = self.families.of(request.path)
        self._overhead.observe((family,), timing.gateway_ms / 1000)
        start = request.get(REQUEST_START)
        if start is not None and not isinstance(response, web.Response):
            self._streaming[start.id] = self._streaming.get(start.id, 0) + 1
            self._streams.inc()

    def _stream_ended(self, request_id: UUID) -> None:
        count = self._streaming.pop(request_id, 0)
        if count:
            if count > 1:
                self._streaming[request_id] = count - 1
            self._streams.dec()


def _status_text(status: int) -> str:
    return _STATUS_TEXTS.get(status) or str(status)


_STATUS_TEXTS = {status: str(status) for status in range(100, 600)}

METRICS = web.AppKey("metrics", GatewayMetrics)


class _Folded:
    """The tallies, read after the records kept for them are counted (GatewayMetrics.fold)."""

    def __init__(self, fold: Callable[[], None], tallies: Tallies) -> None:
        self._fold = fold
        self._tallies = tallies

    def collect(self) -> Iterator[Metric]:
        self._fold()
        yield from self._tallies.collect()


class _StateCollector:
    """Read at scrape time: the usage log writer's counters and queue, the database pool, the limit ledger."""

    def __init__(self, writer: Any, pool: Callable[[], Any], limiter: Any = None) -> None:
        self._writer = writer
        self._pool = pool
        self._limiter = limiter

    def collect(self) -> Iterator[Metric]:
        snapshot = getattr(self._writer, "snapshot", None)
        if snapshot is not None:
            state = dict(snapshot())
            depth = GaugeMetricFamily("ollama_gateway_log_queue_depth", "Usage records waiting in memory")
            depth.add_metric([], state.pop("queue_depth", 0))
            records = CounterMetricFamily(
                "ollama_gateway_log_records",
                "Usage records by what became of them (dropped > 0: records lost, alert)",
                labels=["outcome"],
            )
            for outcome, count in sorted(state.items()):
                records.add_metric([outcome], count)
            yield depth
            yield records
        pool = self._pool()
        if pool is not None:
            connections = GaugeMetricFamily(
                "ollama_gateway_db_pool_connections", "Database pool connections", labels=["state"]
            )
            size, idle = pool.get_size(), pool.get_idle_size()
            connections.add_metric(["idle"], idle)
            connections.add_metric(["in_use"], size - idle)
            connections.add_metric(["max"], pool.get_max_size())
            yield connections
        if self._limiter is not None:
            yield from _ledger_metrics(self._limiter)


def _ledger_metrics(limiter: Any) -> Iterator[Metric]:
    counters = limiter.counters
    admissions = CounterMetricFamily(
        "ollama_gateway_limit_admissions",
        "Admissions of limited keys by how they were decided: from leased tokens (local), after a lease "
        "from the ledger (ledger), or by this process's share while the ledger was away (fallback)",
        labels=["decided"],
    )
    admissions.add_metric(["local"], counters.local_admissions)
    admissions.add_metric(["ledger"], counters.ledger_admissions)
    admissions.add_metric(["fallback"], counters.fallback_admissions)
    calls = CounterMetricFamily("ollama_gateway_limit_ledger_calls", "Calls to the limit ledger", labels=["call"])
    calls.add_metric(["lease"], counters.leases)
    calls.add_metric(["return"], counters.returns)
    mode = GaugeMetricFamily(
        "ollama_gateway_limits_mode",
        "1 for how limits are enforced now: ledger (shared), local or closed (LIMITS_WHEN_DB_DOWN, ledger away)",
        labels=["mode"],
    )
    for name in ("ledger", "local", "closed"):
        mode.add_metric([name], 1 if limiter.mode == name else 0)
    processes = GaugeMetricFamily(
        "ollama_gateway_limit_processes", "Gateway processes sharing the ledger (at the last heartbeat)"
    )
    processes.add_metric([], limiter.processes)
    yield admissions
    yield calls
    yield mode
    yield processes


class _BackendsCollector:
    """Read at scrape time: each Ollama node, labelled by its configured name (a bounded set)."""

    def __init__(self, backends: Any) -> None:
        self._backends = backends

    def collect(self) -> Iterator[Metric]:
        label = ["backend"]
        up = GaugeMetricFamily("ollama_gateway_backend_up", "1 while the node is in rotation", labels=label)
        in_flight = GaugeMetricFamily(
            "ollama_gateway_backend_in_flight", "Requests under way on the node", labels=label
        )
        requests = CounterMetricFamily("ollama_gateway_backend_requests", "Requests sent to the node", labels=label)
        failures = CounterMetricFamily(
            "ollama_gateway_backend_failures", "Unreachable, silent or 502/503/504 answers", labels=label
        )
        models = GaugeMetricFamily("ollama_gateway_backend_models", "Models on the node", labels=["backend", "state"])
        for node in self._backends.nodes:
            up.add_metric([node.name], 1 if node.healthy else 0)
            in_flight.add_metric([node.name], node.in_flight)
            requests.add_metric([node.name], node.requests)
            failures.add_metric([node.name], node.failures_total)
            models.add_metric([node.name, "pulled"], len(node.models))
            models.add_metric([node.name, "loaded"], len(node.loaded))
        yield from (up, in_flight, requests, failures, models)


class _QueueCollector:
    """Read at scrape time: requests waiting in this process's fair queue, by model and by key id
    (the same bounded label sets as the request metrics), and how its waits ended."""

    def __init__(self, queue: Any, models: BoundedLabels, keys: BoundedLabels) -> None:
        self._queue = queue
        self._models = models
        self._keys = keys

    def collect(self) -> Iterator[Metric]:
        by_model: dict[str, int] = {}
        by_key: dict[str, int] = {}
        oldest = 0.0
        for model, key_id, waited in self._queue.waiting():
            name = self._models.label(model, admit=False)
            by_model[name] = by_model.get(name, 0) + 1
            key = self._keys.label(str(key_id)) if key_id is not None else ""
            by_key[key] = by_key.get(key, 0) + 1
            oldest = max(oldest, waited)
        length = GaugeMetricFamily(
            "ollama_gateway_queue_length", "Requests waiting for a node slot, by model", labels=["model"]
        )
        for model, count in sorted(by_model.items()):
            length.add_metric([model], count)
        per_key = GaugeMetricFamily(
            "ollama_gateway_key_queue_length", "Requests waiting for a node slot, by key id", labels=["key_id"]
        )
        for key, count in sorted(by_key.items()):
            per_key.add_metric([key], count)
        wait = GaugeMetricFamily("ollama_gateway_queue_oldest_wait_seconds", "How long the oldest waiter has waited")
        wait.add_metric([], oldest)
        ended = CounterMetricFamily(
            "ollama_gateway_queue_refused", "Waits that ended without a slot, by why", labels=["reason"]
        )
        ended.add_metric(["full"], self._queue.full)
        ended.add_metric(["timeout"], self._queue.timeouts)
        ended.add_metric(["client_left"], self._queue.left)
        yield from (length, per_key, wait, ended)
