"""What a limited key is told: its RateLimit-Policy fields, and the 429 of each limit, in one wording
for the per-process limiter and the shared one."""

from __future__ import annotations

from proxy.limits import headers as h
from proxy.limits.admission import Admission


def policy_fields(
    rate_per_hour: float | None, burst: int | None, max_concurrent: int | None, tokens_per_day: int | None
) -> dict[str, str]:
    """RateLimit-Policy (and the token quota's own policy field) of a key's limits; a new dict each call."""
    out: dict[str, str] = {}
    policy = h.policy_field(rate_per_hour, burst, max_concurrent)
    if policy is not None:
        out[h.POLICY] = policy
    if tokens_per_day is not None:
        out[h.TOKEN_POLICY] = h.token_policy_field(tokens_per_day)
    return out


def tokens_refused(out: dict[str, str], tokens_per_day: int, reset: int) -> Admission:
    out[h.TOKEN_RATELIMIT] = h.token_item(0, reset)
    return reject(
        out, "tokens", reset, f"daily token quota exceeded: {tokens_per_day} tokens per UTC day, resets in {reset} s"
    )


def concurrency_refused(out: dict[str, str], max_concurrent: int) -> Admission:
    out[h.RATELIMIT] = h.concurrency_item(0)
    # No known release time; 1 s is the shortest delay-seconds a client can be given.
    return reject(
        out,
        "concurrency",
        1,
        f"concurrency limit exceeded: {max_concurrent} request{'' if max_concurrent == 1 else 's'} in flight at once",
    )


def rate_refused(out: dict[str, str], rate_per_hour: float, burst: int | None, retry_after: int) -> Admission:
    out[h.RATELIMIT] = h.burst_item(0, retry_after)
    return reject(
        out,
        "rate",
        retry_after,
        f"rate limit exceeded: {burst} requests per burst, refills at {_number(rate_per_hour)}/hour",
    )


def reject(out: dict[str, str], reason: str, retry_after: int, message: str) -> Admission:
    # On a 429 only the violated policy's service limit is sent (draft-ietf-httpapi-ratelimit-headers-11
    # appendix B.1.2: a server MAY omit the others), so Retry-After is never earlier than the end of
    # any t sent with it (draft section 6).
    out["Retry-After"] = str(retry_after)
    return Admission(False, out, reason, retry_after, message)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0").rstrip(".")
