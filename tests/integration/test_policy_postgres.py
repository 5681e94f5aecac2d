"""The alert policy in HA mode: daemons sharing one PostgreSQL store behave as one.

Each ``Daemon`` here is a replica of its own (a random replica id), in this process; the
real PostgreSQL on 127.0.0.1:5432, loopback feeds, the local Slack server and aiosmtpd.
The three-replica SIGKILL test (tests/reliability/test_ha_postgres.py) covers the
polling and delivery leases; these cover the policy state the replicas share.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon_fixtures import Servers, digest_poll, run_once, source, write_config
from mastwatch.app import Daemon
from mastwatch.cli import main
from mastwatch.store.postgres import PostgresStore
from mastwatch.testing.feeds import rss
from pg_fixtures import fresh_database

STORY = [
    ("nhk", "Japan trims its holdings of US Treasuries", "https://nhk.example/a/1"),
    ("reuters", "Japan trims its holdings of US Treasuries - Reuters", "https://r.example/x"),
    ("kyodo", "Japan trims its holdings of US Treasuries (Kyodo)", "https://k.example/y?id=9"),
]
PG_STORE = {"store": {"path": None, "url_env": "TEST_STORE_URL"}}
MORNING = datetime(2025, 3, 1, 22, 0, 5, tzinfo=UTC)  # just after 07:00 Asia/Tokyo
QUEUED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def pg_url(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    async with fresh_database() as url:
        monkeypatch.setenv("TEST_STORE_URL", url)
        yield url


def _config(tmp_path: Path, servers: Servers, count: int, **extra: Any) -> Path:
    sources = [source(servers, f"/{sid}.xml", sid) for sid, _, _ in STORY[:count]]
    escalation = {"sources": 3, "window": "1h", "to": "critical"}
    return write_config(
        tmp_path, servers, sources, escalation__tiers__high=escalation, **PG_STORE, **extra
    )


async def test_a_story_threads_and_escalates_across_replicas(
    tmp_path: Path, servers: Servers, pg_url: str
) -> None:
    for sid, title, link in STORY:
        item = {"title": title, "link": link, "guid": link, "description": "Holdings fell."}
        servers.feeds.add_feed(f"/{sid}.xml", rss([item]))

    for count in (1, 2, 3):  # a new replica each time: the story lives in the database
        await run_once(_config(tmp_path, servers, count))

    high = [m for m in servers.slack.messages if m.channel == "#high"]
    (parent,) = [m for m in high if m.thread_ts is None]
    replies = servers.slack.replies(parent.ts)
    also = [m for m in replies if "Also reported by" in str(m.text)]
    assert [m.text.split("*")[1] for m in also if m.text] == ["Feed reuters", "Feed kyodo"]
    escalated = [m for m in replies if "Escalated high → critical" in str(m.text)]
    assert len(escalated) == 1
    assert [m.channel for m in servers.slack.messages].count("#crit") == 1
    async with PostgresStore(pg_url) as store:
        (story,) = await store.stories_since(datetime(2000, 1, 1, tzinfo=UTC))
    assert [r.source_id for r in story.reports] == ["nhk", "reuters", "kyodo"]


async def test_two_live_replicas_send_one_digest_per_period(
    tmp_path: Path, servers: Servers, pg_url: str
) -> None:
    config = _config(tmp_path, servers, 0)
    with config.open("a", encoding="utf-8") as out:
        out.write(
            '[[digests]]\nid = "morning"\ntitle = "Morning digest"\ncron = "0 7 * * *"\n'
            'timezone = "Asia/Tokyo"\nemail = ["desk@example.com"]\nslack = "#digest"\n'
        )
    async with Daemon(config) as first, Daemon(config) as second:
        assert first.replica_id != second.replica_id
        await first.store.commit_poll(digest_poll("wire", "Tariff talks resume"), QUEUED)
        await second.store.commit_poll(digest_poll("nhk", "関税協議が再開"), QUEUED)
        sent = await asyncio.gather(
            first.send_digest("morning", MORNING), second.send_digest("morning", MORNING)
        )
        assert sorted(sent) == [0, 2]  # one replica claimed the period, with both entries
        await asyncio.gather(first.messages.drain(15), second.messages.drain(15))
    assert [list(m.rcpt_tos) for m in servers.smtp.messages] == [["desk@example.com"]]
    assert [m.channel for m in servers.slack.messages] == ["#digest"]


async def test_a_silence_added_by_the_cli_is_in_the_shared_store(
    tmp_path: Path, servers: Servers, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_config(tmp_path, servers, 1))
    add = ["silence", "add", "--config", config, "--match", "rule=tariffs", "--for", "4h"]
    assert await asyncio.to_thread(main, [*add, "--comment", "誤報", "--author", "aiko"]) == 0
    silence_id = capsys.readouterr().out.strip()
    async with PostgresStore(pg_url) as store:
        (silence,) = await store.active_silences(datetime.now(UTC))
    assert (silence.id, silence.matchers, silence.author) == (
        silence_id,
        (("rule", "tariffs"),),
        "aiko",
    )
    assert await asyncio.to_thread(main, ["silence", "expire", "--config", config, silence_id]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["silence", "list", "--config", config]) == 0
    listed = capsys.readouterr()
    assert (listed.out, listed.err) == ("", "no silences\n")  # expired on every replica
