"""A wall clock that moves only when a test says so: limits are tested without sleeping."""

from __future__ import annotations

import datetime

NOON = datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.UTC).timestamp()


class FakeClock:
    """Call it for UNIX time, as `time.time`; starts at NOON UTC so a day boundary is 12 h away."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
