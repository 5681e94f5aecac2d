"""Digests end to end: the daemon's digest job, the messages outbox, a real aiosmtpd and the
local Slack server. Times are explicit: the job is called with the moment APScheduler
would call it at."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from daemon_fixtures import Servers, digest_poll, source, write_config
from mastwatch.app import Daemon
from mastwatch.testing.feeds import rss

# 07:00 Asia/Tokyo is 22:00 UTC the day before
MORNING_1 = datetime(2025, 3, 1, 22, 0, 5, tzinfo=UTC)  # just after the 2 March digest
MORNING_2 = datetime(2025, 3, 2, 22, 0, 5, tzinfo=UTC)
QUEUED_1 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # during the 2 March period
QUEUED_2 = datetime(2025, 3, 2, 3, 0, tzinfo=UTC)  # during the 3 March period

DIGEST = {"id": "morning", "cron": "0 7 * * *", "timezone": "Asia/Tokyo"}


def digest_config(
    tmp_path: Path, servers: Servers, sources: Sequence[Mapping[str, Any]] = ()
) -> Path:
    path = write_config(tmp_path, servers, sources)
    with path.open("a", encoding="utf-8") as out:
        out.write(
            '[[digests]]\nid = "morning"\ntitle = "Morning digest"\ncron = "0 7 * * *"\n'
            'timezone = "Asia/Tokyo"\nemail = ["desk@example.com"]\nslack = "#digest"\n'
        )
    return path


async def test_the_digest_arrives_once_per_period_also_after_a_restart(
    tmp_path: Path, servers: Servers
) -> None:
    config = digest_config(tmp_path, servers)
    async with Daemon(config) as daemon:
        await daemon.store.commit_poll(
            digest_poll("wire", "Tariff <talks> resume", "Tariff deal near"), QUEUED_1
        )
        await daemon.store.commit_poll(digest_poll("nhk", "関税協議が再開"), QUEUED_2)
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


TREASURIES = {
    "title": "Japan trims its holdings of US Treasuries",
    "link": "https://news.example.org/a/2",
    "guid": "a-2",
    "description": "Holdings fell for a third month.",
}
TARIFF = {
    "title": "US raises tariff on Japanese autos to 25%",
    "link": "https://news.example.org/a/1",
    "guid": "a-1",
    "description": "The decision takes effect next month.",
}
QUIET_ROUTES = """
[receivers.desk]
slack = ["#desk"]

[routes]
receivers = ["desk"]

[[routes.routes]]
match = { tier = "high" }
receivers = ["desk"]
quiet_hours = { start = "22:00", end = "07:00", timezone = "Asia/Tokyo", defer = "digest:morning" }
"""


async def test_quiet_hours_defer_to_the_digest(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TARIFF, TREASURIES]))
    config = digest_config(tmp_path, servers, [source(servers, "/wire.xml")])
    with config.open("a", encoding="utf-8") as out:
        out.write(QUIET_ROUTES)
    clock = [datetime(2025, 3, 1, 14, 0, tzinfo=UTC)]  # 23:00 in Tokyo
    async with Daemon(config, clock=lambda: clock[0]) as daemon:
        assert await daemon.run_once() == 0
        # critical is let through at night; high waits for the morning digest
        assert [m.channel for m in servers.slack.messages] == ["#desk"]
        assert "tariff" in (servers.slack.messages[0].text or "")
        assert servers.smtp.messages == []
        clock[0] = MORNING_1  # the scheduler calls the job at 07:00 Tokyo time
        assert await daemon.send_digest("morning") == 1
        await daemon.messages.drain(15)

    [mail] = servers.smtp.messages
    assert mail.message["Subject"] == "Morning digest: 1 alerts, 2025-03-02 07:00"
    text = mail.message.get_body(("plain",))
    assert text is not None
    assert "Japan trims its holdings of US Treasuries" in text.get_content()
    assert "tariff" not in text.get_content()
    assert [m.channel for m in servers.slack.messages] == ["#desk", "#digest"]


async def test_each_digest_is_a_cron_job_in_its_time_zone(tmp_path: Path, servers: Servers) -> None:
    config = digest_config(tmp_path, servers)
    async with Daemon(config) as daemon:
        scheduler = AsyncIOScheduler(timezone="UTC")
        daemon._sync_jobs(scheduler)  # what run_forever and every reload do
        scheduler.start(paused=True)
        try:
            job = scheduler.get_job("digest:morning")
            assert job is not None
            when = job.next_run_time
            assert (when.hour, when.minute, when.utcoffset()) == (7, 0, timedelta(hours=9))
            await daemon.reload()  # a reload keeps the digest's job
            assert scheduler.get_job("digest:morning") is not None
        finally:
            scheduler.shutdown(wait=False)


async def test_a_digest_missed_while_down_is_sent_at_start_once(
    tmp_path: Path, servers: Servers
) -> None:
    config = digest_config(tmp_path, servers)
    long_ago = datetime.now(UTC) - timedelta(days=2)  # before the last 07:00 in Tokyo
    results: list[int] = []
    for attempt in range(2):  # a start, then a restart: the period is claimed once
        async with Daemon(config) as daemon:
            if attempt == 0:
                await daemon.store.commit_poll(digest_poll("wire", "Missed"), long_ago)
            send = daemon.send_digest

            async def counted(digest_id: str, send: Any = send) -> int:
                results.append(await send(digest_id))
                return results[-1]

            daemon.send_digest = counted  # type: ignore[method-assign]
            task = asyncio.create_task(daemon.run_forever())
            async with asyncio.timeout(10):
                while len(results) <= attempt:  # the catch-up job ran
                    await asyncio.sleep(0.02)
                while (await daemon.store.message_rows())[-1][1] != "sent":
                    await asyncio.sleep(0.02)
            daemon._request_stop("test")
            assert await asyncio.wait_for(task, 20) == 0
    assert results == [1, 0]
    [mail] = servers.smtp.messages
    assert str(mail.message["Subject"]).startswith("Morning digest: 1 alerts")
