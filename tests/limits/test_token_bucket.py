"""TokenBucket: continuous refill, rejections that take nothing, live reconfiguration."""

import pytest

from proxy.limits.token_bucket import BucketDecision, TokenBucket

T0 = 1_000_000.0


def drain(bucket: TokenBucket, attempts: int, now: float) -> list[BucketDecision]:
    return [bucket.try_acquire(now) for _ in range(attempts)]


def test_starts_full_and_allows_exactly_the_burst_at_one_instant():
    bucket = TokenBucket(3600, 5, T0)
    decisions = drain(bucket, 20, T0)
    assert [d.allowed for d in decisions].count(True) == 5
    assert all(d.allowed for d in decisions[:5])
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert all(not d.allowed and d.retry_after >= 1 for d in decisions[5:])


def test_one_second_later_exactly_one_more_passes():
    bucket = TokenBucket(3600, 5, T0)
    drain(bucket, 20, T0)
    later = drain(bucket, 5, T0 + 1)
    assert [d.allowed for d in later] == [True, False, False, False, False]


def test_rejections_are_not_counted():
    # nginx-tests limit_req.t 'rejects not counted': hammering while empty does not push the next slot back.
    bucket = TokenBucket(3600, 1, T0)
    assert bucket.try_acquire(T0).allowed
    for step in range(1, 10):
        assert not bucket.try_acquire(T0 + step / 10).allowed
    assert bucket.try_acquire(T0 + 1).allowed


def test_retry_after_is_honoured_exactly_for_a_slow_rate():
    bucket = TokenBucket(100, 1, T0)  # one token every 36 s
    bucket.try_acquire(T0)
    rejected = bucket.try_acquire(T0)
    assert rejected == BucketDecision(False, 0, 36, 36)
    assert not bucket.try_acquire(T0 + 35.9).allowed
    assert bucket.try_acquire(T0 + 36).allowed


def test_allowed_decision_reports_next_token_and_full_reset():
    bucket = TokenBucket(3600, 5, T0)
    first = bucket.try_acquire(T0)
    assert first == BucketDecision(True, 4, 1, 1)
    drain(bucket, 4, T0)
    assert bucket.try_acquire(T0) == BucketDecision(False, 0, 1, 5)


def test_fractional_fill_rounds_remaining_down_and_waits_up():
    bucket = TokenBucket(3600, 5, T0)
    drain(bucket, 5, T0)
    decision = bucket.try_acquire(T0 + 1.5)  # 1.5 tokens -> take one, 0.5 left
    assert decision == BucketDecision(True, 0, 1, 5)


def test_refill_stops_at_capacity():
    bucket = TokenBucket(3600, 5, T0)
    drain(bucket, 5, T0)
    assert [d.allowed for d in drain(bucket, 6, T0 + 3600)].count(True) == 5


def test_clock_stepping_back_grants_nothing_and_does_not_stall():
    bucket = TokenBucket(3600, 1, T0)
    bucket.try_acquire(T0)
    assert not bucket.try_acquire(T0 - 100).allowed
    assert bucket.try_acquire(T0 - 99).allowed


def test_raising_capacity_makes_the_new_burst_usable_at_once():
    bucket = TokenBucket(3600, 5, T0)
    drain(bucket, 20, T0)
    assert bucket.try_acquire(T0 + 1).allowed  # drained again
    bucket.reconfigure(3600, 20, T0 + 1)
    decisions = drain(bucket, 21, T0 + 1)
    assert [d.allowed for d in decisions].count(True) == 20
    assert not decisions[-1].allowed


def test_lowering_capacity_clamps_the_fill():
    bucket = TokenBucket(3600, 20, T0)
    bucket.reconfigure(3600, 3, T0)
    assert [d.allowed for d in drain(bucket, 5, T0)].count(True) == 3


def test_rate_change_keeps_the_fill_and_applies_from_now():
    bucket = TokenBucket(3600, 5, T0)
    drain(bucket, 5, T0)
    bucket.reconfigure(7200, 5, T0 + 1)  # the first second accrued at the old rate: 1 token
    assert [d.allowed for d in drain(bucket, 3, T0 + 1)].count(True) == 1
    assert [d.allowed for d in drain(bucket, 3, T0 + 2)].count(True) == 2


@pytest.mark.parametrize(("rate", "capacity"), [(0, 5), (-1, 5), (float("inf"), 5), (3600, 0)])
def test_rejects_invalid_limits(rate, capacity):
    with pytest.raises(ValueError):
        TokenBucket(rate, capacity, T0)
    bucket = TokenBucket(3600, 5, T0)
    with pytest.raises(ValueError):
        bucket.reconfigure(rate, capacity, T0)
