"""Response-time histogram buckets, shared by the rollup writer and the statistics that read them.

Log-spaced buckets (as HdrHistogram and Prometheus native histograms do) keep the relative error of a
percentile the same from a 2 ms health check to a 10-minute generation, with a fixed, small array
per rollup row. Ten buckets per decade: an interpolated percentile is within ~12% of the truth.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence

STEPS_PER_DECADE = 10
# Upper bounds in ms: 1 ms .. 1,000,000 ms (16.7 minutes). Bucket 0 is everything below 1 ms,
# bucket i covers [BOUNDS[i-1], BOUNDS[i]), and the last bucket everything from the last bound up.
BOUNDS: tuple[float, ...] = tuple(10 ** (k / STEPS_PER_DECADE) for k in range(6 * STEPS_PER_DECADE + 1))
BUCKETS = len(BOUNDS) + 1


def bucket_of(milliseconds: float) -> int:
    return bisect_right(BOUNDS, milliseconds)


def empty() -> list[int]:
    return [0] * BUCKETS


def add_into(total: list[int], counts: Sequence[int]) -> list[int]:
    """Element-wise sum into `total` (grown if `counts` is longer: buckets may be added later)."""
    if len(counts) > len(total):
        total.extend([0] * (len(counts) - len(total)))
    for i, count in enumerate(counts):
        total[i] += count
    return total


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) in ms, interpolated inside its bucket; None without data.

    Inside a bucket the values are taken as spread evenly on a log scale, matching the buckets;
    the first bucket (below 1 ms) is linear from 0, and the last one reports its lower bound.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            fraction = (rank - seen) / count
            if i == 0:
                return BOUNDS[0] * fraction
            lower = BOUNDS[i - 1]
            if i >= len(BOUNDS):
                return lower
            return lower * math.pow(BOUNDS[i] / lower, fraction)
        seen += count
    return BOUNDS[-1]  # unreachable with non-negative counts; keeps the type honest


def histogram_of(values: Iterable[float]) -> list[int]:
    counts = empty()
    for value in values:
        counts[bucket_of(value)] += 1
    return counts
