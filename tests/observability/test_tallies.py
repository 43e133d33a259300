"""Tallies expose exactly what prometheus_client's own Counter and Histogram would, `_created` aside."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from proxy.observability.metrics import LATENCY_BUCKETS, OVERHEAD_BUCKETS
from proxy.observability.tallies import Tallies

VALUES = [0, 0.00005, 0.0001, 0.00099, 0.005, 0.0051, 1, 2.5, 299.9, 300, 600, 601, 1e9]


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


@pytest.mark.parametrize("buckets", [LATENCY_BUCKETS, OVERHEAD_BUCKETS])
def test_a_histogram_exposes_what_prometheus_client_does(buckets):
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("t_seconds", "help text", ("family",), buckets=buckets, registry=theirs)
    tallies = Tallies()
    tally = tallies.histogram("t_seconds", "help text", ("family",), buckets)
    ours.register(tallies)
    for i, value in enumerate(VALUES):
        family = "chat" if i % 3 else "embed"
        reference.labels(family).observe(value)
        tally.observe((family,), value)
    assert _exposition(ours) == _exposition(theirs)


def test_a_counter_exposes_what_prometheus_client_does():
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Counter("t", "help text", ("a", "b"), registry=theirs)
    tallies = Tallies()
    tally = tallies.counter("t", "help text", ("a", "b"))
    ours.register(tallies)
    for a, b, amount in [("x", "1", 1), ("x", "1", 2.5), ("y", 'é " \\ \n', 7)]:
        reference.labels(a, b).inc(amount)
        tally.inc((a, b), amount)
    assert _exposition(ours) == _exposition(theirs)
    assert tally.value(("x", "1")) == 3.5


def test_buckets_must_increase():
    with pytest.raises(ValueError):
        Tallies().histogram("t", "h", (), [1, 0.5])
