"""µs the fair queue adds to a request that finds a free node slot (take + release, the key charged);
run: PYTHONPATH=. python -m tests.bench.bench_fair_queue"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime

from yarl import URL

from proxy.backends.config import NodeConfig
from proxy.backends.node import Node
from proxy.keys.format import KeyRecord
from proxy.ledger.limiter import SharedLimiter
from proxy.ledger.node_slots import NodeSlots
from proxy.queue.gate import FairQueue
from proxy.queue.scheduler import FairScheduler

ROUNDS = 7
REQUESTS = 200_000


def main() -> None:
    node = Node(NodeConfig("gpu1", URL("http://127.0.0.1:11434"), capacity=1000, capacity_enforced=True))
    queue = FairQueue([node], NodeSlots(SharedLimiter(None), {"gpu1": 1000}), FairScheduler(), timeout=60)
    now = datetime.now(UTC)
    key = KeyRecord(uuid.uuid4(), "ogw_", "k", "user", 1000, None, True, None, now, None)
    nodes = [node]
    per_request = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(REQUESTS):
            slot = queue.take(nodes, key)
            nodes2 = slot.order(nodes)  # noqa: F841 - what the handler does with it
            queue.release(slot, 26, 9)
        per_request.append((time.perf_counter() - start) / REQUESTS * 1e6)
    print(f"fast path (free slot): {statistics.median(per_request):.2f} µs per request (median of {ROUNDS} rounds)")


if __name__ == "__main__":
    main()
