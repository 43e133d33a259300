"""The ports tests start servers on: free, distinct, and never one the kernel gives a client socket."""

from __future__ import annotations

import socket

from tests.support.ports import _ephemeral_start, free_port


def test_ports_are_below_the_ephemeral_range_and_distinct():
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(10_000 <= port < _ephemeral_start() for port in ports)


def test_a_port_is_one_a_server_can_listen_on():
    with socket.socket() as server:
        server.bind(("127.0.0.1", free_port()))
        server.listen()


def test_a_port_taken_by_a_listener_is_passed_over(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy, busy, busy + 1 if busy + 1 < _ephemeral_start() else busy - 1])
        monkeypatch.setattr("tests.support.ports.random.choice", lambda candidates: next(picks))
        assert free_port() != busy


def test_the_kernel_hands_client_sockets_ports_from_above_the_range_start():
    # What the module relies on: a connection's source port comes from the ephemeral range.
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())
        assert client.getsockname()[1] >= _ephemeral_start()
