"""Per-key limits as plain classes: token bucket, concurrency cap, daily token quota, and the draft-11
RateLimit header fields. Framework-free (no aiohttp, no database), with an injected clock, so every rule is
tested without a server.
"""

from proxy.limits.admission import Admission, default_burst
from proxy.limits.concurrency import ConcurrencyLimiter
from proxy.limits.headers import (
    POLICY,
    RATELIMIT,
    TOKEN_POLICY,
    TOKEN_RATELIMIT,
    burst_item,
    concurrency_item,
    join_items,
    policy_field,
    token_item,
    token_policy_field,
)
from proxy.limits.key_limiter import KeyLimiter
from proxy.limits.token_bucket import BucketDecision, TokenBucket
from proxy.limits.token_quota import DailyTokenQuota, QuotaDecision, seconds_to_utc_midnight

__all__ = [
    "POLICY",
    "RATELIMIT",
    "TOKEN_POLICY",
    "TOKEN_RATELIMIT",
    "Admission",
    "BucketDecision",
    "ConcurrencyLimiter",
    "DailyTokenQuota",
    "KeyLimiter",
    "QuotaDecision",
    "TokenBucket",
    "burst_item",
    "concurrency_item",
    "default_burst",
    "join_items",
    "policy_field",
    "seconds_to_utc_midnight",
    "token_item",
    "token_policy_field",
]
