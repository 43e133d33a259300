"""Per-key limits, free of any framework: request rate, concurrency, daily LLM tokens, and their headers."""

from .concurrency import ConcurrencyLimiter
from .headers import (
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
from .key_limiter import Admission, KeyLimiter, default_burst
from .token_bucket import BucketDecision, TokenBucket
from .token_quota import DailyTokenQuota, QuotaDecision, seconds_to_utc_midnight

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
