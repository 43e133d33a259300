"""LoopBatchedHandler: the lines of a short while leave in one write, and none waits longer than that."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod

from proxy.observability.logging_setup import (
    PIPE_BUF,
    ClientErrorFilter,
    LoopBatchedHandler,
    setup_logging,
    whole_lines_within,
)


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def make_logger(name: str) -> tuple[logging.Logger, CountingStream]:
    stream = CountingStream()
    # Longer than the default: what "within the delay" asserts must not depend on a busy machine's pauses.
    handler = LoopBatchedHandler(stream, delay=0.5)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test_logging_setup.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


async def test_lines_of_a_short_while_leave_in_one_write_at_its_end():
    logger, stream = make_logger("batched")
    handler = logger.handlers[0]
    for n in range(3):
        logger.info("line %d", n)
        await asyncio.sleep(0)  # requests ending in different loop iterations share the write
    assert stream.getvalue() == ""  # still within the delay
    await asyncio.sleep(handler.delay * 2)
    assert stream.getvalue() == "INFO line 0\nINFO line 1\nINFO line 2\n"
    assert stream.writes == 1
    logger.info("next")
    await asyncio.sleep(handler.delay * 2)
    assert stream.getvalue().endswith("INFO next\n") and stream.writes == 2


async def test_a_burst_is_written_before_it_grows_large():
    logger, stream = make_logger("burst")
    handler = logger.handlers[0]
    for n in range(handler.MAX_PENDING):
        logger.info("line %d", n)
    assert stream.getvalue().count("\n") == handler.MAX_PENDING  # written at once, without waiting
    logger.info("after")
    await asyncio.sleep(handler.delay * 2)
    assert stream.getvalue().endswith("INFO after\n")


async def test_a_warning_goes_at_once_after_the_lines_before_it():
    logger, stream = make_logger("warning")
    logger.info("first")
    logger.warning("second")
    assert stream.getvalue() == "INFO first\nWARNING second\n"
    await asyncio.sleep(logger.handlers[0].delay * 2)
    assert stream.getvalue() == "INFO first\nWARNING second\n"


def test_off_the_loop_every_line_is_written_at_once():
    logger, stream = make_logger("no-loop")
    logger.info("from the CLI")
    assert stream.getvalue() == "INFO from the CLI\n"
    thread = threading.Thread(target=logger.info, args=("from a thread",))
    thread.start()
    thread.join()
    assert stream.getvalue().endswith("INFO from a thread\n")


def test_a_loop_that_ended_with_lines_pending_stops_no_line_after_it():
    logger, stream = make_logger("ended")

    async def serve_briefly() -> None:
        logger.info("last line of a run")  # its flush timer dies with the loop

    asyncio.run(serve_briefly())
    logger.info("from the CLI afterwards")  # off the loop: at once, after the line before it
    assert stream.getvalue() == "INFO last line of a run\nINFO from the CLI afterwards\n"

    async def next_run() -> None:
        logger.info("a line of the next loop")
        await asyncio.sleep(logger.handlers[0].delay * 2)

    asyncio.run(next_run())
    assert stream.getvalue().endswith("INFO a line of the next loop\n")


async def test_a_line_from_a_thread_is_written_at_once_while_the_loop_runs():
    logger, stream = make_logger("thread-while-loop")
    logger.info("on the loop")
    thread = threading.Thread(target=logger.info, args=("from a thread",))
    thread.start()
    thread.join()
    assert stream.getvalue() == "INFO on the loop\nINFO from a thread\n"


async def test_flush_writes_what_is_pending():
    logger, stream = make_logger("flush")
    logger.info("pending")
    logger.handlers[0].flush()  # logging.shutdown() at exit does this
    assert stream.getvalue() == "INFO pending\n"


def _server_record(level: int, exc: BaseException | None) -> logging.LogRecord:
    """A record as aiohttp.server's log_exception makes one."""
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord(
        "aiohttp.server", level, "web_protocol.py", 1, "Error handling request from %s", ("10.0.0.1",), exc_info
    )


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_malformed_request_is_one_info_line_without_traceback():
    logging.getLogger("aiohttp.server").setLevel(logging.INFO)
    try:
        record = _server_record(logging.ERROR, _raised(BadHttpMessage("Duplicate Content-Length")))
        assert ClientErrorFilter().filter(record) is True
    finally:
        logging.getLogger("aiohttp.server").setLevel(logging.NOTSET)
    assert (record.levelno, record.levelname) == (logging.INFO, "INFO")
    assert record.exc_info is None and record.exc_text is None
    assert record.getMessage() == ("Error handling request from 10.0.0.1: BadHttpMessage: Duplicate Content-Length")


def test_the_downgraded_line_is_dropped_when_info_is_not_shown():
    logging.getLogger("aiohttp.server").setLevel(logging.WARNING)
    try:
        record = _server_record(
            logging.ERROR, _raised(BadHttpMessage("Content-Length can't be present with Transfer-Encoding"))
        )
        assert ClientErrorFilter().filter(record) is False
    finally:
        logging.getLogger("aiohttp.server").setLevel(logging.NOTSET)


def test_real_failures_and_quieter_lines_are_left_alone():
    bug = _server_record(logging.ERROR, _raised(RuntimeError("a real bug")))
    assert ClientErrorFilter().filter(bug) is True
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
    probe = _server_record(logging.DEBUG, _raised(BadHttpMethod("\x16\x03\x01")))  # aiohttp's own DEBUG
    assert ClientErrorFilter().filter(probe) is True
    assert probe.levelno == logging.DEBUG and probe.exc_info is not None


def test_setup_logging_installs_the_filter_once():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", "text")
        setup_logging("INFO", "text")
        server = logging.getLogger("aiohttp.server")
        assert sum(isinstance(f, ClientErrorFilter) for f in server.filters) == 1
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_a_large_batch_leaves_in_writes_of_whole_lines_within_pipe_buf():
    # serve --workers share one stderr pipe: only writes of at most PIPE_BUF bytes are never interleaved.
    lines = [f"INFO {'é' if n % 7 == 0 else 'e'}{'x' * (30 + n % 150)}\n" for n in range(400)]
    chunks = list(whole_lines_within(lines, PIPE_BUF))
    assert "".join(chunks) == "".join(lines) and len(chunks) > 1
    assert all(len(c.encode()) <= PIPE_BUF and c.endswith("\n") for c in chunks)
    long_line = "x" * (PIPE_BUF * 2) + "\n"
    assert list(whole_lines_within(["a\n", long_line, "b\n"], PIPE_BUF)) == ["a\n", long_line, "b\n"]


async def test_the_handler_writes_a_large_batch_in_pipe_buf_pieces():
    logger, stream = make_logger("pipe-buf")
    for n in range(300):
        logger.info("line %d %s", n, "y" * 100)
    logger.handlers[0].flush()
    assert stream.writes > 1 and stream.getvalue().count("\n") == 300


async def test_a_line_utf8_cannot_encode_neither_fails_nor_loses_the_batch():
    logger, stream = make_logger("surrogate")
    for text in ("before", "a client's lone surrogate \ud800", "after"):
        logger.info(text)
    logger.handlers[0].flush()
    assert stream.getvalue().count("\n") == 3 and "after" in stream.getvalue()
    assert list(whole_lines_within(["\ud800" * 2000 + "\n"], PIPE_BUF)) == ["\ud800" * 2000 + "\n"]
