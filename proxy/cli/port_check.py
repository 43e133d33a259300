"""Whether `serve` can listen where it was told, found out before it starts anything.

Binding fails only after the database is up, migrations ran and a first admin key was printed, and
then as asyncio's "error while attempting to bind": a try-bind first names the setting to change.
"""

from __future__ import annotations

import errno
import socket


class PortUnavailable(Exception):
    """The gateway cannot listen on its host and port; the message is one line for the user."""


def ensure_port_free(host: str, port: int) -> None:
    """Bind each address of `host` as asyncio's create_server will, and let go at once."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailable(
            f"the address to listen on, {host!r} (GATEWAY_HOST / --host), could not be resolved: {exc.strerror}"
        ) from None
    bound = 0
    for family, kind, proto, _, address in dict.fromkeys(addresses):
        with socket.socket(family, kind, proto) as sock:
            # The options asyncio's create_server sets on Unix (CPython Lib/asyncio/base_events.py).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:  # asyncio skips these too (bpo-30945)
                    continue
                raise PortUnavailable(_explain(exc, host, port)) from None
            bound += 1
    if not bound:
        raise PortUnavailable(f"{host} is not an address of this machine (GATEWAY_HOST / --host)")


def _explain(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is in use (GATEWAY_PORT / --port): stop what listens there or choose another port"
        )
    if exc.errno == errno.EACCES:
        return (
            f"port {port} on {host} needs privileges (GATEWAY_PORT / --port): "
            "use a port from 1024 up, behind a proxy for port 80"
        )
    return f"cannot listen on port {port} on {host} (GATEWAY_HOST / GATEWAY_PORT): {exc.strerror}"
