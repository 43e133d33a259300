"""Admission of one request against its key's rate, concurrency and daily token limits."""

from __future__ import annotations

import datetime
import math
from collections.abc import Hashable
from dataclasses import dataclass, field

from proxy.limits import headers as h
from proxy.limits.concurrency import ConcurrencyLimiter
from proxy.limits.token_bucket import TokenBucket
from proxy.limits.token_quota import DailyTokenQuota


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


class KeyLimiter:
    """This process's limit state for every key; one instance per gateway process.

    admit() is synchronous and does every check before any state changes, so a rejected request
    consumes nothing (nginx-tests limit_req.t 'rejects not counted'; Kong returns before
    `increment`). Every allowed admission must be paired with one release() in a `finally`.
    Limits come from the cached key row on every call: None means no such limit. An edited limit
    applies from the next call on. `now` is wall-clock UNIX time (the token quota needs UTC days).
    """

    __slots__ = ("_buckets", "_concurrency", "_quota", "_retired")

    def __init__(self) -> None:
        self._buckets: dict[Hashable, TokenBucket] = {}
        self._concurrency = ConcurrencyLimiter()
        self._quota = DailyTokenQuota()
        self._retired: set[Hashable] = set()  # forgotten keys: what their last requests charge is dropped

    def admit(
        self,
        key_id: Hashable,
        *,
        rate_per_hour: float | None,
        burst: int | None,
        max_concurrent: int | None,
        tokens_per_day: int | None,
        now: float,
    ) -> Admission:
        if rate_per_hour is not None and burst is None:
            burst = default_burst(rate_per_hour)
        out: dict[str, str] = {}
        policy = h.policy_field(rate_per_hour, burst, max_concurrent)
        if policy is not None:
            out[h.POLICY] = policy
        if tokens_per_day is not None:
            out[h.TOKEN_POLICY] = h.token_policy_field(tokens_per_day)

        # Checks without side effects first, then the one that consumes, then the slot.
        quota = self._quota.check(key_id, tokens_per_day, now)
        if not quota.allowed:
            out[h.TOKEN_RATELIMIT] = h.token_item(0, quota.retry_after)
            return _reject(
                out,
                "tokens",
                quota.retry_after,
                f"daily token quota exceeded: {tokens_per_day} tokens per UTC day, resets in {quota.retry_after} s",
            )
        if not self._concurrency.can_enter(key_id, max_concurrent):
            out[h.RATELIMIT] = h.concurrency_item(0)
            # No known release time; 1 s is the shortest delay-seconds a client can be given.
            return _reject(
                out,
                "concurrency",
                1,
                f"concurrency limit exceeded: {max_concurrent} "
                f"request{'' if max_concurrent == 1 else 's'} in flight at once",
            )
        burst_state = None
        if rate_per_hour is None:
            self._buckets.pop(key_id, None)
        else:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = TokenBucket(rate_per_hour, burst, now)
            elif bucket.rate_per_hour != rate_per_hour or bucket.capacity != burst:
                bucket.reconfigure(rate_per_hour, burst, now)
            burst_state = bucket.try_acquire(now)
            if not burst_state.allowed:
                out[h.RATELIMIT] = h.burst_item(0, burst_state.retry_after)
                return _reject(
                    out,
                    "rate",
                    burst_state.retry_after,
                    f"rate limit exceeded: {burst} requests per burst, refills at {_number(rate_per_hour)}/hour",
                )
        # Cannot fail: can_enter said yes and nothing has awaited since.
        self._concurrency.try_enter(key_id, max_concurrent)

        items = []
        if burst_state is not None:
            items.append(h.burst_item(burst_state.remaining, burst_state.retry_after))
        if max_concurrent is not None:
            items.append(h.concurrency_item(max_concurrent - self._concurrency.in_flight(key_id)))
        if items:
            out[h.RATELIMIT] = h.join_items(*items)
        if tokens_per_day is not None:
            out[h.TOKEN_RATELIMIT] = h.token_item(quota.remaining, quota.reset)
        return Admission(True, out)

    def release(self, key_id: Hashable) -> None:
        self._concurrency.leave(key_id)

    def charge(self, key_id: Hashable, tokens: int, now: float) -> None:
        """Count a finished request's prompt + completion tokens against today's quota."""
        if key_id not in self._retired:
            self._quota.charge(key_id, tokens, now)

    def seed(self, key_id: Hashable, tokens: int, day: datetime.date) -> None:
        """Restore a key's token count for `day` from the database rollups at startup."""
        self._quota.seed(key_id, tokens, day)

    def in_flight(self, key_id: Hashable) -> int:
        return self._concurrency.in_flight(key_id)

    def start_bucket(self, key_id: Hashable, rate_per_hour: float, burst: int, level: float, now: float) -> None:
        """Start a key's bucket at `level` rather than full: what is known to be left of a shared limit."""
        self._buckets[key_id] = TokenBucket(rate_per_hour, burst, now, level)

    def forget(self, key_id: Hashable) -> None:
        """Drop everything kept for a revoked or deleted key: its bucket, in-flight count and token count.

        Revocation is final (a revoked key is never reactivated), so none of it is needed again.
        The release() calls of its requests still in flight then find nothing to release, harmlessly,
        and what they charge is not counted again.
        """
        self._retired.add(key_id)
        self._buckets.pop(key_id, None)
        self._concurrency.forget(key_id)
        self._quota.forget(key_id)


def _reject(out: dict[str, str], reason: str, retry_after: int, message: str) -> Admission:
    # On a 429 only the violated policy's service limit is sent (draft-ietf-httpapi-ratelimit-headers-11
    # appendix B.1.2: a server MAY omit the others), so Retry-After is never earlier than the end of
    # any t sent with it (draft section 6).
    out["Retry-After"] = str(retry_after)
    return Admission(False, out, reason, retry_after, message)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0").rstrip(".")
