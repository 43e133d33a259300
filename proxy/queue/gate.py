"""The fair queue on the event loop: a slot on a node for each inference request, or a place in line.

A request takes a free slot on its best node at once, synchronously, with no allocation beyond the
Slot (the fast path). When every node with its model is full, it waits: the scheduler decides who
gets each slot as it frees (a released slot is handed straight to the next waiter, so a node is never
idle while someone waits), and, with several gateway processes, a lease pump asks the limit ledger
for slots other processes gave back. A wait ends with a slot, with 429 (the key's max_queued
requests already wait), 503 after QUEUE_TIMEOUT, or at once when the client leaves (its handler is
cancelled: it leaves the line and nothing is sent upstream).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from aiohttp import web

from proxy.backends.node import Node
from proxy.backends.registry import BACKENDS
from proxy.errors import GatewayError
from proxy.keys.format import PRIORITIES, KeyRecord
from proxy.ledger.context import LIMITER
from proxy.ledger.node_slots import NODE_SLOTS, NodeSlots
from proxy.queue.scheduler import FairScheduler, Waiter
from proxy.state import SETTINGS

# How often a process with waiters asks the ledger for a slot another process gave back.
LEASE_POLL_SECONDS = 0.05
# Whole seconds a client is told to wait: behind its own full line (429), after the deadline (503).
FULL_RETRY_AFTER = 1
TIMEOUT_RETRY_AFTER = 5
_RANKS = {name: rank for rank, name in enumerate(PRIORITIES)}


class QueueNote(Protocol):
    """Where a request's wait is written, however the wait ended (the pass-through's Forwarded)."""

    queue_ms: float | None


class Slot:
    """One request's place on a node, from the moment it is granted until release()."""

    __slots__ = ("node", "key", "rank", "weight", "estimate")

    def __init__(self, node: Node, key: Hashable, rank: int, weight: float, estimate: float = 0.0) -> None:
        self.node = node
        self.key = key
        self.rank = rank
        self.weight = weight
        self.estimate = estimate  # charged to the key's counter when served from the line

    def order(self, nodes: list[Node]) -> list[Node]:
        """The candidates with the slot's node first (others only for failover, each with a slot of its own)."""
        return [self.node, *(node for node in nodes if node is not self.node)]


@dataclass(slots=True)
class _Ticket:
    future: asyncio.Future[Node]
    nodes: Sequence[Node]
    model: str
    enqueued: float = field(default_factory=time.monotonic)


