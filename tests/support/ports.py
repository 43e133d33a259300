"""Loopback ports for servers that bind a number given beforehand: in another process, or again after a restart.

The port the kernel picks for `bind(("127.0.0.1", 0))` comes from the ephemeral range
(`net.ipv4.ip_local_port_range`), the same range it draws the source port of every outgoing connection from.
Between the probe closing and the server binding, any client on the machine may take it: a `serve` once
failed with "port 51001 is in use" that way, while the test's own connections came and went. A port below
that range is only ever taken by a program that asks for it by number, so that is where these come from.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # below this live the well-known and registered services a developer's machine runs
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on now and the kernel will not hand to a client socket."""
    candidates = range(_LOWEST, _ephemeral_start())
    for _ in range(200):
        port = random.choice(candidates)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)  # a second call before the first server binds must not get it again
            return port
    raise RuntimeError(f"no free loopback port between {candidates.start} and {candidates.stop - 1}")


def _ephemeral_start() -> int:
    try:
        start = int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        start = 32_768  # Linux's default, where /proc is not there to ask
    return max(start, _LOWEST + 1_000)


def _bindable(port: int) -> bool:
    # Without SO_REUSEADDR, as strict as it gets: a port with connections lingering in TIME_WAIT is passed over.
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
