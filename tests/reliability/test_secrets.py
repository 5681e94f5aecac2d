"""No secret in any log line: the daemon runs (as a subprocess, at debug level) with a
Slack token, a webhook URL and an SMTP password set, and is made to fail with each."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from support import DaemonProcess

from daemon_fixtures import Servers, source, write_config
from mastwatch.testing.feeds import rss
from mastwatch.testing.smtp import LocalSMTPServer

pytestmark = pytest.mark.slow

TOKEN = "xoxb-1111-2222-SECRETTOKENVALUE"
PASSWORD = "smtp-SECRET-pass-9f8e7d"
ITEMS = [
    {"title": "US raises tariff on autos", "guid": "s-1"},
    {"title": "Japan trims US Treasuries", "guid": "s-2"},
]


async def _run_until(daemon: DaemonProcess, event: str, count: int) -> None:
    await daemon.start()
    async with asyncio.timeout(30):
        while daemon.names().count(event) < count:
            await asyncio.sleep(0.05)
    assert await daemon.stop() == 0


async def test_no_secret_appears_in_any_log_line(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss(ITEMS))
    webhook = servers.slack.webhook_url
    env = {
        **os.environ,
        "MASTWATCH_SLACK_TOKEN": TOKEN,  # the local server wants another: invalid_auth
        "MASTWATCH_SLACK_WEBHOOK_URL": webhook,
        "MASTWATCH_SMTP_PASSWORD": PASSWORD,  # the SMTP server wants another: 535
    }
    # the SMTP server refuses the login and quotes the password it was sent in its 535
    async with LocalSMTPServer(username="alerts", password="other", echo_failed_auth=True) as smtp:
        overrides = {
            "email": {"port": smtp.port, "username": "alerts"},
            "log": {"level": "debug", "format": "json"},
        }
        sources = [source(servers, "/wire.xml", "wire")]
        token_mode = write_config(tmp_path / "a", servers, sources, **overrides)
        first = DaemonProcess(token_mode, env)
        await _run_until(first, "delivery_failed", 3)

        # webhook mode: the URL path is the secret; resets and 500s first, then success
        servers.slack.reset_connection_next(2)
        servers.slack.fail_next(2, status=500)
        webhook_env = {**env, "MASTWATCH_SLACK_TOKEN": ""}
        webhook_mode = write_config(tmp_path / "b", servers, sources, **overrides)
        second = DaemonProcess(webhook_mode, webhook_env)
        await _run_until(second, "alert_sent", 2)

    output = first.lines + second.lines
    assert len(output) > 20
    assert "delivery_retry" in second.names()
    leaked = [line for line in output for secret in (TOKEN, PASSWORD, webhook) if secret in line]
    assert leaked == []
    webhook_path = webhook.split("/services/", 1)[1]
    assert not [line for line in output if webhook_path in line]