class FairQueue:
    def __init__(
        self,
        nodes: Sequence[Node],
        slots: NodeSlots,
        scheduler: FairScheduler,
        *,
        timeout: float,
    ) -> None:
        self.active = any(node.config.capacity_enforced for node in nodes)
        self._slots = slots
        self.scheduler = scheduler
        self.timeout = timeout
        self._tickets: dict[Waiter, _Ticket] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self.timeouts = 0  # 503 after QUEUE_TIMEOUT
        self.full = 0  # 429: the key's line was full
        self.left = 0  # the client left while waiting

    # -- the fast path -------------------------------------------------------------------------------

    def take(self, nodes: Sequence[Node], key: KeyRecord | None) -> Slot | None:
        """A free slot on the first candidate that has one, or None: the request must wait() (which also
        leases, when a better node has slots the ledger could lease: routing's order comes first)."""
        for node in nodes:
            if self._slots.try_take(node.name):
                if key is None:
                    return Slot(node, None, 0, 1.0)
                return Slot(node, key.id, _RANKS.get(key.priority, 0), key.weight)
            if self._slots.may_lease(node.name):
                return None
        return None

    def take_on(self, slot: Slot, node: Node) -> bool:
        """Failover before the first byte: the slot moves to `node`, over its capacity if it has no free
        one. The request already waited its turn, and a node that fails must cost the client nothing
        (docs/backends.md); the excess is bounded by the requests moved off failing nodes meanwhile."""
        if not self._slots.try_take(node.name):
            self._slots.force_take(node.name)
        self._free(slot.node)
        slot.node = node
        return True

    def release(self, slot: Slot, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """The answer is complete (or failed): charge the key what Ollama reported, pass the slot on."""
        if slot.key is not None and (prompt_tokens or completion_tokens or slot.estimate):
            self.scheduler.charge(
                slot.key, slot.rank, slot.weight, prompt_tokens or 0, completion_tokens or 0, slot.estimate
            )
        self._free(slot.node)

    # -- waiting -------------------------------------------------------------------------------------

    async def wait(
        self, nodes: Sequence[Node], key: KeyRecord | None, model: str, prompt_bytes: int, note: QueueNote
    ) -> Slot:
        """A slot once one frees for this request's turn; GatewayError 429 or 503 otherwise. How long it
        waited goes into `note.queue_ms` (the usage log's column) on every way out, the client leaving too."""
        key_id: Hashable = key.id if key is not None else None
        rank = _RANKS.get(key.priority, 0) if key is not None else 0
        weight = key.weight if key is not None else 1.0
        slot = await self._lease_now(nodes, key_id, rank, weight)
        if slot is not None:
            return slot
        max_queued = key.max_queued if key is not None else 0
        if self.scheduler.waiting(key_id, rank) >= max_queued:
            self.full += 1
            raise GatewayError(
                429,
                f"every Ollama node that serves model '{model}' is busy and this key already has "
                f"{max_queued} request{'' if max_queued == 1 else 's'} waiting (its max_queued); retry later",
                {"Retry-After": str(FULL_RETRY_AFTER)},
            )
        estimate = self.scheduler.typical_cost(key_id, self.scheduler.cost(prompt_bytes // 4, 0))
        waiter = Waiter(key_id, rank, weight, frozenset(node.name for node in nodes), estimate)
        ticket = self._tickets[waiter] = _Ticket(asyncio.get_running_loop().create_future(), nodes, model)
        self.scheduler.push(waiter)
        for node in nodes:
            self._pump(node)
        try:
            async with asyncio.timeout(self.timeout):
                node = await ticket.future
        except TimeoutError:
            node = self._granted_anyway(waiter, ticket)
            if node is None:
                self.timeouts += 1
                raise GatewayError(
                    503,
                    f"no Ollama node that serves model '{model}' had a free slot within {self.timeout:g} s "
                    "(QUEUE_TIMEOUT); the nodes are busy, retry later",
                    {"Retry-After": str(TIMEOUT_RETRY_AFTER)},
                ) from None
        except asyncio.CancelledError:
            node = self._granted_anyway(waiter, ticket)
            if node is not None:  # granted as the client left: the slot goes to the next in line
                self._free(node)
            self.left += 1
            raise
        finally:
            del self._tickets[waiter]
            note.queue_ms = (time.monotonic() - ticket.enqueued) * 1000
        return Slot(node, key_id, rank, weight, waiter.estimate)

    def waiting(self) -> list[tuple[str, UUID | None, float]]:
        """(model, key id, seconds waited so far) of every request in line: for /metrics and /api/backends."""
        now = time.monotonic()
        return [(t.model, w.key, now - t.enqueued) for w, t in self._tickets.items()]  # type: ignore[misc]

    def waiting_for(self, node: Node) -> int:
        return sum(1 for ticket in self._tickets.values() if node in ticket.nodes and not ticket.future.done())

    def slots(self, node: Node) -> tuple[int, int]:
        """(in use by this process, held by it) on the node."""
        return self._slots.state(node.name)

    async def close(self) -> None:
        for task in self._pumps.values():
            task.cancel()
        await asyncio.gather(*self._pumps.values(), return_exceptions=True)

    # -- inside --------------------------------------------------------------------------------------

    def _granted_anyway(self, waiter: Waiter, ticket: _Ticket) -> Node | None:
        """The waiter's node when it was granted a slot just as its wait ended; else it leaves the line."""
        if self.scheduler.remove(waiter):
            return None
        future = ticket.future
        if future.done() and not future.cancelled():
            return future.result()
        return None

    async def _lease_now(self, nodes: Sequence[Node], key: Hashable, rank: int, weight: float) -> Slot | None:
        """Before waiting, when nobody waits for these nodes: a slot the ledger can lease at once."""
        for node in nodes:
            if self._slots.try_take(node.name):
                return Slot(node, key, rank, weight)
            if self._slots.may_lease(node.name) and not self.waiting_for(node) and await self._slots.lease(node.name):
                if self._slots.try_take(node.name):
                    return Slot(node, key, rank, weight)
        return None

    def _free(self, node: Node) -> None:
        """A slot on `node` is free: to the next waiter that may use it, else back to the node's pool."""
        if not self._hand_over(node):
            self._slots.release(node.name)

    def _hand_over(self, node: Node) -> bool:
        """Give a slot this process holds on `node` to the next waiter for it; False when nobody waits."""
        while True:
            waiter = self.scheduler.pop_for(node.name)
            if waiter is None:
                return False
            ticket = self._tickets.get(waiter)
            if ticket is not None and not ticket.future.done():
                ticket.future.set_result(node)
                return True

    def _pump(self, node: Node) -> None:
        """With several processes: lease slots others gave back, while anyone here waits for the node."""
        name = node.name
        if name in self._pumps or not self._slots.may_lease(name):
            return
        task = asyncio.get_running_loop().create_task(self._run_pump(node))
        self._pumps[name] = task
        task.add_done_callback(lambda _: self._pumps.pop(name, None))

    async def _run_pump(self, node: Node) -> None:
        name = node.name
        while self.waiting_for(node) and self._slots.may_lease(name):
            if await self._slots.lease(name):
                while self._slots.try_take(name):
                    if not self._hand_over(node):
                        self._slots.release(name)
                        break
            await asyncio.sleep(LEASE_POLL_SECONDS)


def create_fair_queue(app: web.Application) -> FairQueue:
    """The queue over the app's nodes, their slots leased through the app's limit ledger."""
    settings, nodes = app[SETTINGS], app[BACKENDS].nodes
    slots = app[NODE_SLOTS] = NodeSlots(app[LIMITER], {node.name: node.config.capacity for node in nodes})
    scheduler = FairScheduler(input_weight=settings.queue_input_weight, output_weight=settings.queue_output_weight)
    return FairQueue(nodes, slots, scheduler, timeout=settings.queue_timeout)


async def close_fair_queue(app: web.Application) -> None:
    await app[FAIR_QUEUE].close()


FAIR_QUEUE = web.AppKey("fair_queue", FairQueue)
