"""Counters and histograms kept as plain numbers, handed to Prometheus only when it scrapes.

prometheus_client's Counter and Histogram take a threading lock on every increment (MutexValue),
and its histogram walks its buckets in Python; per request, over a dozen series, that was 21 µs of
the gateway's own cost, 7 µs with these (docs/benchmarks.md). The event loop is one thread, so a dict lookup and an
integer add do the same job; the scrape builds the metric families from them
(https://prometheus.github.io/client_python/collector/custom/). The text exposition is unchanged
but for the `_created` series, which these do not have.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]


class CounterTally:
    __slots__ = ("name", "documentation", "labelnames", "_values")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1) -> None:
        values = self._values
        values[labels] = values.get(labels, 0) + amount

    def value(self, labels: Labels) -> float:
        return self._values.get(labels, 0)

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in self._values.items():
            family.add_metric(labels, value)
        return family


class HistogramTally:
    """Prometheus buckets: an observation counts in the first bucket whose bound is >= it (`le`)."""

    __slots__ = ("name", "documentation", "labelnames", "_bounds", "_series")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._bounds = tuple(float(b) for b in buckets)
        if list(self._bounds) != sorted(set(self._bounds)):
            raise ValueError("buckets must be increasing")
        # Per series: one count per bucket, the last for +Inf, then the sum of the observations.
        self._series: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0] * (len(self._bounds) + 1) + [0.0]
        series[bisect_left(self._bounds, value)] += 1
        series[-1] += value

    def observe_each(self, labels: Labels, values: list[float]) -> None:
        """observe(labels, value) for each value, in order: one series lookup for them all."""
        if not values:
            return
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0] * (len(self._bounds) + 1) + [0.0]
        bounds = self._bounds
        for value in values:
            series[bisect_left(bounds, value)] += 1
            series[-1] += value

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        for labels, series in self._series.items():
            running, buckets = 0, []
            for edge, count in zip(edges, series[:-1], strict=True):
                running += count
                buckets.append((edge, running))
            family.add_metric(labels, buckets, series[-1])
        return family


class Tallies:
    """A registry's collector for a set of tallies, in the order they were made."""

    def __init__(self) -> None:
        self._tallies: list[CounterTally | HistogramTally] = []

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> CounterTally:
        tally = CounterTally(name, documentation, labelnames)
        self._tallies.append(tally)
        return tally

    def histogram(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> HistogramTally:
        tally = HistogramTally(name, documentation, labelnames, buckets)
        self._tallies.append(tally)
        return tally

    def collect(self) -> Iterator[Metric]:
        for tally in self._tallies:
            yield tally.collect()
