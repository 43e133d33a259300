"""Admission of one request against its key's rate, concurrency and daily token limits."""

from __future__ import annotations

import datetime
from collections.abc import Hashable

from proxy.limits import headers as h
from proxy.limits.admission import Admission, default_burst
from proxy.limits.concurrency import ConcurrencyLimiter
from proxy.limits.refusals import concurrency_refused, policy_fields, rate_refused, tokens_refused
from proxy.limits.token_bucket import TokenBucket
from proxy.limits.token_quota import DailyTokenQuota


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
        out = policy_fields(rate_per_hour, burst, max_concurrent, tokens_per_day)

        # Checks without side effects first, then the one that consumes, then the slot.
        quota = self._quota.check(key_id, tokens_per_day, now)
        if not quota.allowed:
            return tokens_refused(out, tokens_per_day, quota.retry_after)
        if not self._concurrency.can_enter(key_id, max_concurrent):
            return concurrency_refused(out, max_concurrent)
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
                return rate_refused(out, rate_per_hour, burst, burst_state.retry_after)
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
