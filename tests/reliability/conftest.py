"""Fixtures shared by the reliability suite: loopback feed, Slack and SMTP servers, and a
TCP port that never completes a connection (a black hole for connect timeouts)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A listening port whose accept queue is full: new SYNs are dropped, so a connect
    hangs until the client's connect timeout, like a firewalled host."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, server]:
        sock.close()
