"""Starting, watching and stopping the benchmark's processes: ports, CPU seconds, resident memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Service:
    """A process serving on a loopback port; its children (nginx workers, gateway workers) count too."""

    name: str
    port: int
    process: subprocess.Popen
    log: Path
    _ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self._ps = psutil.Process(self.process.pid)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [self._ps, *self._ps.children(recursive=True)]
        return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss(self) -> int:
        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def pids(self) -> list[int]:
        return [p.pid for p in self._tree()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start(name: str, argv: list[str], tmp: Path, port: int, env: dict[str, str] | None = None) -> Service:
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})}
        )
    return Service(name, port, process, log)


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


async def wait_listening(service: Service, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with {service.process.returncode}:\n"
                + service.log.read_text(errors="replace")[-3000:]
            )
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", service.port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{service.name} did not listen on {service.port} within {timeout:g}s")


class PeakRss:
    """Samples a service's resident memory in the background; `peak` is the most seen."""

    def __init__(self, service: Service, every: float = 0.05) -> None:
        self.service, self.every, self.peak = service, every, 0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, await asyncio.to_thread(self.service.rss))
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
