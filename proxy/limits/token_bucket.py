"""Continuous-refill token bucket: one API key's request rate and burst."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Float refill can land a hair below a whole token (36 s x 1/36 token/s = 0.99999...). Anything
# within EPS of a whole token counts as whole, so a client that waits exactly retry_after passes.
_EPS = 1e-9


# Not frozen: a frozen dataclass's __init__ costs ~0.56 µs against ~0.15 µs here (CPython 3.11),
# and one of these is made per request. Treat instances as read-only.
@dataclass(slots=True)
class BucketDecision:
    allowed: bool
    remaining: int  # whole tokens left after this request
    retry_after: int  # seconds (>= 1) until `remaining` grows by one: Retry-After when rejected
    reset: int  # seconds (>= 0) until the bucket is full again


class TokenBucket:
    """Refills at rate_per_hour / 3600 tokens a second up to `capacity`; starts full.

    Times are plain floats in seconds from any clock the caller injects. A clock that steps back
    grants nothing and does not stall refills: the bucket simply rebases on the new time.
    """

    __slots__ = ("rate_per_hour", "capacity", "_per_second", "_level", "_stamp")

    def __init__(self, rate_per_hour: float, capacity: int, now: float, level: float | None = None) -> None:
        _validate(rate_per_hour, capacity)
        self.rate_per_hour = rate_per_hour
        self.capacity = capacity
        self._per_second = rate_per_hour / 3600.0
        # A new key may burst at once (Envoy: max_tokens is the initial fill); `level` starts it lower.
        self._level = float(capacity) if level is None else min(float(capacity), max(0.0, level))
        self._stamp = now

    def try_acquire(self, now: float) -> BucketDecision:
        level = self._refill(now)
        allowed = level >= 1.0 - _EPS
        if allowed:
            level = self._level = max(0.0, level - 1.0)
        # A rejection takes nothing, so retrying after 1/rate succeeds
        # (nginx-tests limit_req.t, 'rejects not counted').
        whole = math.floor(level + _EPS)
        per_second = self._per_second
        return BucketDecision(
            allowed,
            whole,
            max(1, math.ceil((whole + 1 - level) / per_second - _EPS)),
            max(0, math.ceil((self.capacity - level) / per_second - _EPS)),
        )

    def reconfigure(self, rate_per_hour: float, capacity: int, now: float) -> None:
        """Apply edited limits from the next request on, keeping the current fill.

        Time already elapsed accrues at the old rate. Lowering the capacity clamps the fill.
        Raising it refills the bucket to the new capacity: an operator who raises a burst expects
        that burst to be usable straight away, even by a key that has just drained its bucket
        (adding only the increase would leave a drained 5 -> 20 bucket at 15). The cost is a
        free refill per raise, which only an admin can trigger.
        """
        _validate(rate_per_hour, capacity)
        self._refill(now)
        if capacity > self.capacity:
            self._level = float(capacity)
        elif self._level > capacity:
            self._level = float(capacity)
        self.rate_per_hour = rate_per_hour
        self.capacity = capacity
        self._per_second = rate_per_hour / 3600.0

    def _refill(self, now: float) -> float:
        elapsed = now - self._stamp
        if elapsed > 0.0:
            self._level = min(float(self.capacity), self._level + elapsed * self._per_second)
        self._stamp = now
        return self._level


def _validate(rate_per_hour: float, capacity: int) -> None:
    # Keys store rate_limit > 0 (CHECK in sql/001); "no limit" is the caller's None, not a 0 here.
    if not rate_per_hour > 0 or math.isinf(rate_per_hour):
        raise ValueError(f"rate_per_hour must be a positive finite number, got {rate_per_hour!r}")
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity!r}")
