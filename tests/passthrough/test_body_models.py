"""BodyParser: small bodies inline, large ones in one worker process that is restarted if it dies."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from proxy.errors import GatewayError
from proxy.passthrough.body_models import BodyParser

LARGE = b'{"model": "llama3.2", "MODEL": "qwen3", "pad": "' + b"x" * 4096 + b'"}'


def _worker() -> multiprocessing.Process:
    (worker,) = multiprocessing.active_children()
    return worker


async def test_large_bodies_go_to_one_worker_that_stops_on_close():
    parser = BodyParser(inline_limit=1024)
    try:
        assert await parser.json_models(b'{"Model": "a"}') == ["a"]
        assert not multiprocessing.active_children()  # small bodies never start it
        assert await parser.json_models(LARGE) == ["qwen3", "llama3.2"]  # the one Go keeps first
        worker = _worker()
        with pytest.raises(GatewayError) as refused:
            await parser.json_models(b"[" * 4096)
        assert refused.value.status == 400
    finally:
        parser.close()
    worker.join(10)
    assert not worker.is_alive()


async def test_a_dead_worker_is_a_503_and_the_next_large_body_starts_another():
    parser = BodyParser(inline_limit=1024)
    try:
        await parser.json_models(LARGE)
        worker = _worker()
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        with pytest.raises(GatewayError) as failed:
            await parser.json_models(LARGE)
        assert failed.value.status == 503
        assert await parser.json_models(LARGE) == ["qwen3", "llama3.2"]  # the one Go keeps first
    finally:
        parser.close()
