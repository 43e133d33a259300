"""Who gets the next free node slot: the Virtual Token Counter, a pure class tested without a server.

Sheng et al., "Fairness in Serving Large Language Models" (OSDI 2024, https://arxiv.org/abs/2401.00588;
artifact: https://github.com/Ying1123/VTC-artifact, slora/server/router/vtc_req_queue.py): each key has
a counter of the weighted tokens it was served (prompt × input weight + completion × output weight,
divided by the key's own weight), and a free slot goes to the waiting key with the smallest counter.
A key that starts waiting again is lifted to the smallest counter among the keys waiting (or, when
none waits, to the counter of the last key served), so idle time is never banked. The paper proves
that two backlogged keys' counters then stay within a bound of each other; the scheduler is
work-conserving because the caller hands every freed slot to pop_for() before letting it go.

Priority classes come first: a waiting `interactive` request is always served before a `batch` one
(llm-d's flow control orders priority bands the same way); fairness holds within a class.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Container, Hashable
from dataclasses import dataclass, field

INPUT_WEIGHT = 1.0  # the paper's defaults: an output token costs twice an input one
OUTPUT_WEIGHT = 2.0
# How fast a key's typical request cost follows its latest ones (exponential moving average).
_TYPICAL_SMOOTHING = 0.2
_sequence = itertools.count()


@dataclass(slots=True, eq=False)
class Waiter:
    """One request waiting for a slot. `nodes`: where it may run; `estimate`: its expected weighted
    cost, charged when it is served and corrected by charge() once Ollama reported its tokens."""

    key: Hashable
    rank: int  # priority class: 0 is served first
    weight: float
    nodes: Container[object]
    estimate: float = 0.0
    granted: object = None  # the node pop_for() gave it
    order: int = field(default_factory=lambda: next(_sequence))


class FairScheduler:
    def __init__(self, *, input_weight: float = INPUT_WEIGHT, output_weight: float = OUTPUT_WEIGHT) -> None:
        self.input_weight = input_weight
        self.output_weight = output_weight
        # Per priority class: each key's counter, its waiting requests (oldest first), and the
        # counter of the key served last (the floor for a key that starts waiting on an empty queue).
        self._counters: dict[int, dict[Hashable, float]] = {}
        self._waiting: dict[int, dict[Hashable, deque[Waiter]]] = {}
        self._served_last: dict[int, float] = {}
        self._typical: dict[Hashable, float] = {}
        self.size = 0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input_weight + completion_tokens * self.output_weight

    def typical_cost(self, key: Hashable, default: float) -> float:
        """What the key's requests have cost lately (unweighted by the key): a waiter's estimate."""
        return self._typical.get(key, default)

    def push(self, waiter: Waiter) -> None:
        counters = self._counters.setdefault(waiter.rank, {})
        waiting = self._waiting.setdefault(waiter.rank, {})
        queue = waiting.get(waiter.key)
        if not queue:
            # Back from idle: lifted to the smallest counter among the keys waiting, never lowered.
            others = [counters.get(key, 0.0) for key in waiting]
            floor = min(others) if others else self._served_last.get(waiter.rank, 0.0)
            counters[waiter.key] = max(counters.get(waiter.key, 0.0), floor)
            queue = waiting[waiter.key] = deque()
        queue.append(waiter)
        self.size += 1

    def remove(self, waiter: Waiter) -> bool:
        """Take a waiter out (its deadline passed, its client left); False when it was already served."""
        waiting = self._waiting.get(waiter.rank, {})
        queue = waiting.get(waiter.key)
        if queue is None or waiter not in queue:
            return False
        queue.remove(waiter)
        self.size -= 1
        if not queue:
            self._drop(waiter.rank, waiter.key)
        return True

    def pop_for(self, node: object) -> Waiter | None:
        """The waiter that gets a slot freed on `node`: highest class first, then the smallest counter
        (ties: the oldest request), its key's oldest request that may run there. Charges its estimate."""
        for rank in sorted(self._waiting):
            waiting, counters = self._waiting[rank], self._counters[rank]
            keys = sorted(waiting, key=lambda key: (counters.get(key, 0.0), waiting[key][0].order))
            for key in keys:
                queue = waiting[key]
                for waiter in queue:
                    if node in waiter.nodes:
                        queue.remove(waiter)
                        self.size -= 1
                        self._served_last[rank] = counters.get(key, 0.0)
                        counters[key] = counters.get(key, 0.0) + waiter.estimate / waiter.weight
                        if not queue:
                            self._drop(rank, key)
                        waiter.granted = node
                        return waiter
        return None

    def charge(
        self, key: Hashable, rank: int, weight: float, prompt_tokens: int, completion_tokens: int, estimate: float
    ) -> None:
        """A served request's tokens, as Ollama reported them, less the estimate charged when it was served."""
        cost = self.cost(prompt_tokens, completion_tokens)
        typical = self._typical.get(key)
        self._typical[key] = cost if typical is None else typical + _TYPICAL_SMOOTHING * (cost - typical)
        counters = self._counters.get(rank)
        if counters is not None and key in counters:
            counters[key] += (cost - estimate) / weight

    def counter(self, key: Hashable, rank: int) -> float:
        return self._counters.get(rank, {}).get(key, 0.0)

    def waiting(self, key: Hashable, rank: int) -> int:
        queue = self._waiting.get(rank, {}).get(key)
        return len(queue) if queue else 0

    def waiters(self) -> list[Waiter]:
        return [w for waiting in self._waiting.values() for queue in waiting.values() for w in queue]

    def _drop(self, rank: int, key: Hashable) -> None:
        del self._waiting[rank][key]
        if not self._waiting[rank]:
            # The class's queue is empty: nobody is backlogged, so the past is forgotten. A key's
            # heavy use while nobody waited (the GPUs were free) never counts against it later.
            del self._waiting[rank]
            counters = self._counters[rank]
            self._served_last[rank] = 0.0
            counters.clear()
