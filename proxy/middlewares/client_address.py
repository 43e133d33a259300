"""The client's address: the socket peer's, or the one a trusted proxy in front of the gateway saw.

SECURITY: any client can send X-Forwarded-For, which is why aiohttp ignores it
(https://docs.aiohttp.org/en/stable/web_advanced.html#deploying-behind-a-proxy). The headers count
only when the peer itself is a trusted proxy, and then only the hops that trusted proxies appended —
the same rule as nginx's `real_ip_recursive on`.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from proxy.settings import Network


def client_address(
    peer: str | None, *, forwarded_for: str | None, real_ip: str | None, trusted: Sequence[Network]
) -> str | None:
    """The address to record for a request whose socket peer is `peer`.

    - No trusted proxies, or a peer that is not one: the peer, whatever the headers say.
    - X-Forwarded-For: walk it from the right past trusted proxies; the first hop that is not
      one is the client. Each proxy appends what it saw, so that hop is the last one a client
      could not forge; anything left of it is the client's own say. All hops trusted: the
      left-most. A malformed hop stops the walk at the last trusted address (never a guess).
    - No X-Forwarded-For: X-Real-IP if it is one address, else the peer.
    """
    if not trusted or not _is_trusted(_parse(peer), trusted):
        return peer
    if forwarded_for:
        found = peer
        for hop in reversed(forwarded_for.split(",")):
            address = _parse(hop.strip())
            if address is None:
                break
            found = str(address)
            if not _is_trusted(address, trusted):
                break
        return found
    address = _parse(real_ip.strip()) if real_ip else None
    return str(address) if address is not None else peer


def _parse(value: str | None) -> IPv4Address | IPv6Address | None:
    if not value:
        return None
    try:
        address = ip_address(value)
    except ValueError:  # a port, brackets, a name, "unknown", a list: not an address
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; trusted networks say a.b.c.d.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPv4Address | IPv6Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)
