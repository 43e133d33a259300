"""Per-key count of requests in flight, for the max_concurrent limit."""

from __future__ import annotations

from collections.abc import Hashable


class ConcurrencyLimiter:
    """Counts requests in flight per key; an Ollama generation pins the GPU for its whole length.

    Both methods are synchronous, so between a successful try_enter and the leave in a `finally`
    no await can interleave and a cancelled request cannot skip its release:

        if not limiter.try_enter(key_id, limit):
            raise ...429...
        try:
            ...
        finally:
            limiter.leave(key_id)

    Call leave exactly once per successful try_enter: a second call would free another request's slot.
    """

    __slots__ = ("_in_flight",)

    def __init__(self) -> None:
        self._in_flight: dict[Hashable, int] = {}

    def can_enter(self, key_id: Hashable, limit: int | None) -> bool:
        """try_enter's answer without taking a slot."""
        return limit is None or self._in_flight.get(key_id, 0) < limit

    def try_enter(self, key_id: Hashable, limit: int | None) -> bool:
        # Unlimited keys are counted too, so a limit set later by PATCH sees the current usage.
        count = self._in_flight.get(key_id, 0)
        if limit is not None and count >= limit:
            return False
        self._in_flight[key_id] = count + 1
        return True

    def leave(self, key_id: Hashable) -> None:
        count = self._in_flight.get(key_id, 0)
        if count > 1:
            self._in_flight[key_id] = count - 1
        else:
            # Never negative; idle keys are dropped so the dict only holds keys with work in flight.
            self._in_flight.pop(key_id, None)

    def in_flight(self, key_id: Hashable) -> int:
        return self._in_flight.get(key_id, 0)

    def forget(self, key_id: Hashable) -> None:
        """Stop counting a key that can make no more requests; its later leave() calls do nothing."""
        self._in_flight.pop(key_id, None)
