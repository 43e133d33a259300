"""Per-key LLM tokens used in the current UTC day, for the tokens_per_day quota."""

from __future__ import annotations

import datetime
import math
from collections.abc import Hashable
from dataclasses import dataclass

_DAY = 86_400
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


@dataclass(slots=True)  # not frozen, for speed: see token_bucket.BucketDecision
class QuotaDecision:
    allowed: bool
    remaining: int | None  # tokens left today; None when the key has no quota
    retry_after: int  # seconds to the next UTC midnight when rejected (>= 1), else 0
    reset: int  # seconds until today's count resets at UTC midnight (0 when no quota)


_UNLIMITED = QuotaDecision(True, None, 0, 0)  # shared by every unlimited check


class DailyTokenQuota:
    """Tokens (prompt + completion) charged per key since the last UTC midnight.

    The quota is checked before a request and charged after it, with the usage the upstream
    reported (Kong AI Rate Limiting Advanced limits on provider token counts the same way). So a
    key is refused only once used >= limit, and requests already in flight may overshoot a little.
    `now` is wall-clock UNIX time: the day boundary is a calendar fact, not a monotonic one.
    """

    __slots__ = ("_day", "_used")

    def __init__(self) -> None:
        self._day = -1  # days since the epoch that _used belongs to
        self._used: dict[Hashable, int] = {}

    def check(self, key_id: Hashable, limit: int | None, now: float) -> QuotaDecision:
        if limit is None:
            return _UNLIMITED
        self._roll(now)
        used = self._used.get(key_id, 0)
        reset = seconds_to_utc_midnight(now)
        if used >= limit:
            return QuotaDecision(False, 0, reset, reset)
        return QuotaDecision(True, limit - used, 0, reset)

    def charge(self, key_id: Hashable, tokens: int, now: float) -> None:
        # Usage is kept for keys without a quota too, so a quota set mid-day sees the day's usage.
        if tokens > 0:
            self._roll(now)
            self._used[key_id] = self._used.get(key_id, 0) + tokens

    def seed(self, key_id: Hashable, tokens: int, day: datetime.date) -> None:
        """Restore a day's count at startup from the database rollups.

        A rollup for a past day is dropped. The larger of the seed and what is already counted
        wins, so a late seed never hands out tokens a second time.
        """
        day_number = day.toordinal() - _EPOCH_ORDINAL
        if day_number < self._day:
            return
        if day_number > self._day:
            self._used.clear()
            self._day = day_number
        self._used[key_id] = max(self._used.get(key_id, 0), tokens)

    def forget(self, key_id: Hashable) -> None:
        self._used.pop(key_id, None)

    def _roll(self, now: float) -> None:
        # Discard every count of a past day. A wall clock stepped back across midnight keeps the
        # newer day's counts: stricter than starting afresh, and it heals when the clock catches up.
        day = int(now // _DAY)
        if day > self._day:
            self._used.clear()
            self._day = day


def seconds_to_utc_midnight(now: float) -> int:
    return max(1, math.ceil((now // _DAY + 1) * _DAY - now))
