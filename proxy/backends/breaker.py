"""A circuit breaker per node: out after repeated failed answers, one trial request after a cool-down.

The numbers are Olla's (thushan/olla: 3 failures open the circuit for 30 s). An open circuit lets
one trial request through once the cool-down is over (half-open); its success closes the circuit,
its failure opens it for another cool-down.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FAILURE_THRESHOLD = 3
COOL_DOWN = 30.0  # seconds


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int = FAILURE_THRESHOLD,
        cool_down: float = COOL_DOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._cool_down = cool_down
        self._clock = clock
        self.failures = 0  # consecutive
        self._opened_at: float | None = None
        self._trial = False  # a half-open trial request is under way

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def available(self) -> bool:
        """May a request go through now? No side effect: routing asks about every node."""
        if self._opened_at is None:
            return True
        return not self._trial and self._clock() - self._opened_at >= self._cool_down

    def claim(self) -> None:
        """A request is going through: when the circuit is open, it is the one trial."""
        if self._opened_at is not None:
            self._trial = True

    def abandon(self) -> None:
        """The request went away before any answer (its client left): it proved nothing, so the next
        request may be the trial."""
        self._trial = False

    def record_success(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._trial = False

    def record_failure(self) -> None:
        self.failures += 1
        if self._trial or self.failures >= self._threshold:
            self._opened_at = self._clock()
        self._trial = False

    def reset(self) -> None:
        """The node came back (its liveness probe answers again after failing): forget the past."""
        self.record_success()
