"""Fixtures shared by the reliability suite: loopback feed, Slack and SMTP servers, and a
TCP port that never completes a connection (a black hole for connect timeouts)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from integration.daemon_fixtures import SLACK_TOKEN, Servers
from mastwatch.testing.feeds import FeedServer
from mastwatch.testing.slack import LocalSlackServer
from mastwatch.testing.smtp import LocalSMTPServer


@pytest.fixture
async def servers(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Servers]:
    monkeypatch.setenv("MASTWATCH_SLACK_TOKEN", SLACK_TOKEN)
    monkeypatch.delenv("MASTWATCH_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("MASTWATCH_SMTP_PASSWORD", raising=False)
    async with (
        FeedServer() as feeds,
        LocalSlackServer(token=SLACK_TOKEN) as slack,
        LocalSMTPServer() as smtp,
    ):
        yield Servers(feeds, slack, smtp)


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
