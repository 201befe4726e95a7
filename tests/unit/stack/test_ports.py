"""Ports handed to tests' servers never repeat and stay clear of the ephemeral range."""

from __future__ import annotations

import socket

from crm_stack.ports import _ephemeral_range, free_port


def test_free_ports_lie_outside_the_range_of_outgoing_connections_and_never_repeat() -> None:
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if low <= p <= high]
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
