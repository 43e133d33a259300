"""KeyLimiter: the acceptance scenarios for per-key limits, at the pure level."""

import datetime

import pytest

from proxy.limits import Admission, KeyLimiter, default_burst

NOON = datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.UTC).timestamp()


def admit(limiter: KeyLimiter, now: float = NOON, key_id: str = "k", **overrides) -> Admission:
    limits = {"rate_per_hour": 3600, "burst": 5, "max_concurrent": None, "tokens_per_day": None}
    limits.update(overrides)
    return limiter.admit(key_id, now=now, **limits)


def burst_of(limiter: KeyLimiter, attempts: int, now: float = NOON, **limits) -> list[Admission]:
    results = [admit(limiter, now, **limits) for _ in range(attempts)]
    for result in results:
        if result.allowed:
            limiter.release("k")
    return results


def allowed(results: list[Admission]) -> int:
    return sum(result.allowed for result in results)


def test_twenty_at_once_with_burst_5_then_one_per_second_then_raised_burst():
    limiter = KeyLimiter()
    first = burst_of(limiter, 20)
    assert allowed(first) == 5
    rejected = [result for result in first if not result.allowed]
    assert len(rejected) == 15
    assert all(r.reason == "rate" and r.retry_after >= 1 for r in rejected)

    assert allowed(burst_of(limiter, 20, NOON + 1)) == 1

    raised = burst_of(limiter, 20, NOON + 1, burst=20)  # PATCH burst 5 -> 20, same instant
    assert allowed(raised) == 20
    assert not admit(limiter, NOON + 1, burst=20).allowed


def test_rate_rejection_headers_and_message():
    limiter = KeyLimiter()
    burst_of(limiter, 5)
    result = admit(limiter)
    assert result == Admission(
        allowed=False,
        headers={
            "RateLimit-Policy": '"burst";q=5;w=5',
            "RateLimit": '"burst";r=0;t=1',
            "Retry-After": "1",
        },
        reason="rate",
        retry_after=1,
        message="rate limit exceeded: 5 requests per burst, refills at 3600/hour",
    )


def test_allowed_headers_report_every_limit():
    limiter = KeyLimiter()
    limiter.charge("k", 16, NOON)
    result = admit(limiter, max_concurrent=2, tokens_per_day=40)
    assert result.allowed and result.reason is None
    assert result.headers == {
        "RateLimit-Policy": '"burst";q=5;w=5, "concurrency";q=2;qu="concurrent-requests"',
        "RateLimit": '"burst";r=4;t=1, "concurrency";r=1',
        "Olg-RateLimit-Policy": '"daily-tokens";q=40;qu="tokens";w=86400',
        "Olg-RateLimit": '"daily-tokens";r=24;t=43200',
    }


def test_max_concurrent_2_third_rejected_and_two_pass_after_two_leave():
    limiter = KeyLimiter()
    assert admit(limiter, max_concurrent=2).allowed
    assert admit(limiter, max_concurrent=2).allowed
    third = admit(limiter, max_concurrent=2)
    assert (third.allowed, third.reason) == (False, "concurrency")
    assert third.retry_after == 1
    assert third.headers["RateLimit"] == '"concurrency";r=0'
    assert third.headers["Retry-After"] == "1"
    assert third.message == "concurrency limit exceeded: 2 requests in flight at once"
    limiter.release("k")
    limiter.release("k")
    assert admit(limiter, max_concurrent=2).allowed
    assert admit(limiter, max_concurrent=2).allowed
    assert limiter.in_flight("k") == 2


def test_tokens_per_day_40_with_charges_of_16_fourth_rejected_until_midnight():
    limiter = KeyLimiter()
    for _ in range(3):
        assert admit(limiter, tokens_per_day=40).allowed
        limiter.release("k")
        limiter.charge("k", 16, NOON)
    fourth = admit(limiter, tokens_per_day=40)
    assert (fourth.allowed, fourth.reason) == (False, "tokens")
    assert fourth.retry_after == 43200
    assert fourth.headers == {
        "RateLimit-Policy": '"burst";q=5;w=5',
        "Olg-RateLimit-Policy": '"daily-tokens";q=40;qu="tokens";w=86400',
        "Olg-RateLimit": '"daily-tokens";r=0;t=43200',
        "Retry-After": "43200",
    }
    assert fourth.message == "daily token quota exceeded: 40 tokens per UTC day, resets in 43200 s"
    assert admit(limiter, NOON + 43200, tokens_per_day=40).allowed  # UTC midnight


