"""Which address is the client's: forwarded headers count only from trusted proxies, never forged."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from proxy.middlewares.client_address import client_address

NGINX = "10.0.0.5"
TRUSTED = (ip_network("10.0.0.0/24"), ip_network("::1"))

CASES = [
    # (peer, X-Forwarded-For, X-Real-IP, expected, why)
    ("203.0.113.9", "6.6.6.6", "6.6.6.6", "203.0.113.9", "an untrusted peer's headers are ignored"),
    (NGINX, None, None, NGINX, "a trusted peer without headers is the client"),
    (NGINX, "198.51.100.7", None, "198.51.100.7", "nginx appended what it saw"),
    (NGINX, "6.6.6.6, 198.51.100.7", None, "198.51.100.7", "a forged hop left of nginx's is ignored"),
    (NGINX, "6.6.6.6,198.51.100.7", None, "198.51.100.7", "no space after the comma"),
    (NGINX, "6.6.6.6, 198.51.100.7, 10.0.0.9", None, "198.51.100.7", "trusted hops are walked past"),
    (NGINX, "10.0.0.8, 10.0.0.9", None, "10.0.0.8", "all hops trusted: the left-most"),
    (NGINX, "6.6.6.6, garbage, 10.0.0.9", None, "10.0.0.9", "a malformed hop stops at the last trusted"),
    (NGINX, "6.6.6.6, unknown", None, NGINX, "a malformed last hop: the peer"),
    (NGINX, "198.51.100.7:5555", None, NGINX, "a port is not an address"),
    (NGINX, "6.6.6.6, ", None, NGINX, "an empty last hop: the peer"),
    (NGINX, "2001:db8::7", None, "2001:db8::7", "IPv6 hop"),
    (NGINX, "2001:DB8:0::7", None, "2001:db8::7", "recorded in canonical form"),
    (NGINX, None, "198.51.100.7", "198.51.100.7", "X-Real-IP when there is no X-Forwarded-For"),
    (NGINX, "", "198.51.100.7", "198.51.100.7", "an empty X-Forwarded-For counts as absent"),
    (NGINX, "198.51.100.8", "198.51.100.7", "198.51.100.8", "X-Forwarded-For wins over X-Real-IP"),
    (NGINX, None, "1.1.1.1,2.2.2.2", NGINX, "X-Real-IP twice: the peer"),
    (NGINX, None, "not-an-ip", NGINX, "a malformed X-Real-IP: the peer"),
    ("::ffff:10.0.0.5", "198.51.100.7", None, "198.51.100.7", "an IPv4-mapped peer is matched as IPv4"),
    ("::1", "198.51.100.7", None, "198.51.100.7", "an IPv6 trusted peer"),
    (None, "198.51.100.7", None, None, "no peer (unix socket): nothing to trust"),
    ("unix-socket", "198.51.100.7", None, "unix-socket", "a peer that is no address is never trusted"),
]


@pytest.mark.parametrize("peer, forwarded_for, real_ip, expected, why", CASES, ids=[c[-1] for c in CASES])
def test_client_address(peer, forwarded_for, real_ip, expected, why):
    assert client_address(peer, forwarded_for=forwarded_for, real_ip=real_ip, trusted=TRUSTED) == expected


def test_nothing_trusted_means_the_peer_always():
    assert client_address("10.0.0.5", forwarded_for="198.51.100.7", real_ip="198.51.100.8", trusted=()) == "10.0.0.5"
