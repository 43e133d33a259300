"""Slots on each Ollama node this process may use, leased from the limit ledger (sql/007_node_slots.sql),
so that a node's capacity holds over every gateway process and host.

Leased like a key's concurrency slots (limiter.py): alone, a process leases a node's whole capacity
once and keeps it, so no request costs a query; with others, a capacity small next to the number of
processes is leased one slot at a time and given back at once (exact), a larger one in batches
(limits/lease_size.py) of which a spare lease's worth is kept, and idle spares go back after
LEASE_SECONDS. While PostgreSQL is away each process uses its own share of every node
(process_share), so the capacity never multiplies; node slots never refuse for an outage.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

from proxy.db.errors import DatabaseUnavailable
from proxy.ledger.limiter import LEDGER, SharedLimiter
from proxy.ledger.store import HolderGone
from proxy.limits.lease_size import EXACT_UNITS_PER_PROCESS, LEASE_SECONDS, lease_size, process_share


@dataclass(slots=True)
class _NodeLease:
    capacity: int
    held: int = 0  # leased from the ledger
    used: int = 0  # by requests under way here
    lease: int = 0  # size of the last lease
    shared: int = 0  # in use over every process after the last lease
    idle_since: float = 0.0
    unreturned: int = 0  # given back while the ledger was away: retried
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class NodeSlots:
    """try_take() and release() are synchronous; lease() asks the ledger, one lease at a time per node."""

    def __init__(self, limiter: SharedLimiter, capacities: dict[str, int]) -> None:
        self._limiter = limiter
        self._nodes = {name: _NodeLease(capacity) for name, capacity in capacities.items()}
        self._background: set[asyncio.Task[None]] = set()
        self.leases = 0  # ledger calls, for /metrics and tests

    def try_take(self, name: str) -> bool:
        node = self._nodes[name]
        if node.used < self._usable(node):
            node.used += 1
            return True
        return False

    def force_take(self, name: str) -> None:
        """A slot past what this process holds (a failover that may not wait); release() as any other."""
        self._nodes[name].used += 1

    def may_lease(self, name: str) -> bool:
        """Could asking the ledger bring this process another slot on the node?"""
        node = self._nodes[name]
        return self._shared() and node.held < node.capacity

    async def lease(self, name: str) -> bool:
        """Lease more slots of the node; True when this process then has a free one."""
        node = self._nodes[name]
        async with node.lock:
            if node.used < self._usable(node) or not self.may_lease(name):
                return node.used < self._usable(node)
            want = self._want(node)
            self.leases += 1
            store = self._limiter.store
            try:
                try:
                    granted, in_use = await store.lease_node(name, node.capacity, want)  # type: ignore[union-attr]
                except HolderGone:
                    await self._limiter.rejoin()
                    await self.rejoin()
                    granted, in_use = await store.lease_node(name, node.capacity, want)  # type: ignore[union-attr]
            except DatabaseUnavailable as exc:
                self._limiter.ledger_lost(exc)
                return node.used < self._usable(node)
            node.held += granted
            node.lease, node.shared = want, in_use
            return node.used < self._usable(node)

    def release(self, name: str) -> None:
        node = self._nodes[name]
        node.used = max(0, node.used - 1)
        if node.used == 0:
            node.idle_since = time.monotonic()
        if self._shared():
            spare = node.held - node.used - self._keep(node)
            if spare > 0:
                self._give_back(name, node, spare)

    def expire(self) -> None:
        """Every half second: spares idle past LEASE_SECONDS go back (never when this process is alone),
        and so do spares beyond what a process keeps, once another process has come."""
        if not self._shared():
            return
        now = time.monotonic()
        for name, node in self._nodes.items():
            if node.unreturned:
                slots, node.unreturned = node.unreturned, 0
                self._give_back(name, node, slots, held=False)
            keep = 0 if now - node.idle_since >= LEASE_SECONDS and self._limiter.processes > 1 else self._keep(node)
            spare = node.held - node.used - keep
            if spare > 0:
                self._give_back(name, node, spare)

    async def rejoin(self) -> None:
        """A sweep took this process for dead: the slots its requests use are held again, spares are gone."""
        for node in self._nodes.values():
            node.held, node.unreturned = node.used, 0
        await self._limiter.store.restore_node_slots(self.in_use())  # type: ignore[union-attr]

    async def give_back_all(self) -> None:
        for name, node in self._nodes.items():
            if node.held or node.unreturned:
                self._give_back(name, node, node.held + node.unreturned, held=False)
                node.held = node.unreturned = 0
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def in_use(self) -> dict[str, int]:
        return {name: node.used for name, node in self._nodes.items() if node.used}

    def state(self, name: str) -> tuple[int, int]:
        """(slots used here, slots held here) for /api/backends."""
        node = self._nodes[name]
        return node.used, node.held if self._shared() else self._usable(node)

    # -- inside ------------------------------------------------------------------------------------

    def _shared(self) -> bool:
        """Leasing from the ledger (else: this process's share of each node, or the whole of it without a ledger)."""
        return self._limiter.store is not None and self._limiter.mode == LEDGER

    def _usable(self, node: _NodeLease) -> int:
        if self._shared():
            return node.held
        if self._limiter.store is None:
            return node.capacity
        return process_share(node.capacity, self._limiter.processes, self._limiter.index)

    def _want(self, node: _NodeLease) -> int:
        processes = self._limiter.processes
        if processes <= 1:
            return node.capacity - node.held  # alone: the whole node, kept while alone
        level = node.capacity - node.shared if node.lease else node.capacity
        return lease_size(node.capacity, processes, previous=node.lease, spent_within_lease=True, level=level)

    def _keep(self, node: _NodeLease) -> int:
        processes = self._limiter.processes
        if processes <= 1:
            return node.capacity
        if node.capacity < EXACT_UNITS_PER_PROCESS * processes:
            return 0  # exact: a freed slot goes back at once, another process may be waiting for it
        return node.lease

    def _give_back(self, name: str, node: _NodeLease, slots: int, *, held: bool = True) -> None:
        if held:
            node.held -= slots
        task = asyncio.get_running_loop().create_task(self._return(name, node, slots))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _return(self, name: str, node: _NodeLease, slots: int) -> None:
        try:
            await self._limiter.store.give_back_node(name, slots)  # type: ignore[union-attr]
        except DatabaseUnavailable as exc:
            node.unreturned += slots  # else held in the ledger for good (until this process dies)
            self._limiter.ledger_lost(exc)


NODE_SLOTS = web.AppKey("node_slots", NodeSlots)