def test_rejected_requests_consume_nothing():
    limiter = KeyLimiter()
    limiter.charge("k", 40, NOON)
    for _ in range(10):
        assert admit(limiter, tokens_per_day=40).reason == "tokens"
    assert limiter.in_flight("k") == 0
    assert allowed(burst_of(limiter, 10)) == 5  # the bucket was never touched

    other = KeyLimiter()
    assert admit(other, max_concurrent=1).allowed
    for _ in range(10):
        assert admit(other, max_concurrent=1).reason == "concurrency"
    other.release("k")
    one_at_a_time = []
    for _ in range(10):
        result = admit(other, max_concurrent=1)
        one_at_a_time.append(result)
        if result.allowed:
            other.release("k")
    assert allowed(one_at_a_time) == 4  # 5 - the one admitted first


def test_seeded_usage_counts_against_the_quota():
    limiter = KeyLimiter()
    limiter.seed("k", 40, datetime.date(2026, 11, 27))
    assert admit(limiter, tokens_per_day=40).reason == "tokens"


def test_lowering_the_rate_applies_to_the_next_request():
    limiter = KeyLimiter()
    assert allowed(burst_of(limiter, 5)) == 5
    result = admit(limiter, NOON + 1, rate_per_hour=360, burst=5)  # one token per 10 s from now
    assert result.allowed  # the second that passed accrued at the old rate
    rejected = admit(limiter, NOON + 1, rate_per_hour=360, burst=5)
    assert rejected.retry_after == 10
    assert rejected.message == "rate limit exceeded: 5 requests per burst, refills at 360/hour"


def test_unlimited_key_gets_no_headers_but_is_counted():
    limiter = KeyLimiter()
    for _ in range(100):
        result = admit(limiter, rate_per_hour=None, burst=None)
        assert result.allowed and result.headers == {}
    assert limiter.in_flight("k") == 100


def test_removing_the_rate_limit_drops_the_bucket():
    limiter = KeyLimiter()
    burst_of(limiter, 5)
    assert admit(limiter, rate_per_hour=None).allowed
    limiter.release("k")
    assert allowed(burst_of(limiter, 10)) == 5  # a fresh, full bucket when the limit returns


def test_missing_burst_defaults_to_a_minute_of_the_rate():
    limiter = KeyLimiter()
    results = burst_of(limiter, 70, rate_per_hour=3600, burst=None)
    assert allowed(results) == 60
    assert results[0].headers["RateLimit-Policy"] == '"burst";q=60;w=60'


@pytest.mark.parametrize(("rate", "burst"), [(3600, 60), (100, 2), (60, 1), (10, 1), (0.5, 1), (61, 2)])
def test_default_burst(rate, burst):
    assert default_burst(rate) == burst


def test_forget_drops_the_bucket_the_in_flight_count_and_the_token_count():
    limiter = KeyLimiter()
    assert admit(limiter, max_concurrent=1).allowed
    limiter.charge("k", 40, NOON)
    burst_of(limiter, 4)
    limiter.forget("k")
    assert limiter.in_flight("k") == 0
    limiter.release("k")  # the request still in flight ends: nothing to release, nothing goes negative
    limiter.charge("k", 30, NOON)  # and what it spent is not counted again
    assert limiter.in_flight("k") == 0
    assert allowed(burst_of(limiter, 10)) == 5  # a fresh bucket
    tokens = admit(limiter, rate_per_hour=None, tokens_per_day=40)
    assert tokens.headers["Olg-RateLimit"] == '"daily-tokens";r=40;t=43200'  # and a fresh count


def test_keys_are_limited_independently():
    limiter = KeyLimiter()
    burst_of(limiter, 5)
    assert not admit(limiter, key_id="k").allowed
    assert admit(limiter, key_id="other").allowed


def test_fractional_rate_in_message():
    limiter = KeyLimiter()
    admit(limiter, rate_per_hour=1.5, burst=1)
    assert admit(limiter, rate_per_hour=1.5, burst=1).message.endswith("refills at 1.5/hour")
