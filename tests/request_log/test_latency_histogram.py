"""Log-spaced response-time buckets and the percentiles read back from them."""

from __future__ import annotations

import random

import pytest

from proxy.request_log import latency_histogram as h


def test_buckets_cover_every_value_in_order():
    assert h.bucket_of(0.0) == 0 and h.bucket_of(0.99) == 0
    assert h.bucket_of(1.0) == 1
    assert h.bucket_of(10.0) == 1 + h.STEPS_PER_DECADE
    assert h.bucket_of(10**9) == h.BUCKETS - 1
    values = [0.1, 1, 2, 5, 50, 500, 5000, 50_000, 600_000, 2_000_000]
    assert [h.bucket_of(v) for v in values] == sorted(h.bucket_of(v) for v in values)


def test_percentiles_of_many_values_are_within_a_bucket_width():
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(5, 1.5) for _ in range(20_000))  # ~150 ms median, long tail
    counts = h.histogram_of(values)
    for q in (0.5, 0.95, 0.99):
        truth = values[int(q * len(values)) - 1]
        estimate = h.percentile(counts, q)
        ratio = 10 ** (1 / h.STEPS_PER_DECADE)
        assert truth / ratio <= estimate <= truth * ratio, q


def test_percentile_edges():
    assert h.percentile(h.empty(), 0.5) is None
    one = h.histogram_of([250.0])
    low, high = h.BOUNDS[h.bucket_of(250.0) - 1], h.BOUNDS[h.bucket_of(250.0)]
    assert low <= h.percentile(one, 0.5) <= high
    assert h.percentile(h.histogram_of([5_000_000.0]), 0.95) == h.BOUNDS[-1]
    assert 0 <= h.percentile(h.histogram_of([0.3]), 0.5) < 1


@pytest.mark.parametrize("shorter", [3, h.BUCKETS])
def test_add_into_grows_to_the_longer_histogram(shorter):
    total = [1] * shorter
    h.add_into(total, [1] * (h.BUCKETS + 2))
    assert len(total) == h.BUCKETS + 2 and total[0] == 2 and total[-1] == 1
