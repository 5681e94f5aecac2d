"""Digests end to end: the daemon's digest job, the messages outbox, a real aiosmtpd and the
local Slack server. Times are explicit: the job is called with the moment APScheduler
would call it at."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from daemon_fixtures import Servers, write_config
from mastwatch.app import Daemon
from mastwatch.model import Alert, DigestEntry, Item, PollResult, SourceState

# 07:00 Asia/Tokyo is 22:00 UTC the day before
MORNING_1 = datetime(2025, 3, 1, 22, 0, 5, tzinfo=UTC)  # just after the 2 March digest
MORNING_2 = datetime(2025, 3, 2, 22, 0, 5, tzinfo=UTC)
QUEUED_1 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # during the 2 March period
QUEUED_2 = datetime(2025, 3, 2, 3, 0, tzinfo=UTC)  # during the 3 March period

DIGEST = {"id": "morning", "cron": "0 7 * * *", "timezone": "Asia/Tokyo"}


def digest_config(tmp_path: Path, servers: Servers) -> Path:
    path = write_config(tmp_path, servers, [])
    with path.open("a", encoding="utf-8") as out:
        out.write(
            '[[digests]]\nid = "morning"\ntitle = "Morning digest"\ncron = "0 7 * * *"\n'
            'timezone = "Asia/Tokyo"\nemail = ["desk@example.com"]\nslack = "#digest"\n'
        )
    return path


def poll_with_entries(source_id: str, *titles: str) -> PollResult:
    items = tuple(
        Item(source_id=source_id, key=f"guid:{t}", title=t, link=f"https://ex.org/{n}")
        for n, t in enumerate(titles)
    )
    entries = tuple(
        DigestEntry(
            Alert(
                id=Alert.make_id(source_id, item.key, "tariffs"),
                rule_id="tariffs",
                rule_title="Tariffs",
                tier="digest",
                source_id=source_id,
                source_name=f"Feed {source_id}",
                item_key=item.key,
                title=item.title,
                link=item.link,
                summary="",
                matched=("tariff",),
                published=None,
                created_at=QUEUED_1,
            ),
            "morning",
        )
        for item in items
    )
    return PollResult(state=SourceState(source_id), items=items, digest_entries=entries)


async def test_the_digest_arrives_once_per_period_also_after_a_restart(
    tmp_path: Path, servers: Servers
) -> None:
    config = digest_config(tmp_path, servers)
    async with Daemon(config) as daemon:
        await daemon.store.commit_poll(
            poll_with_entries("wire", "Tariff <talks> resume", "Tariff deal near"), QUEUED_1
        )
        await daemon.store.commit_poll(poll_with_entries("nhk", "関税協議が再開"), QUEUED_2)
        assert await daemon.send_digest("morning", MORNING_1) == 2  # the 3 March entry waits
        await daemon.messages.drain(15)

    assert [list(m.rcpt_tos) for m in servers.smtp.messages] == [["desk@example.com"]]
    mail = servers.smtp.messages[0].message
    assert mail["Subject"] == "Morning digest: 2 alerts, 2025-03-02 07:00"
    html = mail.get_body(("html",))
    text = mail.get_body(("plain",))
    assert html is not None
    assert text is not None
    assert "Tariff &lt;talks&gt; resume" in html.get_content()
    assert "Tariff <talks> resume" in text.get_content()
    assert "関税協議" not in text.get_content()
    assert [m.channel for m in servers.slack.messages] == ["#digest"]

    # a restart (or a second replica) running the same job for the same period sends nothing
    async with Daemon(config) as again:
        assert await again.send_digest("morning", MORNING_1) == 0
        await again.messages.drain(15)
        assert len(servers.smtp.messages) == 1
        # the next period carries the entry queued after the first digest closed
        assert await again.send_digest("morning", MORNING_2) == 1
        await again.messages.drain(15)
        assert await again.send_digest("morning", MORNING_2) == 0
        assert await again.store.digest_claims("morning") == [
            (datetime(2025, 2, 28, 22, tzinfo=UTC), 2),
            (datetime(2025, 3, 1, 22, tzinfo=UTC), 1),
        ]

    assert len(servers.smtp.messages) == 2
    second = servers.smtp.messages[1].message.get_body(("plain",))
    assert second is not None
    assert "関税協議が再開" in second.get_content()
    assert len(servers.slack.messages) == 2


async def test_an_empty_period_sends_nothing(tmp_path: Path, servers: Servers) -> None:
    config = digest_config(tmp_path, servers)
    async with Daemon(config) as daemon:
        assert await daemon.send_digest("morning", MORNING_1) == 0
        await daemon.messages.drain(5)
        assert await daemon.store.digest_claims("morning") == []
    assert servers.smtp.messages == []
    assert servers.slack.messages == []
