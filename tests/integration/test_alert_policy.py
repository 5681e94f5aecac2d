"""The alert policy end to end: the real daemon, loopback feeds, the local Slack server
and aiosmtpd. One story from three sources: one parent message, two thread replies,
updates of the parent, and an escalation when the third source corroborates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon_fixtures import Servers, delivery_rows, run_once, source, write_config
from mastwatch.testing.feeds import rss

STORY = [
    ("nhk", "Japan trims its holdings of US Treasuries", "https://nhk.example/a/1"),
    ("reuters", "Japan trims its holdings of US Treasuries - Reuters", "https://r.example/x"),
    ("kyodo", "Japan trims its holdings of US Treasuries (Kyodo)", "https://k.example/y?id=9"),
]
ESCALATION = {"escalation__tiers__high": {"sources": 3, "window": "1h", "to": "critical"}}


def _feed(title: str, link: str) -> bytes:
    item = {"title": title, "link": link, "guid": link, "description": "Holdings fell."}
    return rss([item])


def _config(tmp_path: Path, servers: Servers, count: int, **extra: Any) -> Path:
    sources = [source(servers, f"/{sid}.xml", sid) for sid, _, _ in STORY[:count]]
    return write_config(tmp_path, servers, sources, **{**ESCALATION, **extra})


async def test_one_story_from_three_sources_threads_and_escalates(
    tmp_path: Path, servers: Servers
) -> None:
    for sid, title, link in STORY:
        servers.feeds.add_feed(f"/{sid}.xml", _feed(title, link))

    for count in (1, 2, 3):  # the sources publish one after another
        await run_once(_config(tmp_path, servers, count))

    slack = servers.slack
    high = [m for m in slack.messages if m.channel == "#high"]
    parents = [m for m in high if m.thread_ts is None]
    assert len(parents) == 1
    parent = parents[0]
    assert "nhk.example/a/1" in str(parent.text)
    replies = slack.replies(parent.ts)
    also = [m for m in replies if "Also reported by" in str(m.text)]
    assert [m.text.split("*")[1] for m in also if m.text] == ["Feed reuters", "Feed kyodo"]
    escalated = [m for m in replies if "Escalated high → critical" in str(m.text)]
    assert len(escalated) == 1
    assert "reported by 3 sources within 1h" in str(escalated[0].text)
    assert escalated[0].reply_broadcast is True
    # the parent was updated with each new source; the last update shows the escalation
    updates = [u for u in slack.updates if u.ts == parent.ts]
    assert len(updates) == 2
    assert "Reported by 2 sources" in str(updates[0].text)
    assert "Reported by 3 sources: Feed nhk, Feed reuters, Feed kyodo" in str(updates[1].text)
    assert "[CRITICAL]" in str(updates[1].text)
    # the escalated story reaches the critical route's receivers once, as a new thread
    crit = [m for m in slack.messages if m.channel == "#crit"]
    assert len(crit) == 1
    assert crit[0].thread_ts is None
    assert [list(m.rcpt_tos) for m in servers.smtp.messages] == [["desk@example.com"]]


async def test_email_does_not_repeat_a_story(tmp_path: Path, servers: Servers) -> None:
    titles = ["US raises tariff on Japanese autos", "US raises tariff on Japanese autos - AP"]
    for (sid, _, link), title in zip(STORY, titles, strict=False):
        servers.feeds.add_feed(f"/{sid}.xml", _feed(title, link))

    await run_once(_config(tmp_path, servers, 1))
    await run_once(_config(tmp_path, servers, 2))

    assert len(servers.smtp.messages) == 1  # the critical tier mails; the story once
    crit = [m for m in servers.slack.messages if m.channel == "#crit"]
    assert [m.thread_ts is None for m in crit] == [True, False]
    assert crit[1].thread_ts == crit[0].ts


async def test_critical_inhibits_the_high_alert_of_the_same_item(
    tmp_path: Path, servers: Servers
) -> None:
    item = ("nhk", "Tariff on autos and US Treasuries sale threatened", "https://n.example/1")
    servers.feeds.add_feed("/nhk.xml", _feed(item[1], item[2]))

    await run_once(_config(tmp_path, servers, 1))

    assert [m.channel for m in servers.slack.messages] == ["#crit"]  # not also #high


FLOOD = ["US Treasuries auction tails", "Treasuries rally on data", "Treasuries slump late"]


async def test_the_flood_guard_gathers_the_rest_into_one_summary(
    tmp_path: Path, servers: Servers
) -> None:
    items = [
        {"title": t, "link": f"https://w.example/{i}", "guid": str(i), "description": ""}
        for i, t in enumerate(FLOOD)
    ]
    servers.feeds.add_feed("/wire.xml", rss(items))
    config = write_config(
        tmp_path, servers, [source(servers, "/wire.xml")], throttle={"flood_max_per_hour": 1}
    )
    # the summary is due when the clock hour ends: a run that straddles the hour (the
    # daemon waits up to once_wait for due deliveries) would rightly send it too
    await _not_near_the_end_of_an_hour(margin=20)

    daemon = await run_once(config)

    assert [m.channel for m in servers.slack.messages] == ["#high"]  # the first one only
    summary = [d for d in await delivery_rows(daemon) if d.kind == "summary"]
    assert len(summary) == 1  # one message for the rest, due at the end of the hour
    assert summary[0].state.value == "pending"
    assert summary[0].info["count"] == 2
    assert {i["title"] for i in summary[0].info["items"]} == set(FLOOD[1:])


async def _not_near_the_end_of_an_hour(margin: float) -> None:
    """Return at once, or, within ``margin`` seconds of the next clock hour, once it has
    begun."""
    now = datetime.now(UTC)
    next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if (left := (next_hour - now).total_seconds()) < margin:
        await asyncio.sleep(left + 0.5)


async def test_quiet_hours_defer_to_their_end_never_drop(tmp_path: Path, servers: Servers) -> None:
    now = datetime.now(UTC)
    start = (now - timedelta(hours=1)).strftime("%H:00")
    end = (now + timedelta(hours=2)).strftime("%H:00")
    servers.feeds.add_feed("/nhk.xml", _feed(STORY[0][1], STORY[0][2]))
    quiet = {"start": start, "end": end, "timezone": "UTC", "defer": "end"}
    config = _config(
        tmp_path,
        servers,
        1,
        receivers__desk={"slack": ["#desk"]},
        routes={"receivers": ["desk"]},
        routes__quiet_hours=quiet,
    )

    daemon = await run_once(config)

    assert servers.slack.messages == []
    (row,) = await delivery_rows(daemon)
    assert (row.channel, row.target, row.state.value) == ("slack", "#desk", "pending")


async def test_replies_wait_for_a_parent_held_by_group_wait(
    tmp_path: Path, servers: Servers
) -> None:
    for sid, title, link in STORY:
        servers.feeds.add_feed(f"/{sid}.xml", _feed(title, link))
    config = _config(
        tmp_path,
        servers,
        3,  # the three sources in one run: polled together, one story
        receivers__desk={"slack": ["#desk"]},
        routes={"receivers": ["desk"], "group_wait": "1s"},
    )

    await run_once(config)

    desk = [m for m in servers.slack.messages if m.channel == "#desk"]
    (parent,) = [m for m in desk if m.thread_ts is None]
    assert len(desk) >= 3  # the parent, two "also reported by" (and the escalation)
    assert all(m.thread_ts == parent.ts for m in desk if m is not parent)
    assert len([m for m in desk if "Also reported by" in str(m.text)]) == 2
    assert parent.received_at < min(m.received_at for m in desk if m is not parent)
