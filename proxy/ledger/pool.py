"""What one process holds of one key's shared limits: leased rate tokens, slots and LLM tokens."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

# (rate_per_hour, burst, max_concurrent, tokens_per_day) of the key row the leases were taken under.
Limits = tuple[float | None, int | None, int | None, int | None]


@dataclass(slots=True)
class KeyPool:
    """Local spending of leased units. Mutated only on the event loop; leases are taken one at a time
    per key (`lock`), so concurrent requests of a key wait for one lease instead of each asking."""

    limits: Limits
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    touched: float = field(default_factory=time.monotonic)  # last asked to lease
    # Rate: tokens leased and not yet spent, usable until `rate_expires` (then given back).
    rate_tokens: int = 0
    rate_expires: float = 0.0
    rate_lease: int = 0  # size of the last lease, for the next one's
    rate_spent_in_time: bool = False  # the last lease was used up before it expired
    rate_level: float = -1.0  # the shared bucket after the last lease (-1: not known yet)
    rate_seen: float = 0.0  # when rate_level was learned
    rate_refused_until: float = 0.0  # the ledger said no: no token is due before this
    # Concurrency: slots held in the ledger; `slots_used` of them by requests in flight here.
    slots_held: int = 0
    slots_used: int = 0
    slot_lease: int = 0
    slots_shared: int = 0  # slots in use over every process after the last lease
    slots_refused_until: float = 0.0  # time.monotonic(): a slot frees in real time, whatever the wall clock
    slots_idle_since: float = 0.0
    slots_unreturned: int = 0  # given back while the ledger was away: retried
    # Daily tokens: leased and not reserved by a request (negative: used beyond reservations, owed).
    tokens_allowance: int = 0
    tokens_day: int = -1  # UTC day number the allowance belongs to
    tokens_lease: int = 0
    tokens_shared: int = 0  # granted today over every process, after the last lease
    tokens_idle_since: float = 0.0
    tokens_refused_until: float = 0.0
    # Give-backs under way: a lease waits for them, so a slot released here is free again when it asks.
    returning: set[asyncio.Task[None]] = field(default_factory=set)

    def holds_nothing(self) -> bool:
        return not (self.rate_tokens or self.slots_held or self.slots_unreturned or self.tokens_allowance)
