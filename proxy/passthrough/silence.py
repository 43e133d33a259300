"""Ollama's read timeout, kept with one timer per answer instead of one per chunk.

aiohttp's `sock_read` re-arms a loop timer on every chunk it reads (ResponseHandler._reschedule_timeout):
~3 µs a line of a stream, about as much as relaying the line costs us besides the system calls
(docs/benchmarks.md). The pass-through instead waits for an answer's headers under one asyncio
timeout, then relays its body under a SilenceWatch: a timer that fires every quarter of the limit
and cuts the answer once that many quarters in a row saw no byte. A stream that stays silent is cut
between 1 and 1.25 times OLLAMA_READ_TIMEOUT after its last byte; one that keeps talking never is, nor
one held back by a client that reads slowly.
"""

from __future__ import annotations

import asyncio

from aiohttp import ServerTimeoutError

from proxy.passthrough.upstream import Answer

CHECKS_PER_LIMIT = 4


class SilenceWatch:
    """Cuts `upstream` once it has sent nothing for `limit` seconds; call `heard()` for each chunk read, and
    set `writing` while the relay waits for the client to take a chunk.

    The cut is what aiohttp's own read timeout does: the body's reader fails with a ServerTimeoutError
    (an asyncio.TimeoutError), and the connection is closed.
    """

    __slots__ = ("_upstream", "_step", "_quiet_steps", "_heard", "_timer", "_loop", "writing")

    def __init__(self, upstream: Answer, limit: float) -> None:
        self._upstream = upstream
        self._step = limit / CHECKS_PER_LIMIT
        self._quiet_steps = 0
        self._heard = True
        # Set by the relay while it waits on the client: Ollama is not silent then, it is held back
        # (aiohttp's sock_read also stops counting while reading is paused).
        self.writing = False
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(self._step, self._check)

    def heard(self) -> None:
        self._heard = True

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        if self._heard or self.writing:
            self._heard, self._quiet_steps = False, 0
        else:
            self._quiet_steps += 1
            if self._quiet_steps >= CHECKS_PER_LIMIT:
                self._timer = None
                self._upstream.content.set_exception(ServerTimeoutError("Ollama sent nothing within the read timeout"))
                self._upstream.close()
                return
        self._timer = self._loop.call_later(self._step, self._check)
