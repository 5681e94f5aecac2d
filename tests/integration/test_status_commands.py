"""`mastwatch status`, `alerts --since` and `replay` over a store filled by a real run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from daemon_fixtures import Servers, write_config, write_rules
from mastwatch.app import Daemon
from mastwatch.cli import main
from mastwatch.testing.feeds import rss

ITEMS = [
    {"title": "US raises tariff on autos", "guid": "a-1", "link": "https://news.example.org/1"},
    {
        "title": "Japan trims holdings",
        "guid": "a-2",
        "link": "https://news.example.org/2",
        "description": "Sales of US Treasuries continued in May.",  # matched in the summary
    },
    {"title": "Yen slips \x1b[31mred\x1b[0m", "guid": "a-3", "link": "https://news.example.org/3"},
]
CANDIDATE = """\
- id: trade-tariffs
  title: Tariffs on autos
  tier: critical
  match:
    any: [tariff]
- id: yen
  title: The yen
  tier: normal
  match:
    any: [yen]
"""


@pytest.fixture
async def filled(tmp_path: Path, servers: Servers) -> Path:
    """A config whose store holds one run's items, alerts and deliveries."""
    servers.feeds.add_feed("/wire.xml", rss(ITEMS))
    config = write_config(
        tmp_path, servers, [{"id": "wire", "url": servers.feeds.url("/wire.xml")}]
    )
    async with Daemon(config) as daemon:
        assert await daemon.run_once() == 0
    assert len(servers.slack.messages) == 2
    return config


def _counts(db: Path) -> tuple[int, ...]:
    with sqlite3.connect(db) as conn:
        tables = ("items", "alerts", "deliveries", "sources")
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables)


def test_status_lists_sources_outbox_and_alerts(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--config", str(filled)]) == 0
    out = capsys.readouterr().out
    assert "wire" in out
    assert " ok " in out
    assert "outbox: pending 0 · sent 3 · failed 0" in out
    assert "messages outbox (digests, notices): digest pending 0 · digest sent 0" in out
    assert "recent alerts (2):" in out
    assert "slack #crit: sent" in out
    assert "email desk@example.com: sent" in out


def test_alerts_since_lists_what_was_sent_and_where(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts", "--config", str(filled), "--since", "24h", "--format", "jsonl"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["rule"] for r in records) == ["trade-tariffs", "us-treasuries"]
    tariff = next(r for r in records if r["rule"] == "trade-tariffs")
    assert {(d["channel"], d["state"]) for d in tariff["deliveries"]} == {
        ("slack", "sent"),
        ("email", "sent"),
    }
    assert main(["alerts", "--config", str(filled), "--since", "24h"]) == 0
    assert "2 alerts since" in capsys.readouterr().out


def test_replay_of_the_running_rules_lists_the_alerts_that_run_produced(
    filled: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    db = filled.parent / "state" / "mastwatch.db"
    before = _counts(db)
    assert main(["replay", "--config", str(filled), "--since", "7d", "--format", "jsonl"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((h["rule"], h["item"]) for h in hits) == [
        ("trade-tariffs", "guid:a-1"),
        ("us-treasuries", "guid:a-2"),
    ]
    assert all(h["alerted"] for h in hits)
    assert main(["replay", "--config", str(filled)]) == 0
    text = capsys.readouterr().out
    assert "trade-tariffs" in text
    assert text.splitlines()[-1].split()[-2:] == ["2", "2"]  # would alert 2, alerted 2
    assert _counts(db) == before  # nothing stored
    assert len(servers.slack.messages) == 2  # nothing sent


def test_replay_of_a_candidate_rule_set_shows_the_change(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    candidate = write_rules(tmp_path / "candidate", CANDIDATE)
    args = ["replay", "--config", str(filled), "--rules", str(candidate)]
    assert main([*args, "--format", "jsonl"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(h["rule"], h["alerted"]) for h in hits} == {
        ("trade-tariffs", True),
        ("yen", False),  # a new rule: would alert, did not
    }
    assert main(args) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    by_rule = {row[1]: row[-2:] for row in rows if len(row) == 5 and row[0][:2] == "20"}
    assert by_rule == {"trade-tariffs": ["1", "1"], "us-treasuries": ["0", "1"], "yen": ["1", "0"]}


def test_terminal_output_is_stripped_of_escapes(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    candidate = write_rules(tmp_path / "candidate", CANDIDATE)
    assert main(["replay", "--config", str(filled), "--rules", str(candidate)]) == 0
    assert main(["status", "--config", str(filled)]) == 0
    assert "\x1b" not in capsys.readouterr().out


def test_reports_need_an_existing_store_and_a_valid_since(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "none.db"}"\n', encoding="utf-8")
    assert main(["status", "--config", str(config)]) == 1
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()  # a report never creates a store
    assert main(["alerts", "--config", str(config), "--since", "soon"]) == 1
    assert "--since" in capsys.readouterr().err
