"""RateLimit-Policy / RateLimit field values as ready strings.

Sections below are those of https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/11/.
"""

from __future__ import annotations

import math
from functools import lru_cache

from multidict import istr

# Field names. Both fields are Structured-Field Lists of String items with parameters (draft
# sections 3, 4). As multidict's istr, case-folded once: a response's CIMultiDict takes them without
# folding them again on every request.
POLICY = istr("RateLimit-Policy")
RATELIMIT = istr("RateLimit")
# "qu" must be a unit from the draft's registry (sections 3.1.2, 10.3): requests, content-bytes,
# concurrent-requests. LLM tokens are none of them, and leaving "qu" out would claim "requests",
# so a client would read a 40-token quota as 40 requests. The token quota therefore travels in our
# own fields with the same syntax, where qu="tokens" is ours to define; the standard fields never
# misstate a unit. If "tokens" is ever registered, the items move into the standard fields as-is.
TOKEN_POLICY = istr("Olg-RateLimit-Policy")
TOKEN_RATELIMIT = istr("Olg-RateLimit")

BURST = "burst"
CONCURRENCY = "concurrency"
DAILY_TOKENS = "daily-tokens"

_DAY = 86_400


@lru_cache(maxsize=4096)
def policy_field(rate_per_hour: float | None, burst: int | None, max_concurrent: int | None) -> str | None:
    """RateLimit-Policy for the request-counted limits, or None when the key has none.

    The token bucket is advertised as `burst` tokens per the time it takes to refill from empty
    (w is whole seconds, section 3.1.3, so it is rounded up and at least 1). The concurrency limit
    has no window; its unit is the registered "concurrent-requests". Cached: the value changes only when
    a key's limits do, and the draft asks that it stay consistent across responses (section 3).
    """
    items = []
    if rate_per_hour is not None and burst is not None:
        window = max(1, math.ceil(burst * 3600 / rate_per_hour))
        items.append(f'"{BURST}";q={burst};w={window}')
    if max_concurrent is not None:
        items.append(f'"{CONCURRENCY}";q={max_concurrent};qu="concurrent-requests"')
    return ", ".join(items) if items else None


@lru_cache(maxsize=4096)
def token_policy_field(tokens_per_day: int) -> str:
    """Olg-RateLimit-Policy: the daily token quota, resetting at UTC midnight."""
    return f'"{DAILY_TOKENS}";q={tokens_per_day};qu="tokens";w={_DAY}'


def burst_item(remaining: int, seconds: int) -> str:
    # t is the time within which no more than r can be used (section 4.1.2): for a bucket that is
    # the time to the next whole token, which is also Retry-After when r=0, as section 6 asks.
    return f'"{BURST}";r={remaining};t={seconds}'


def concurrency_item(remaining: int) -> str:
    # No t: a slot frees when some request ends, not after a known delay.
    return f'"{CONCURRENCY}";r={remaining}'


def token_item(remaining: int, seconds: int) -> str:
    return f'"{DAILY_TOKENS}";r={remaining};t={seconds}'


def join_items(*items: str) -> str:
    # List members are separated by "," and one SP when serialised (RFC 9651 §4.1.1).
    return ", ".join(items)
