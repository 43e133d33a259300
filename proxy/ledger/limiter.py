"""Admission against limits shared by every gateway process: local pools leased from the limit ledger.

A request spends from what this process has leased (no database round trip); only when its pool is
empty does it lease again, one lease at a time per key. Refusals come from the ledger's own answer, so
they hold across processes. While PostgreSQL is away, LIMITS_WHEN_DB_DOWN decides: `local` enforces
this process's exact share of every limit (the shares add up to the limit, so it never multiplies),
`closed` answers 503. docs/operations.md "Limits" states the bounds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from uuid import UUID

from proxy.db.errors import DatabaseUnavailable
from proxy.errors import GatewayError, unauthorized
from proxy.ledger.pool import KeyPool, Limits
from proxy.ledger.store import Grant, HolderGone, KeyGone, LedgerStore, Want
from proxy.limits import Admission, KeyLimiter, default_burst, seconds_to_utc_midnight
from proxy.limits import headers as h
from proxy.limits.lease_size import LEASE_SECONDS, lease_size, process_share
from proxy.limits.refusals import concurrency_refused, policy_fields, rate_refused, reject, tokens_refused
from proxy.values.utc_day import utc_day_at

log = logging.getLogger(__name__)

_DAY = 86_400
# How long a concurrency refusal is believed without asking again: a slot frees whenever some
# request ends, so only briefly; it keeps a flood of one key's requests from costing a query each.
CONCURRENCY_REFUSAL_SECONDS = 0.1
# The same for a daily token quota found used up: until allowances leased by other processes come back.
TOKENS_REFUSAL_SECONDS = 1.0
# Whole seconds a client is told to wait when the ledger is away and the rule is `closed`.
CLOSED_RETRY_AFTER = 5

# A key's pool is dropped after this long unused, holding nothing (a request may be waiting on its lock).
IDLE_POOL_SECONDS = 60.0

LEDGER = "ledger"
LOCAL = "local"
CLOSED = "closed"


@dataclass(slots=True)
class LedgerCounters:
    """For /metrics: how admissions were decided, and the ledger calls they cost."""

    local_admissions: int = 0  # spent from what this process had leased
    ledger_admissions: int = 0  # waited for a lease first
    leases: int = 0
    returns: int = 0
    fallback_admissions: int = 0  # decided by this process's share while the ledger was away
    mode_switches: int = 0


class SharedLimiter:
    """This process's view of every key's shared limits; one per gateway process.

    try_admit() is synchronous and answers from the local pools, or None when a lease is needed;
    admit() then takes it. Every allowed admission is paired with one release() in a `finally`.
    `clock` is wall-clock UNIX time (the daily quota needs UTC days); tests inject a fake one.
    """

    def __init__(
        self,
        store: LedgerStore | None,
        *,
        when_down: str = LOCAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.when_down = when_down
        self._clock = clock
        self._pools: dict[Hashable, KeyPool] = {}
        self._retired: set[Hashable] = set()
        self._background: set[asyncio.Task[None]] = set()
        # The fallback, with this process's shares of each limit. Kept across outages, so that a ledger
        # that comes and goes never hands out a fresh share each time it goes.
        self._local = KeyLimiter()
        self._seeded: dict[Hashable, float] = {}  # key -> when the ledger state its bucket started from was seen
        self.mode = LEDGER
        self.processes = 1  # live gateway processes, and this one's place among them (last heartbeat)
        self.index = 0
        self.counters = LedgerCounters()

    # -- admission -------------------------------------------------------------------------------

    def try_admit(
        self,
        key_id: Hashable,
        rate_per_hour: float | None,
        burst: int | None,
        max_concurrent: int | None,
        tokens_per_day: int | None,
    ) -> Admission | None:
        """The answer from what this process holds, or None when the ledger must be asked."""
        if rate_per_hour is None and max_concurrent is None and tokens_per_day is None:
            return _UNLIMITED
        if self.mode != LEDGER:
            return self._fallback(key_id, rate_per_hour, burst, max_concurrent, tokens_per_day)
        if rate_per_hour is not None and burst is None:
            burst = default_burst(rate_per_hour)
        now = self._clock()
        pool = self._pool(key_id, (rate_per_hour, burst, max_concurrent, tokens_per_day), now)
        refusal = self._known_refusal(pool, now)
        if refusal is not None:
            return refusal
        if rate_per_hour is not None and (pool.rate_tokens < 1 or now >= pool.rate_expires):
            return None
        if max_concurrent is not None and pool.slots_used >= pool.slots_held:
            return None
        return self._spend(pool, now)

    async def admit(
        self,
        key_id: Hashable,
        rate_per_hour: float | None,
        burst: int | None,
        max_concurrent: int | None,
        tokens_per_day: int | None,
    ) -> Admission:
        """try_admit, leasing from the ledger when this process holds too little."""
        admission = self.try_admit(key_id, rate_per_hour, burst, max_concurrent, tokens_per_day)
        if admission is not None:
            return admission
        if rate_per_hour is not None and burst is None:
            burst = default_burst(rate_per_hour)
        limits = (rate_per_hour, burst, max_concurrent, tokens_per_day)
        while True:
            pool = self._pool(key_id, limits, self._clock())
            pool.touched = time.monotonic()
            async with pool.lock:
                # Another request of the key may have leased enough while this one waited.
                admission = self.try_admit(key_id, rate_per_hour, burst, max_concurrent, tokens_per_day)
                if admission is not None:
                    return admission
                if self._pools.get(key_id) is pool:  # else edited meanwhile: wait on the new pool's lease
                    return await self._lease_and_spend(key_id, pool, rate_per_hour, burst, max_concurrent)

    async def _lease_and_spend(
        self,
        key_id: Hashable,
        pool: KeyPool,
        rate_per_hour: float | None,
        burst: int | None,
        max_concurrent: int | None,
    ) -> Admission:
        """Under the pool's lock, when what it holds is not enough: one lease, then spend or refuse."""
        if pool.returning:
            await asyncio.gather(*pool.returning, return_exceptions=True)
            # Requests ended meanwhile may have left enough (no lock is needed to spend or release).
            admission = self.try_admit(key_id, *pool.limits)
            if admission is not None:
                return admission
        now = self._clock()
        want = Want()
        if rate_per_hour is not None and (pool.rate_tokens < 1 or now >= pool.rate_expires):
            self._expire_rate(key_id, pool, now)
            want.rate_per_second, want.burst = rate_per_hour / 3600.0, burst
            level = pool.rate_level if pool.rate_level >= 0 else burst
            want.rate = lease_size(
                burst,
                self.processes,
                previous=pool.rate_lease,
                spent_within_lease=pool.rate_spent_in_time,
                level=level,
            )
        if max_concurrent is not None and pool.slots_used >= pool.slots_held:
            want.max_concurrent = max_concurrent
            want.slots = lease_size(
                max_concurrent,
                self.processes,
                previous=pool.slot_lease,
                spent_within_lease=True,
                level=max_concurrent - pool.slots_shared,
            )
        if not (want.rate or want.slots):  # cannot happen: try_admit said this pool holds too little
            return self._spend(pool, now)
        try:
            grant = await self._lease(key_id, want, now)
        except DatabaseUnavailable as exc:
            self.ledger_lost(exc)
            return self._fallback(key_id, *pool.limits)
        now = self._clock()
        if key_id in self._retired or self._pools.get(key_id) is not pool:
            # Revoked or edited while the lease was out: what it brought goes straight back.
            self._give_back_later(key_id, pool.limits, now, rate=grant.rate, slots=grant.slots)
            if key_id in self._retired:
                raise unauthorized()
            return await self.admit(key_id, *pool.limits)
        if want.rate:
            pool.rate_tokens += grant.rate
            pool.rate_lease = want.rate
            pool.rate_spent_in_time = False
            pool.rate_expires = now + LEASE_SECONDS
            pool.rate_level, pool.rate_seen = grant.rate_level, now
            if not grant.rate and grant.rate_level + 1e-9 < 1:
                wait = (1 - grant.rate_level) / (rate_per_hour / 3600.0)
                pool.rate_refused_until = now + max(0.001, wait)
        if want.slots:
            pool.slots_held += grant.slots
            pool.slot_lease = want.slots
            pool.slots_shared = grant.slots_in_use
            if not grant.slots and grant.slots_in_use >= (max_concurrent or 0):
                pool.slots_refused_until = time.monotonic() + CONCURRENCY_REFUSAL_SECONDS
        if grant.rate or grant.slots:
            return self._spend(pool, now, leased=True)
        # Nothing granted (all or nothing). Requests that ended meanwhile may have left enough here;
        # else the kind that was short refuses.
        admission = self.try_admit(key_id, *pool.limits)
        if admission is not None:
            return admission
        if want.slots and grant.slots_in_use >= (max_concurrent or 0):
            return self._concurrency_refusal(pool)
        return self._rate_refusal(pool, max(1, math.ceil(pool.rate_refused_until - now - 1e-9)))

    def release(self, key_id: Hashable, admission: Admission) -> None:
        """The end of an admitted request, however it ended: its slot goes back."""
        if admission.fallback:
            self._local.release(key_id)
            return
        pool = self._pools.get(key_id)
        if pool is None or admission.slot is None:
            return
        pool.slots_used = max(0, pool.slots_used - 1)
        pool.slots_refused_until = 0.0  # a slot was freed: the next request asks again
        spare = pool.slots_held - pool.slots_used
        now = self._clock()
        if pool.slots_used == 0:
            pool.slots_idle_since = now
        # One-slot leases go back at once (the limit is small: another process may need it now);
        # larger batches keep a spare lease's worth for the next requests, the rest goes back.
        keep = 0 if pool.slot_lease <= 1 else pool.slot_lease
        if spare > keep:
            pool.slots_held -= spare - keep
            self._give_back_later(key_id, pool.limits, now, slots=spare - keep)

    # -- daily LLM tokens --------------------------------------------------------------------------

    async def reserve_tokens(self, key_id: Hashable, tokens_per_day: int, wanted: int) -> int:
        """Reserve `wanted` of today's tokens for a request about to go upstream, all or nothing, so
        that the day's total passes the quota only by what a request uses beyond its reservation.
        The amount reserved, or GatewayError 429 when that many are not left today."""
        now = self._clock()
        # Never more than the whole quota: a key whose day is smaller than an estimate can still be used.
        wanted = min(wanted, tokens_per_day)
        if self.mode != LEDGER:
            return wanted  # the fallback's quota was checked at admission
        pool = self._pools.get(key_id)
        if pool is None:
            return wanted
        async with pool.lock:
            self._roll_day(pool, now)
            if pool.tokens_allowance >= wanted:
                pool.tokens_allowance -= wanted
                pool.tokens_idle_since = now
                return wanted
            need = wanted - max(0, pool.tokens_allowance)
            extra = lease_size(
                tokens_per_day,
                self.processes,
                previous=pool.tokens_lease,
                spent_within_lease=True,
                level=tokens_per_day - pool.tokens_shared,
            )
            want = Want(tokens_per_day=tokens_per_day, tokens=need + extra, tokens_min=need)
            try:
                grant = await self._lease(key_id, want, now)
            except DatabaseUnavailable as exc:
                self.ledger_lost(exc)
                return wanted
            pool.tokens_lease = need + extra
            pool.tokens_shared = grant.tokens_used
            if grant.tokens < need:
                left = max(0, tokens_per_day - grant.tokens_used + pool.tokens_allowance)
                reset = seconds_to_utc_midnight(now)
                if left < 1:
                    # Believed briefly: allowances other processes leased and did not use come back when idle.
                    pool.tokens_refused_until = time.monotonic() + TOKENS_REFUSAL_SECONDS
                    refusal = tokens_refused({}, tokens_per_day, reset)
                    raise GatewayError(429, refusal.message, refusal.headers)
                raise GatewayError(
                    429,
                    f"daily token quota: {left} of {tokens_per_day} tokens left today, fewer than this request "
                    f"may use ({wanted}: its num_predict or max_tokens, else an estimate); resets in {reset} s",
                    {h.TOKEN_RATELIMIT: h.token_item(left, reset), "Retry-After": str(reset)},
                )
            pool.tokens_allowance += grant.tokens - wanted
            pool.tokens_idle_since = now
            return wanted

    def settle(self, key_id: Hashable, reserved: int, used: int, admission: Admission) -> None:
        """A finished request's tokens: what it reserved and did not use goes back to the allowance;
        what it used beyond its reservation is charged to the ledger."""
        now = self._clock()
        if admission.fallback or self.mode != LEDGER:
            if key_id not in self._retired and used > 0:
                self._local.charge(key_id, used, now)
            return
        pool = self._pools.get(key_id)
        if pool is None or key_id in self._retired:
            return
        self._roll_day(pool, now)
        pool.tokens_allowance += reserved - used
        pool.tokens_idle_since = now
        if pool.tokens_allowance < 0:
            owed, pool.tokens_allowance = -pool.tokens_allowance, 0
            pool.tokens_shared += owed
            self._give_back_later(key_id, pool.limits, now, tokens=-owed)

    # -- lifecycle ---------------------------------------------------------------------------------

    def forget(self, key_id: Hashable) -> None:
        """A revoked or deleted key: what this process leased for it goes back to the ledger."""
        self._retired.add(key_id)
        self._local.forget(key_id)
        pool = self._pools.pop(key_id, None)
        if pool is not None:
            self._return_all(key_id, pool, self._clock())

    def expire(self) -> None:
        """Give back what has outlived its lease: unspent rate tokens, idle spare slots and allowances."""
        now = self._clock()
        for key_id, pool in list(self._pools.items()):
            if pool.rate_tokens and now >= pool.rate_expires:
                self._expire_rate(key_id, pool, now)
            if pool.slots_unreturned and self.mode == LEDGER:
                slots, pool.slots_unreturned = pool.slots_unreturned, 0
                self._give_back_later(key_id, pool.limits, now, slots=slots)
            spare = pool.slots_held - pool.slots_used
            if spare and not pool.slots_used and now - pool.slots_idle_since >= LEASE_SECONDS:
                pool.slots_held -= spare
                self._give_back_later(key_id, pool.limits, now, slots=spare)
            if pool.tokens_allowance > 0 and now - pool.tokens_idle_since >= LEASE_SECONDS:
                tokens, pool.tokens_allowance = pool.tokens_allowance, 0
                self._give_back_later(key_id, pool.limits, now, tokens=tokens)
            if (
                pool.holds_nothing()
                and not pool.slots_used
                and not pool.lock.locked()
                and time.monotonic() - pool.touched > IDLE_POOL_SECONDS
            ):
                del self._pools[key_id]

    async def give_back_all(self) -> None:
        """At shutdown, once requests have drained: everything held goes back."""
        now = self._clock()
        for key_id, pool in list(self._pools.items()):
            self._return_all(key_id, pool, now)
        await self.settled()

    async def settled(self) -> None:
        """Wait for the give-backs under way."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def in_flight(self, key_id: Hashable) -> int:
        """Requests of the key this process is serving (counted where a concurrency limit applies)."""
        pool = self._pools.get(key_id)
        return (pool.slots_used if pool is not None else 0) + self._local.in_flight(key_id)

    def slots_in_use(self) -> dict[UUID, int]:
        """Slots this process's requests hold now, per key (re-registered after a sweep took us for dead)."""
        return {k: p.slots_used for k, p in self._pools.items() if p.slots_used and isinstance(k, UUID)}

    def keys_held(self) -> list[UUID]:
        return [key_id for key_id in self._pools if isinstance(key_id, UUID)]

    def saw_buckets(self, buckets: dict[UUID, tuple[float, float]]) -> None:
        """The shared buckets as they are now (every heartbeat): what a switch to `local` starts from."""
        for key_id, (level, stamp) in buckets.items():
            pool = self._pools.get(key_id)
            if pool is not None and stamp >= pool.rate_seen:
                pool.rate_level, pool.rate_seen = level, stamp

    def ledger_lost(self, exc: BaseException) -> None:
        if self.mode == LEDGER:
            self.mode = self.when_down
            self.counters.mode_switches += 1
            log.warning(
                "limit ledger unreachable (%s): limits now %s (LIMITS_WHEN_DB_DOWN=%s)",
                exc,
                f"this process's share of each limit, 1/{self.processes}"
                if self.mode == LOCAL
                else "answer 503 for limited keys",
                self.when_down,
            )

    def ledger_back(self, processes: int, index: int) -> None:
        self.processes, self.index = max(1, processes), index
        if self.mode != LEDGER:
            self.mode = LEDGER
            self.counters.mode_switches += 1
            log.warning("limit ledger reachable again: limits are shared across processes again")

    # -- inside ------------------------------------------------------------------------------------

    def _pool(self, key_id: Hashable, limits: Limits, now: float) -> KeyPool:
        pool = self._pools.get(key_id)
        if pool is None:
            pool = self._pools[key_id] = KeyPool(limits, slots_idle_since=now, tokens_idle_since=now)
        elif pool.limits != limits:
            # Edited limits: what was leased under the old ones goes back, the slots in use stay.
            fresh = KeyPool(limits, slots_held=pool.slots_used, slots_used=pool.slots_used, slots_idle_since=now)
            fresh.tokens_day = pool.tokens_day
            pool.slots_held -= pool.slots_used
            self._return_all(key_id, pool, now)
            pool = self._pools[key_id] = fresh
        return pool

    def _known_refusal(self, pool: KeyPool, now: float) -> Admission | None:
        rate_per_hour, _, max_concurrent, tokens_per_day = pool.limits
        if tokens_per_day is not None and pool.tokens_refused_until and time.monotonic() < pool.tokens_refused_until:
            return tokens_refused(policy_fields(*pool.limits), tokens_per_day, seconds_to_utc_midnight(now))
        if (
            max_concurrent is not None
            and pool.slots_refused_until
            and time.monotonic() < pool.slots_refused_until
            and pool.slots_used >= pool.slots_held
        ):
            return self._concurrency_refusal(pool)
        if rate_per_hour is not None and now < pool.rate_refused_until and pool.rate_tokens < 1:
            return self._rate_refusal(pool, max(1, math.ceil(pool.rate_refused_until - now - 1e-9)))
        return None

    def _concurrency_refusal(self, pool: KeyPool) -> Admission:
        return concurrency_refused(policy_fields(*pool.limits), pool.limits[2] or 0)

    def _rate_refusal(self, pool: KeyPool, retry: int) -> Admission:
        rate_per_hour, burst, _, _ = pool.limits
        return rate_refused(policy_fields(*pool.limits), rate_per_hour or 0, burst, retry)

    def _spend(self, pool: KeyPool, now: float, *, leased: bool = False) -> Admission:
        if leased:
            self.counters.ledger_admissions += 1
        else:
            self.counters.local_admissions += 1
        rate_per_hour, burst, max_concurrent, tokens_per_day = pool.limits
        out = policy_fields(*pool.limits)
        items = []
        if rate_per_hour is not None:
            pool.rate_tokens -= 1
            if pool.rate_tokens == 0:
                pool.rate_spent_in_time = now < pool.rate_expires
            per_second = rate_per_hour / 3600.0
            shared = min(burst, pool.rate_level + (now - pool.rate_seen) * per_second)
            level = min(burst, pool.rate_tokens + shared)
            remaining = math.floor(level + 1e-9)
            items.append(h.burst_item(remaining, max(1, math.ceil((remaining + 1 - level) / per_second - 1e-9))))
        slot = None
        if max_concurrent is not None:
            pool.slots_used += 1
            slot = True
            in_use = pool.slots_shared if pool.slot_lease <= 1 else pool.slots_used
            items.append(h.concurrency_item(max(0, max_concurrent - max(in_use, pool.slots_used))))
        if items:
            out[h.RATELIMIT] = h.join_items(*items)
        if tokens_per_day is not None:
            remaining = max(0, tokens_per_day - pool.tokens_shared + pool.tokens_allowance)
            out[h.TOKEN_RATELIMIT] = h.token_item(remaining, seconds_to_utc_midnight(now))
        return Admission(True, out, slot=slot)

    def _fallback(
        self,
        key_id: Hashable,
        rate_per_hour: float | None,
        burst: int | None,
        max_concurrent: int | None,
        tokens_per_day: int | None,
    ) -> Admission:
        if self.mode == CLOSED:
            raise GatewayError(
                503,
                "limits cannot be checked while the database is unavailable; retry later",
                {"Retry-After": str(CLOSED_RETRY_AFTER)},
            )
        self.counters.fallback_admissions += 1
        processes, index = self.processes, self.index
        pool = self._pools.get(key_id)
        if rate_per_hour is not None:
            full = burst or default_burst(rate_per_hour)
            burst = process_share(full, processes, index)
            rate_per_hour /= processes
            seen = pool.rate_seen if pool is not None and pool.rate_level >= 0 else None
            if seen is not None and burst and self._seeded.get(key_id) != seen:
                # Start from this process's share of what the ledger last said was left, plus what it
                # still holds: the shares of every process then add up to what was left, not to a new burst.
                now = self._clock()
                left = min(full, pool.rate_level + (now - seen) * rate_per_hour * processes / 3600.0)
                level = process_share(math.floor(left + 1e-9), processes, index) + pool.rate_tokens
                self._local.start_bucket(key_id, rate_per_hour, burst, level, now)
                self._seeded[key_id] = seen
        if max_concurrent is not None:
            max_concurrent = process_share(max_concurrent, processes, index)
        if tokens_per_day is not None:
            left = tokens_per_day - (pool.tokens_shared if pool is not None else 0)
            tokens_per_day = process_share(max(0, left), processes, index)
        if burst == 0 or max_concurrent == 0 or tokens_per_day == 0:
            # This process's share of the limit is nothing: its peers hold the whole of it.
            return reject({}, "rate", 1, "rate limit exceeded: this gateway process's share of the limit is used")
        admission = self._local.admit(
            key_id,
            rate_per_hour=rate_per_hour,
            burst=burst,
            max_concurrent=max_concurrent,
            tokens_per_day=tokens_per_day,
            now=self._clock(),
        )
        admission.fallback = True
        return admission

    async def _lease(self, key_id: Hashable, want: Want, now: float) -> Grant:
        if self.store is None:
            raise DatabaseUnavailable("no limit ledger")
        self.counters.leases += 1
        day = utc_day_at(now)
        try:
            return await self.store.lease(key_id, want, now, day)  # type: ignore[arg-type]
        except KeyGone:
            raise unauthorized() from None
        except HolderGone:
            await self.rejoin()
            return await self.store.lease(key_id, want, now, day)  # type: ignore[arg-type]

    async def rejoin(self) -> None:
        """Register again after a sweep took this process for dead: the slots in use are held again,
        the spare ones were reclaimed with the rest."""
        for pool in self._pools.values():
            pool.slots_held, pool.slots_unreturned = pool.slots_used, 0
        await self.store.register(self.slots_in_use())  # type: ignore[union-attr]
        log.warning("limit ledger: this process was taken for dead and has registered again")

    def _roll_day(self, pool: KeyPool, now: float) -> None:
        day = int(now // _DAY)
        if day != pool.tokens_day:
            # Yesterday's allowance is worth nothing today; the ledger's row rolls over by itself.
            pool.tokens_day, pool.tokens_allowance, pool.tokens_shared = day, 0, 0
            pool.tokens_refused_until = 0.0

    def _expire_rate(self, key_id: Hashable, pool: KeyPool, now: float) -> None:
        if pool.rate_tokens > 0:
            tokens, pool.rate_tokens = pool.rate_tokens, 0
            self._give_back_later(key_id, pool.limits, now, rate=tokens)

    def _return_all(self, key_id: Hashable, pool: KeyPool, now: float) -> None:
        rate, slots = pool.rate_tokens, pool.slots_held + pool.slots_unreturned
        tokens = pool.tokens_allowance
        pool.rate_tokens = pool.slots_held = pool.slots_unreturned = pool.tokens_allowance = 0
        if rate or slots or tokens:
            self._give_back_later(key_id, pool.limits, now, rate=rate, slots=slots, tokens=tokens)

    def _give_back_later(
        self, key_id: Hashable, limits: Limits, now: float, *, rate: int = 0, slots: int = 0, tokens: int = 0
    ) -> None:
        if key_id is None or self.store is None or not (rate or slots or tokens):
            return
        task = asyncio.get_running_loop().create_task(self._give_back(key_id, limits, now, rate, slots, tokens))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        pool = self._pools.get(key_id)
        if pool is not None:
            pool.returning.add(task)
            task.add_done_callback(pool.returning.discard)

    async def _give_back(
        self, key_id: Hashable, limits: Limits, now: float, rate: int, slots: int, tokens: int
    ) -> None:
        rate_per_hour, burst, _, _ = limits
        self.counters.returns += 1
        try:
            await self.store.give_back(  # type: ignore[union-attr]
                key_id,  # type: ignore[arg-type]
                now,
                utc_day_at(now),
                rate_per_second=(rate_per_hour or 0) / 3600.0,
                burst=burst or 0,
                rate=rate,
                slots=slots,
                tokens=tokens,
            )
        except DatabaseUnavailable as exc:
            # Rate tokens and allowances are simply lost (stricter); slots would stay held in the
            # ledger for good, so they are given back again once it answers.
            pool = self._pools.get(key_id)
            if pool is not None and key_id not in self._retired:
                pool.slots_unreturned += slots
            self.ledger_lost(exc)


_UNLIMITED = Admission(True, {})
