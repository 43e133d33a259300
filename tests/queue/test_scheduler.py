"""The Virtual Token Counter on its own: order, weights, priority classes and lifting, simulated."""

from __future__ import annotations

import heapq

from proxy.queue.scheduler import FairScheduler, Waiter

NODE = "gpu1"
EVERYWHERE = frozenset({NODE})


def waiter(key: str, *, weight: float = 1.0, rank: int = 0, estimate: float = 0.0, nodes=EVERYWHERE) -> Waiter:
    return Waiter(key, rank, weight, nodes, estimate)


def simulate(arrivals, *, capacity: int, until: float, prompt: int = 10, completion: int = 10, per_token=0.1):
    """A node serving `capacity` requests at once, each `completion` tokens at `per_token` seconds a token.
    `arrivals`: (time, key, weight) of every request. Returns (tokens served per key, waits per key, idle)."""
    scheduler = FairScheduler()
    events = [(t, 0, i, "arrive", (key, weight)) for i, (t, key, weight) in enumerate(arrivals)]
    heapq.heapify(events)
    busy, served, waits, idle_while_waiting = 0, {}, {}, 0.0
    queued_at: dict[int, float] = {}
    now = 0.0
    sequence = len(events)

    def start(w: Waiter, at: float) -> None:
        nonlocal busy, sequence
        busy += 1
        waits.setdefault(w.key, []).append(at - queued_at[id(w)])
        sequence += 1
        heapq.heappush(events, (at + completion * per_token, 1, sequence, "done", w))

    while events and events[0][0] <= until:
        t, _, _, kind, item = heapq.heappop(events)
        if scheduler.size and busy < capacity:
            idle_while_waiting += (t - now) * (capacity - busy)
        now = t
        if kind == "arrive":
            key, weight = item
            w = waiter(key, weight=weight, estimate=scheduler.typical_cost(key, scheduler.cost(prompt, 0)))
            queued_at[id(w)] = t
            if busy < capacity:  # the fast path: a free slot, nobody can be waiting
                w.estimate = 0.0
                start(w, t)
            else:
                scheduler.push(w)
        else:
            busy -= 1
            scheduler.charge(item.key, item.rank, item.weight, prompt, completion, item.estimate)
            served[item.key] = served.get(item.key, 0) + prompt + completion
            nxt = scheduler.pop_for(NODE)
            if nxt is not None:
                start(nxt, t)
    return served, waits, idle_while_waiting


def test_backlogged_keys_weighted_one_to_three_are_served_tokens_one_to_three():
    arrivals = [(0.0, "a", 1.0)] * 400 + [(0.0, "b", 3.0)] * 400
    served, _, idle = simulate(arrivals, capacity=2, until=60.0)
    ratio = served["b"] / served["a"]
    assert 3 * 0.9 <= ratio <= 3 * 1.1, served
    assert idle == 0.0


def test_a_light_key_waits_at_most_one_service_time_behind_a_flood():
    service = 10 * 0.1  # ten completion tokens at 100 ms
    arrivals = [(0.0, "a", 1.0)] * 200 + [(0.5 + second, "b", 1.0) for second in range(40)]
    served, waits, idle = simulate(arrivals, capacity=2, until=45.0)
    assert len(waits["b"]) == 40
    assert max(waits["b"]) <= service + 1e-9, waits["b"]
    assert served["a"] > served["b"]  # A keeps the node busy the rest of the time
    assert idle == 0.0  # work-conserving: never a free slot while someone waits


def test_interactive_is_always_served_before_batch():
    scheduler = FairScheduler()
    scheduler.push(waiter("batch-key", rank=1))
    scheduler.push(waiter("batch-key", rank=1))
    scheduler.push(waiter("chat-key", rank=0, estimate=1e9))
    scheduler.push(waiter("chat-key", rank=0, estimate=1e9))
    assert [scheduler.pop_for(NODE).key for _ in range(4)] == ["chat-key", "chat-key", "batch-key", "batch-key"]


def test_a_key_back_from_idle_starts_at_the_smallest_waiting_counter():
    scheduler = FairScheduler()
    for _ in range(3):
        scheduler.push(waiter("a", estimate=100))
    scheduler.pop_for(NODE)  # a: 100
    scheduler.push(waiter("c", estimate=100))  # lifted to a's 100, not 0: c cannot bank its idle time
    assert scheduler.counter("c", 0) == 100
    assert scheduler.pop_for(NODE).key == "a"  # a tie: the older request first
    assert scheduler.pop_for(NODE).key == "c"


def test_charge_corrects_the_estimate_with_what_ollama_reported():
    scheduler = FairScheduler()
    scheduler.push(waiter("a", weight=2.0, estimate=10))
    scheduler.push(waiter("b", estimate=10))
    served = scheduler.pop_for(NODE)
    assert scheduler.counter("a", 0) == 5  # 10 / weight 2
    scheduler.charge("a", 0, 2.0, prompt_tokens=4, completion_tokens=3, estimate=served.estimate)
    assert scheduler.counter("a", 0) == (4 * 1 + 3 * 2) / 2
    assert scheduler.typical_cost("a", 0) == 10


def test_a_request_goes_only_where_it_may_run_and_leaves_when_removed():
    scheduler = FairScheduler()
    elsewhere = waiter("a", nodes=frozenset({"gpu2"}))
    here = waiter("b")
    scheduler.push(elsewhere)
    scheduler.push(here)
    assert scheduler.pop_for(NODE) is here
    assert scheduler.pop_for(NODE) is None
    assert scheduler.remove(elsewhere) and not scheduler.remove(elsewhere)
    assert scheduler.size == 0 and scheduler.waiting("a", 0) == 0
