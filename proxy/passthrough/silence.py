"""Ollama's read timeout, kept by one timer per process instead of one per answer or per chunk.

aiohttp's `sock_read` re-arms a loop timer on every chunk it reads (ResponseHandler._reschedule_timeout):
~3 µs a line of a stream, about as much as relaying the line costs us besides the system calls; and an
`asyncio.timeout` around the wait for an answer's head cost 2 to 3 % of all the gateway does for a
non-streamed chat (20 to 30 k instructions of ~900 k, tests/bench/instructions.py). Instead, every
wait on Ollama (the head of an answer, then each silence of its body) is a SilenceWatch in one set,
which a single timer sweeps every quarter of the limit; a watch is cut once that many quarters in a
row saw no byte. An answer that stays silent is cut between 1 and 1.25 times OLLAMA_READ_TIMEOUT after
the request left or its last byte came; one that keeps talking never is, nor one held back by a client
that reads slowly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHECKS_PER_LIMIT = 4


class Silences:
    """The watches of one event loop, swept every `limit / CHECKS_PER_LIMIT` seconds while there are any."""

    __slots__ = ("_step", "_watches", "_timer")

    def __init__(self, limit: float) -> None:
        if not limit > 0:
            raise ValueError("the read timeout must be greater than 0")
        self._step = limit / CHECKS_PER_LIMIT
        self._watches: set[SilenceWatch] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, cut: Callable[[], object]) -> SilenceWatch:
        """Start watching; `cut` runs (once) if nothing is heard for the limit. Stop the watch when done."""
        watch = SilenceWatch(self, cut)
        self._watches.add(watch)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._step, self._sweep)
        return watch

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watches.clear()

    def _sweep(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        for watch in list(self._watches):  # a cut watch leaves the set
            try:
                watch.check()
            except Exception as exc:  # one failing cut must not leave the other waits unwatched
                loop.call_exception_handler({"message": "cutting a silent answer failed", "exception": exc})
        if self._watches and self._timer is None:  # otherwise the next watch starts the timer again
            self._timer = loop.call_later(self._step, self._sweep)


class SilenceWatch:
    """One wait on Ollama: call `heard()` for each chunk read, set `writing` while the relay waits for
    the client to take a chunk (Ollama is held back then, not silent: aiohttp's sock_read also stops
    counting while reading is paused), and `stop()` when the wait is over, however it ends."""

    __slots__ = ("_silences", "_cut", "_heard", "_quiet_steps", "writing")

    def __init__(self, silences: Silences, cut: Callable[[], object]) -> None:
        self._silences = silences
        self._cut = cut
        self._heard = True  # from the start: a full limit before the first cut
        self._quiet_steps = 0
        self.writing = False

    def heard(self) -> None:
        self._heard = True

    def stop(self) -> None:
        self._silences._watches.discard(self)

    def check(self) -> None:
        """One sweep's look: cut after CHECKS_PER_LIMIT quiet sweeps in a row."""
        if self._heard or self.writing:
            self._heard, self._quiet_steps = False, 0
            return
        self._quiet_steps += 1
        if self._quiet_steps >= CHECKS_PER_LIMIT:
            self.stop()
            self._cut()
