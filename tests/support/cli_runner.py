"""Running the real `python -m proxy` in a subprocess, as a user would."""

from __future__ import annotations

import os
import socket
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
