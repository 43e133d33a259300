"""DailyTokenQuota: check before, charge after, reset at UTC midnight."""

import datetime

from proxy.limits.token_quota import DailyTokenQuota, QuotaDecision, seconds_to_utc_midnight

MIDNIGHT = datetime.datetime(2026, 11, 27, tzinfo=datetime.UTC).timestamp()
NOON = MIDNIGHT + 12 * 3600
TODAY = datetime.date(2026, 11, 27)
LARGE = 10**9


def used(quota: DailyTokenQuota, key_id: str, now: float) -> int:
    return LARGE - quota.check(key_id, LARGE, now).remaining


def test_fourth_check_rejected_after_three_charges_of_16_against_40():
    quota = DailyTokenQuota()
    remaining = []
    for _ in range(3):
        decision = quota.check("k", 40, NOON)
        assert decision.allowed
        remaining.append(decision.remaining)
        quota.charge("k", 16, NOON)
    assert remaining == [40, 24, 8]
    assert quota.check("k", 40, NOON) == QuotaDecision(False, 0, 12 * 3600, 12 * 3600)


def test_allowed_decision_carries_reset_but_no_retry_after():
    quota = DailyTokenQuota()
    assert quota.check("k", 40, NOON) == QuotaDecision(True, 40, 0, 12 * 3600)


def test_unlimited_is_always_allowed_yet_usage_is_kept():
    quota = DailyTokenQuota()
    quota.charge("k", 100, NOON)
    assert quota.check("k", None, NOON).allowed
    assert used(quota, "k", NOON) == 100
    assert not quota.check("k", 100, NOON).allowed  # a quota set mid-day sees the day's usage


def test_rolls_over_at_utc_midnight():
    quota = DailyTokenQuota()
    quota.charge("k", 40, MIDNIGHT + 86_399)
    rejected = quota.check("k", 40, MIDNIGHT + 86_399.5)
    assert not rejected.allowed and rejected.retry_after == 1
    assert quota.check("k", 40, MIDNIGHT + 86_400) == QuotaDecision(True, 40, 0, 86_400)
    assert used(quota, "k", MIDNIGHT + 86_400) == 0


def test_clock_stepping_back_across_midnight_keeps_the_newer_counts():
    quota = DailyTokenQuota()
    quota.charge("k", 40, MIDNIGHT + 10)
    assert not quota.check("k", 40, MIDNIGHT - 10).allowed


def test_seed_restores_today_and_ignores_past_days():
    quota = DailyTokenQuota()
    quota.seed("k", 30, TODAY)
    quota.seed("old", 30, TODAY - datetime.timedelta(days=1))
    assert quota.check("k", 40, NOON).remaining == 10
    assert used(quota, "old", NOON) == 0


def test_seed_never_lowers_what_is_already_counted():
    quota = DailyTokenQuota()
    quota.charge("k", 35, NOON)
    quota.seed("k", 20, TODAY)
    assert used(quota, "k", NOON) == 35


def test_seed_of_yesterday_is_dropped_on_access_today():
    quota = DailyTokenQuota()
    quota.seed("k", 40, TODAY - datetime.timedelta(days=1))
    assert quota.check("k", 40, NOON).allowed


def test_non_positive_charges_are_ignored():
    quota = DailyTokenQuota()
    quota.charge("k", 0, NOON)
    quota.charge("k", -5, NOON)
    assert used(quota, "k", NOON) == 0


def test_forget_drops_a_keys_count():
    quota = DailyTokenQuota()
    quota.charge("k", 40, NOON)
    quota.charge("other", 40, NOON)
    quota.forget("k")
    assert (used(quota, "k", NOON), used(quota, "other", NOON)) == (0, 40)


def test_seconds_to_utc_midnight():
    assert seconds_to_utc_midnight(MIDNIGHT) == 86_400
    assert seconds_to_utc_midnight(NOON) == 43_200
    assert seconds_to_utc_midnight(MIDNIGHT + 86_399.9) == 1
