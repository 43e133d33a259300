"""Several fake Ollama nodes on real ports, each with its own models, that can die and come back."""

from __future__ import annotations

import asyncio
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from tests.support.cli_runner import REPO
from tests.support.fake_ollama import FAKE_STATE, FakeOllamaState, create_fake_ollama
from tests.support.polling import eventually
from tests.support.ports import free_port


class FakeNode:
    """One fake Ollama served by its own runner, on a port it keeps across stop() and start()."""

    def __init__(self, name: str, models: Sequence[str], *, loaded: Sequence[str] = ()) -> None:
        self.name = name
        self.app = create_fake_ollama(models=list(models))
        self.state.loaded.extend(loaded)
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> FakeOllamaState:
        return self.app[FAKE_STATE]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None, shutdown_timeout=0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runner = runner

    async def stop(self) -> None:
        """Dies: the port closes and open connections are cut, as when the process is killed."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.shutdown()
            await runner.cleanup()

    def served(self, path: str) -> int:
        return sum(1 for r in self.state.requests if r.path == path)


async def start_nodes(specs: dict[str, tuple[Sequence[str], Sequence[str]]]) -> list[FakeNode]:
    """{name: (models, loaded)} -> running nodes, in that order."""
    nodes = [FakeNode(name, models, loaded=loaded) for name, (models, loaded) in specs.items()]
    for node in nodes:
        await node.start()
    return nodes


def backends_file(directory: Path, nodes: Sequence[FakeNode | FakeNodeProcess], *, capacity: int = 4) -> Path:
    """An OLLAMA_BACKENDS file naming `nodes`."""
    text = "".join(
        f'[[backend]]\nname = "{node.name}"\nurl = "{node.url}"\ncapacity = {capacity}\n\n' for node in nodes
    )
    tomllib.loads(text)
    path = directory / "backends.toml"
    path.write_text(text)
    return path


class FakeNodeProcess:
    """A fake Ollama in its own process, killed with SIGKILL as a crashing node would be."""

    def __init__(self, name: str, models: Sequence[str]) -> None:
        self.name = name
        self.models = list(models)
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.fake_ollama", "--port", str(self.port),
            "--models", ",".join(self.models), cwd=REPO,
        )  # fmt: skip
        await eventually(self._listening, f"fake node {self.name} listening")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def _listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True
