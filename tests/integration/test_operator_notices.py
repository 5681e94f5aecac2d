"""Operator notices end to end: told once through the messages outbox (aiosmtpd, local Slack),
and once more when the problem clears, also across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemon_fixtures import Servers, run_once, source, write_config, write_rules
from mastwatch.app import Daemon
from mastwatch.cli import main
from mastwatch.testing.feeds import rss

OPS = {"email": ["ops@example.com"], "slack": ["#ops"], "console": False, "source_failures": 3}
ITEM = {"title": "Nothing to see", "link": "https://ex.org/1", "guid": "1", "description": ""}


def subjects(servers: Servers) -> list[str]:
    return [str(mail.message["Subject"]) for mail in servers.smtp.messages]


async def test_a_failing_source_is_told_once_and_its_recovery_once(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    servers.feeds.add_status("/down.xml", 503)
    config = write_config(tmp_path, servers, [source(servers, "/down.xml")], notices=OPS)

    for _ in range(2):
        await run_once(config)
    assert subjects(servers) == []  # two failures: not yet
    for _ in range(3):  # each run is a restart: the raised state is in the store
        await run_once(config)
    assert subjects(servers) == ["[mastwatch NOTICE] source wire is failing"]
    assert "503" in servers.smtp.messages[0].message.get_content()
    assert [m.channel for m in servers.slack.messages] == ["#ops"]
    assert await asyncio.to_thread(main, ["status", "--config", str(config)]) == 0
    assert "source_failing:wire: source wire is failing" in capsys.readouterr().out

    servers.feeds.add_feed("/down.xml", rss([ITEM]))
    await run_once(config)
    await run_once(config)
    assert subjects(servers) == [
        "[mastwatch NOTICE] source wire is failing",
        "[mastwatch RECOVERED] source wire is failing",
    ]
    assert len(servers.slack.messages) == 2


async def test_a_rejected_reload_is_told_once_and_cleared_by_a_good_one(
    tmp_path: Path, servers: Servers
) -> None:
    config = write_config(tmp_path, servers, [], notices=OPS)
    async with Daemon(config) as daemon:
        write_rules(tmp_path / "rules", "- id: broken\n  tier: nope\n")
        assert not await daemon.reload()
        assert not await daemon.reload()  # the same problem again: no second notice
        await daemon.messages.drain(10)
        [subject] = subjects(servers)
        assert subject.startswith("[mastwatch NOTICE] reload of config and rules failed")
        assert "broken" in servers.smtp.messages[0].message.get_content()
        write_rules(tmp_path / "rules")
        assert await daemon.reload()
        await daemon.messages.drain(10)
    assert len(subjects(servers)) == 2
    assert subjects(servers)[1].startswith("[mastwatch RECOVERED] reload")


TARIFF = {
    "title": "US raises tariff on Japanese autos to 25%",
    "link": "https://news.example.org/a/1",
    "guid": "a-1",
    "description": "",
}
TARIFF_2 = {**TARIFF, "title": "EU answers the auto tariff", "guid": "a-2", "link": "https://n/2"}


async def test_a_receiver_failing_for_good_is_told_once_and_cleared_by_a_success(
    tmp_path: Path, servers: Servers
) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TARIFF]))
    ops = {**OPS, "email": [], "slack": ["#ops"]}  # told where the failing mailbox is not
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml")], notices=ops)
    servers.smtp.fail_next(1, code=550)  # the critical tier's mailbox refuses for good

    await run_once(config)
    ops_posts = [m.text or "" for m in servers.slack.messages if m.channel == "#ops"]
    assert len(ops_posts) == 1
    assert "deliveries to email:desk@example.com fail permanently" in ops_posts[0]
    assert "550" in ops_posts[0]

    servers.feeds.update_feed("/wire.xml", rss([TARIFF, TARIFF_2]))
    await run_once(config)  # the next mail to that address goes through: recovered
    ops_posts = [m.text or "" for m in servers.slack.messages if m.channel == "#ops"]
    assert len(ops_posts) == 2
    assert "RECOVERED" in ops_posts[1]
