"""proxy/backends/breaker.py: out after 3 failures, one trial after the cool-down."""

from __future__ import annotations

from proxy.backends.breaker import COOL_DOWN, CircuitBreaker
from tests.support.fake_clock import FakeClock


def test_three_failures_in_a_row_open_it_and_a_success_between_resets_the_count():
    breaker = CircuitBreaker(clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.available()
    breaker.record_failure()
    assert breaker.is_open and not breaker.available()


def test_after_the_cool_down_one_trial_goes_through_and_decides():
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(COOL_DOWN)
    assert breaker.available()
    breaker.claim()
    assert not breaker.available()  # one trial at a time
    breaker.record_failure()
    assert not breaker.available()  # open for another cool-down
    clock.advance(COOL_DOWN)
    breaker.claim()
    breaker.record_success()
    assert not breaker.is_open and breaker.available()
