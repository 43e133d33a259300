"""Draft-11 RateLimit-Policy / RateLimit values, byte for byte."""

from proxy.limits.headers import (
    burst_item,
    concurrency_item,
    join_items,
    policy_field,
    token_item,
    token_policy_field,
)


def test_burst_policy_window_is_the_time_to_refill_from_empty():
    assert policy_field(3600, 5, None) == '"burst";q=5;w=5'
    assert policy_field(100, 2, None) == '"burst";q=2;w=72'
    assert policy_field(1000, 17, None) == '"burst";q=17;w=62'  # 61.2 s rounded up: w is whole seconds


def test_window_is_at_least_one_second():
    assert policy_field(1_000_000, 1, None) == '"burst";q=1;w=1'


def test_concurrency_policy_uses_the_registered_unit_and_no_window():
    assert policy_field(3600, 5, 2) == '"burst";q=5;w=5, "concurrency";q=2;qu="concurrent-requests"'
    assert policy_field(None, None, 2) == '"concurrency";q=2;qu="concurrent-requests"'


def test_no_policy_without_request_limits():
    assert policy_field(None, None, None) is None


def test_policy_strings_are_cached():
    assert policy_field(3600, 5, 2) is policy_field(3600, 5, 2)
    assert token_policy_field(40) is token_policy_field(40)


def test_token_policy_lives_in_its_own_field_with_its_unit():
    assert token_policy_field(40) == '"daily-tokens";q=40;qu="tokens";w=86400'


def test_service_limit_items():
    assert burst_item(4, 1) == '"burst";r=4;t=1'
    assert concurrency_item(1) == '"concurrency";r=1'
    assert token_item(8, 3600) == '"daily-tokens";r=8;t=3600'
    assert join_items(burst_item(0, 1), concurrency_item(0)) == '"burst";r=0;t=1, "concurrency";r=0'
