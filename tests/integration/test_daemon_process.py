"""The daemon as an operator runs it: a subprocess, scheduled polls, signals."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon_fixtures import Servers, write_config
from daemon_process import DaemonProcess
from mastwatch.testing.feeds import rss

pytestmark = pytest.mark.slow


def _item(n: int, title: str) -> dict[str, Any]:
    return {"title": title, "guid": f"item-{n}", "link": f"https://news.example.org/{n}"}


@pytest.fixture
async def daemon_factory() -> AsyncIterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for process in started:
        await process.kill()


async def test_polls_on_schedule_reloads_and_stops_cleanly(
    tmp_path: Path, servers: Servers, daemon_factory: list[DaemonProcess]
) -> None:
    servers.feeds.add_feed("/wire.xml", rss([_item(1, "Japan sells US Treasuries")]))
    source = {"id": "wire", "url": servers.feeds.url("/wire.xml"), "interval": 1}
    config = write_config(tmp_path, servers, [source])
    daemon = DaemonProcess(config)
    daemon_factory.append(daemon)
    await daemon.start()

    await servers.slack.wait_for(1, timeout=20)
    assert servers.slack.messages[0].channel == "#high"

    # a new item appears: the scheduler's next poll finds it
    servers.feeds.update_feed(
        "/wire.xml",
        rss([_item(2, "New tariff on steel"), _item(1, "Japan sells US Treasuries")]),
    )
    await servers.slack.wait_for(2, timeout=20)
    assert servers.slack.messages[1].channel == "#crit"

    # a broken rule set is rejected on SIGHUP and the running one keeps working
    (tmp_path / "rules" / "broken.yaml").write_text("id: broken\ntitle: x\ntier: nope\n")
    daemon.signal(signal.SIGHUP)
    await daemon.wait_event("reload_rejected")
    rejected = daemon.event("reload_rejected")
    assert any("broken.yaml" in p and "nope" in p for p in rejected["problems"])

    servers.feeds.update_feed(
        "/wire.xml",
        rss([_item(3, "Treasuries rally"), _item(2, "New tariff on steel")]),
    )
    await servers.slack.wait_for(3, timeout=20)

    # a valid change is applied
    (tmp_path / "rules" / "broken.yaml").unlink()
    daemon.signal(signal.SIGHUP)
    await daemon.wait_event("reload_applied")

    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit() == 0
    names = daemon.names()
    assert names.index("daemon_stopping") < names.index("daemon_stopped")
    assert len(servers.slack.messages) == 3  # nothing was repeated


async def test_pending_deliveries_survive_a_restart(
    tmp_path: Path, servers: Servers, daemon_factory: list[DaemonProcess]
) -> None:
    servers.feeds.add_feed("/wire.xml", rss([_item(1, "Japan sells US Treasuries")]))
    source = {"id": "wire", "url": servers.feeds.url("/wire.xml"), "interval": 1}
    config = write_config(tmp_path, servers, [source])
    servers.slack.fail_next(1000, status=503)  # Slack is down for the first daemon

    first = DaemonProcess(config)
    daemon_factory.append(first)
    await first.start()
    await first.wait_event("delivery_retry")
    first.signal(signal.SIGTERM)
    assert await first.wait_exit() == 0
    assert servers.slack.messages == []

    servers.slack.clear_faults()  # Slack is back
    second = DaemonProcess(config)
    daemon_factory.append(second)
    await second.start()
    await servers.slack.wait_for(1, timeout=20)
    second.signal(signal.SIGTERM)
    assert await second.wait_exit() == 0
    assert [m.channel for m in servers.slack.messages] == ["#high"]


async def test_invalid_config_is_fatal_with_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[schedule]\ndefault_interval = "soon"\n[[sources]]\nid = "Bad Id"\nurl = "gopher://x"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mastwatch.cli", "run", "--config", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 1
    text = err.decode()
    assert "schedule.default_interval" in text
    assert "sources[0].id" in text
    assert "sources[0].url" in text
