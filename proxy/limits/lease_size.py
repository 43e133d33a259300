"""How much of a shared limit one process leases at a time, and its share when the ledger is away.

A process leases rate tokens and concurrency slots from the limit ledger in batches and spends them
locally, so that a busy key does not cost a database round trip per request. The batch grows with the
process's demand (doubling while a lease is spent within its lifetime, halving when it is not, like a
congestion window) and is capped at a fraction of the limit that shrinks as the shared bucket empties:
25 %, then 10 % below half full, then 5 % below a fifth (TensorZero's pool borrows the same way:
https://github.com/tensorzero/tensorzero, tensorzero-core/src/rate_limiting/pool.rs). When the limit is
small next to the number of processes, every lease is one unit, so every admission is exact.
"""

from __future__ import annotations

# A limit below this many units per live process is leased one unit at a time: a batch of even two
# could strand a real share of it in a process that then goes idle.
EXACT_UNITS_PER_PROCESS = 4
# Seconds a lease lives: rate tokens not spent by then go back to the ledger. It is the T in the
# bound docs/operations.md states: in any τ seconds a key is admitted at most burst + rate·(τ + T).
LEASE_SECONDS = 2.0


def lease_size(limit: int, processes: int, *, previous: int, spent_within_lease: bool, level: float) -> int:
    """Units to ask for in the next lease.

    `previous`: the size of this process's last lease for the key (0 for none yet).
    `spent_within_lease`: whether that lease was used up before it expired (demand at least that high).
    `level`: what the shared bucket held at the last lease (the limit itself when unknown).
    """
    if limit < EXACT_UNITS_PER_PROCESS * max(1, processes):
        return 1
    if previous <= 0:
        wanted = 1
    elif spent_within_lease:
        wanted = previous * 2
    else:
        wanted = max(1, previous // 2)
    if level > limit / 2:
        cap = limit // 4
    elif level > limit / 5:
        cap = limit // 10
    else:
        cap = limit // 20
    # Never more than a quarter of this process's equal share either: what all processes hold unspent
    # (stranded, if they go idle) stays under a quarter of the limit, and no process starves its peers.
    cap = min(cap, limit // (EXACT_UNITS_PER_PROCESS * max(1, processes)))
    return max(1, min(wanted, cap))


def process_share(limit: int, processes: int, index: int) -> int:
    """This process's whole-unit share of `limit` among `processes`, the `index`-th of them (0-based).

    The shares add up to exactly `limit` (the first `limit % processes` get one more), so a limit
    split while the ledger is away never multiplies. A share can be 0: then that process refuses.
    """
    processes = max(1, processes)
    return limit // processes + (1 if index % processes < limit % processes else 0)
