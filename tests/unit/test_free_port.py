"""Ports for servers the fixtures and the local stack start: never one the kernel may hand
to an outgoing connection in the meantime (a three-node test cluster lost a listener port to
its own brokers' connections that way)."""

from __future__ import annotations

import socket

from stockpipe.local_stack.processes import _ephemeral_ports, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    ports = [free_port() for _ in range(40)]
    assert len(set(ports)) == len(ports)
    ephemeral = _ephemeral_ports()
    assert not [port for port in ports if port in ephemeral]
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
