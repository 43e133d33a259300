"""One timer for every wait on Ollama: a watch is cut after the read timeout of silence, never sooner, and
never while it hears bytes or waits on the client."""

from __future__ import annotations

import asyncio

import pytest

from proxy.passthrough.silence import Silences

LIMIT = 0.2


async def _watch_for(silences: Silences, seconds: float, *, hear_every: float | None = None, writing: bool = False):
    """Watch for `seconds` (hearing a byte every `hear_every`); return how long after the start the cut
    came, or None."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    cut: list[float] = []
    watch = silences.watch(lambda: cut.append(loop.time() - started))
    watch.writing = writing
    while loop.time() - started < seconds and not cut:
        await asyncio.sleep(hear_every or 0.01)
        if hear_every:
            watch.heard()
    watch.stop()
    return cut[0] if cut else None


async def test_a_silent_wait_is_cut_after_the_limit_and_once():
    silences = Silences(LIMIT)
    cut_after = await _watch_for(silences, 1.0)
    assert cut_after is not None and cut_after >= LIMIT
    assert await _watch_for(silences, 1.0) is not None  # the timer runs again for the next watch
    silences.close()


async def test_a_wait_that_keeps_hearing_bytes_is_never_cut():
    silences = Silences(LIMIT)
    assert await _watch_for(silences, 4 * LIMIT, hear_every=LIMIT / 3) is None
    silences.close()


async def test_a_wait_held_back_by_the_client_is_not_silence():
    silences = Silences(LIMIT)
    assert await _watch_for(silences, 4 * LIMIT, writing=True) is None
    silences.close()


async def test_waits_are_cut_each_on_its_own():
    silences = Silences(LIMIT)
    quiet, talking = await asyncio.gather(_watch_for(silences, 1.0), _watch_for(silences, 1.0, hear_every=LIMIT / 3))
    assert quiet is not None and talking is None
    silences.close()


async def test_a_stopped_watch_is_never_cut():
    silences = Silences(LIMIT)
    cut = []
    silences.watch(lambda: cut.append(1)).stop()
    await asyncio.sleep(2 * LIMIT)
    assert cut == []
    silences.close()


def test_a_limit_must_be_positive():
    with pytest.raises(ValueError):
        Silences(0)


async def test_a_cut_that_fails_is_reported_and_the_other_waits_are_still_cut():
    loop = asyncio.get_running_loop()
    reported = []
    loop.set_exception_handler(lambda _, context: reported.append(context["exception"]))
    silences = Silences(LIMIT)
    try:

        def failing_cut() -> None:
            raise RuntimeError("closing failed")

        failing = silences.watch(failing_cut)
        await asyncio.sleep(LIMIT / 4 * 1.5)  # a sweep ahead of the next watch: its cut comes first
        cut_after = await _watch_for(silences, 1.0)
        failing.stop()
    finally:
        loop.set_exception_handler(None)
        silences.close()
    assert cut_after is not None
    assert [type(exc) for exc in reported] == [RuntimeError]
