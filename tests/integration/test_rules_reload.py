"""Editing rule files under a running daemon: applied without SIGHUP, broken edits refused."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from daemon_fixtures import RULES, Servers, write_config
from daemon_process import DaemonProcess
from mastwatch.testing.feeds import rss

pytestmark = pytest.mark.slow

YEN_RULE = """\
- id: yen-moves
  title: Yen moves
  tier: high
  match:
    near: {terms: [yen, "@percent"], within: 3}
"""


def _item(n: int, title: str) -> dict[str, Any]:
    return {"title": title, "guid": f"item-{n}", "link": f"https://news.example.org/{n}"}


async def test_rule_file_edits_apply_without_restart_and_broken_ones_are_refused(
    tmp_path: Path, servers: Servers
) -> None:
    items = [_item(1, "Japan sells US Treasuries")]
    servers.feeds.add_feed("/wire.xml", rss(items))
    source = {"id": "wire", "url": servers.feeds.url("/wire.xml"), "interval": 1}
    config = write_config(tmp_path, servers, [source])
    rules_file = tmp_path / "rules" / "rules.yaml"
    daemon = DaemonProcess(config)
    try:
        await daemon.start()
        await servers.slack.wait_for(1, timeout=20)

        # a new rule is written to the watched directory: no signal, yet it is applied
        rules_file.write_text(RULES + YEN_RULE, encoding="utf-8")
        await daemon.wait_event("reload_applied")
        applied = daemon.event("reload_applied")
        assert applied["rules_added"] == ["yen-moves"]
        assert applied["rules_removed"] == applied["rules_changed"] == []
        items.insert(0, _item(2, "Yen falls 2% against the dollar"))
        servers.feeds.update_feed("/wire.xml", rss(items))
        await servers.slack.wait_for(2, timeout=20)
        assert "Yen falls" in servers.slack.messages[1].text

        # the file is broken: the reload is refused and the running rules keep matching
        rules_file.write_text(RULES + YEN_RULE + "- id: [unclosed\n", encoding="utf-8")
        await daemon.wait_event("reload_rejected")
        rejected = daemon.event("reload_rejected")
        assert any("rules.yaml:" in problem for problem in rejected["problems"])
        items.insert(0, _item(3, "Yen rebounds 1.5% after intervention"))
        servers.feeds.update_feed("/wire.xml", rss(items))
        await servers.slack.wait_for(3, timeout=20)
        assert "Yen rebounds" in servers.slack.messages[2].text

        daemon.signal(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
        assert daemon.names().count("reload_applied") == 1
    finally:
        await daemon.kill()
