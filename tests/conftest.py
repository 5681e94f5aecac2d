"""Fixtures every suite shares: the loopback feed, Slack and SMTP servers a daemon talks to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from daemon_fixtures import SLACK_TOKEN, Servers
from mastwatch.testing.feeds import FeedServer
from mastwatch.testing.slack import LocalSlackServer
from mastwatch.testing.smtp import LocalSMTPServer


@pytest.fixture
async def servers(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Servers]:
    """A feed server, a Slack API server requiring ``SLACK_TOKEN`` and an SMTP server; the
    token is in the environment (as an in-process daemon reads it) and no other secret is."""
    monkeypatch.setenv("MASTWATCH_SLACK_TOKEN", SLACK_TOKEN)
    monkeypatch.delenv("MASTWATCH_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("MASTWATCH_SMTP_PASSWORD", raising=False)
    async with (
        FeedServer() as feeds,
        LocalSlackServer(token=SLACK_TOKEN) as slack,
        LocalSMTPServer() as smtp,
    ):
        yield Servers(feeds, slack, smtp)
