"""Running the real `python -m proxy` in a subprocess, as a user would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from proxy.settings import ENVIRONMENT

REPO = Path(__file__).resolve().parents[2]
# Variables that would make a run depend on the developer's own shell.
_GATEWAY_VARIABLES = frozenset(ENVIRONMENT)


def cli_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GATEWAY_VARIABLES}
    env.update(extra)
    return env


def run_cli(*args: str, env: Mapping[str, str], cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "--env-file", "/dev/null", *args],
        env=cli_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def start_serve(env: Mapping[str, str], *, until: str = "listening on") -> tuple[asyncio.subprocess.Process, str]:
    """`python -m proxy serve` in a subprocess, once its log (stderr) has said `until`: the process and
    what it logged so far. The caller keeps reading stderr, or the pipe fills and stalls the server."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "--env-file", "/dev/null", "serve",
        env=cli_env(env), cwd=REPO, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    output = await read_log_until(process, until)
    return process, output


async def read_log_until(process: asyncio.subprocess.Process, text: str, output: str = "") -> str:
    """Read the process's log lines until one holds `text`; fails if it exits first."""
    while text not in output:
        line = await asyncio.wait_for(process.stderr.readline(), 60)
        assert line, f"serve exited early:\n{output}"
        output += line.decode()
    return output
