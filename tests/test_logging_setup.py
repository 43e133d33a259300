"""LoopBatchedHandler: the lines of one loop iteration leave in one write, and none waits past it."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from proxy.logging_setup import LoopBatchedHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def make_logger(name: str) -> tuple[logging.Logger, CountingStream]:
    stream = CountingStream()
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test_logging_setup.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


async def test_lines_of_one_iteration_leave_in_one_write_at_its_end():
    logger, stream = make_logger("batched")
    for n in range(3):
        logger.info("line %d", n)
    assert stream.getvalue() == ""  # still this iteration
    await asyncio.sleep(0)
    assert stream.getvalue() == "INFO line 0\nINFO line 1\nINFO line 2\n"
    assert stream.writes == 1
    logger.info("next")
    await asyncio.sleep(0)
    assert stream.getvalue().endswith("INFO next\n") and stream.writes == 2


async def test_a_warning_goes_at_once_after_the_lines_before_it():
    logger, stream = make_logger("warning")
    logger.info("first")
    logger.warning("second")
    assert stream.getvalue() == "INFO first\nWARNING second\n"
    await asyncio.sleep(0)
    assert stream.getvalue() == "INFO first\nWARNING second\n"


def test_off_the_loop_every_line_is_written_at_once():
    logger, stream = make_logger("no-loop")
    logger.info("from the CLI")
    assert stream.getvalue() == "INFO from the CLI\n"
    thread = threading.Thread(target=logger.info, args=("from a thread",))
    thread.start()
    thread.join()
    assert stream.getvalue().endswith("INFO from a thread\n")


async def test_flush_writes_what_is_pending():
    logger, stream = make_logger("flush")
    logger.info("pending")
    logger.handlers[0].flush()  # logging.shutdown() at exit does this
    assert stream.getvalue() == "INFO pending\n"
