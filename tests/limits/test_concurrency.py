"""ConcurrencyLimiter: per-key in-flight counts that never go negative."""

from proxy.limits.concurrency import ConcurrencyLimiter


def test_third_request_rejected_and_two_more_pass_after_two_leave():
    limiter = ConcurrencyLimiter()
    assert limiter.try_enter("k", 2)
    assert limiter.try_enter("k", 2)
    assert not limiter.try_enter("k", 2)
    assert limiter.in_flight("k") == 2
    limiter.leave("k")
    limiter.leave("k")
    assert limiter.try_enter("k", 2)
    assert limiter.try_enter("k", 2)
    assert not limiter.try_enter("k", 2)


def test_keys_are_independent():
    limiter = ConcurrencyLimiter()
    assert limiter.try_enter("a", 1)
    assert limiter.try_enter("b", 1)
    assert not limiter.try_enter("a", 1)


def test_unlimited_always_enters_but_is_counted_for_a_later_limit():
    limiter = ConcurrencyLimiter()
    for _ in range(3):
        assert limiter.try_enter("k", None)
    assert limiter.in_flight("k") == 3
    assert not limiter.try_enter("k", 3)  # a limit set by PATCH sees the current usage


def test_can_enter_takes_no_slot():
    limiter = ConcurrencyLimiter()
    assert limiter.can_enter("k", 1)
    assert limiter.can_enter("k", 1)
    assert limiter.in_flight("k") == 0
    limiter.try_enter("k", 1)
    assert not limiter.can_enter("k", 1)
    assert limiter.can_enter("k", None)


def test_leave_never_goes_negative():
    limiter = ConcurrencyLimiter()
    limiter.leave("k")
    assert limiter.in_flight("k") == 0
    limiter.try_enter("k", 1)
    limiter.leave("k")
    limiter.leave("k")
    assert limiter.in_flight("k") == 0
    assert limiter.try_enter("k", 1)
    assert not limiter.try_enter("k", 1)


def test_release_in_finally_survives_an_exception():
    limiter = ConcurrencyLimiter()

    def handle():
        assert limiter.try_enter("k", 1)
        try:
            raise ConnectionResetError("client went away")
        finally:
            limiter.leave("k")

    for _ in range(3):
        try:
            handle()
        except ConnectionResetError:
            pass
    assert limiter.in_flight("k") == 0
