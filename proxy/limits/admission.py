"""The answer to one request's admission, shared by the per-process and the shared limiters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def default_burst(rate_per_hour: float) -> int:
    """Burst for a key that has none: one minute's worth of its hourly rate, at least 1."""
    return max(1, math.ceil(rate_per_hour / 60))


@dataclass(slots=True)  # not frozen, for speed: see token_bucket.BucketDecision
class Admission:
    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)  # to add to the response, 200 or 429
    reason: str | None = None  # "rate" | "concurrency" | "tokens" when rejected
    retry_after: int = 0  # seconds, >= 1 when rejected
    message: str = ""
    slot: bool | None = None  # holds a concurrency slot of the shared limiter's pools
    fallback: bool = False  # decided by this process's share while the shared ledger was away
