"""The real daemon in burst mode (``run --once``) against loopback feed, Slack and SMTP
servers: routing per tier, dedup across restarts, conditional GET, faults that delay but
never lose an alert, and hostile feed text arriving inert."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon_fixtures import (
    SLACK_TOKEN,
    Servers,
    delivery_rows,
    run_once,
    source,
    source_states,
    write_config,
)
from mastwatch.model import DeliveryState
from mastwatch.testing.feeds import rss

TARIFF = {
    "title": "US raises tariff on Japanese autos to 25%",
    "link": "https://news.example.org/a/1",
    "guid": "a-1",
    "description": "The decision takes effect next month.",
}
TREASURIES = {
    "title": "Japan trims its holdings of US Treasuries",
    "link": "https://news.example.org/a/2",
    "guid": "a-2",
    "description": "Holdings fell for a third month.",
}
UNRELATED = {
    "title": "Bank of Japan governor speaks on wages",
    "link": "https://news.example.org/a/3",
    "guid": "a-3",
    "description": "Nothing about trade.",
}


def _channels(servers: Servers) -> list[str]:
    return sorted(m.channel for m in servers.slack.messages)


async def test_each_tier_reaches_its_channel_and_mailbox(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TARIFF, TREASURIES, UNRELATED]))
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml")])

    await run_once(config)

    assert _channels(servers) == ["#crit", "#high"]
    crit = next(m for m in servers.slack.messages if m.channel == "#crit")
    assert crit.text is not None
    assert crit.text.startswith("<!here>")  # critical carries an @here
    assert "Tariffs on autos" in crit.text  # which rule fired
    assert "tariff" in crit.text  # which term matched
    assert "https://news.example.org/a/1" in crit.text
    assert crit.parse == "none"
    assert crit.headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
    high = next(m for m in servers.slack.messages if m.channel == "#high")
    assert high.text is not None
    assert "<!here>" not in high.text
    assert [list(mail.rcpt_tos) for mail in servers.smtp.messages] == [["desk@example.com"]]
    assert "US raises tariff" in str(servers.smtp.messages[0].message["Subject"])


async def test_an_item_alerts_once_also_after_a_restart(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TARIFF, TREASURIES]), etag='W/"v1"')
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml")])

    await run_once(config)
    await run_once(config)  # a new process would open the same database the same way

    assert _channels(servers) == ["#crit", "#high"]
    assert len(servers.smtp.messages) == 1
    second_request = servers.feeds.requests("/wire.xml")[1][1]
    assert second_request["If-None-Match"] == 'W/"v1"'  # the stored validator, verbatim


async def test_a_changed_feed_alerts_only_its_new_items(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TREASURIES]))
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml")])
    await run_once(config)

    servers.feeds.update_feed("/wire.xml", rss([TARIFF, TREASURIES]))
    await run_once(config)

    assert _channels(servers) == ["#crit", "#high"]


async def test_a_new_source_records_a_baseline_first(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TREASURIES]))
    sources = [source(servers, "/wire.xml", baseline=True)]
    config = write_config(tmp_path, servers, sources)

    await run_once(config)
    assert servers.slack.messages == []

    servers.feeds.update_feed("/wire.xml", rss([TARIFF, TREASURIES]))
    await run_once(config)
    assert _channels(servers) == ["#crit"]


async def test_slack_429_delays_but_does_not_lose(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TREASURIES]))
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml")])
    # more 429s than slack-sdk's own retry handler absorbs: the outbox must retry
    servers.slack.fail_next(4, status=429, retry_after=1)

    daemon = await run_once(config)

    assert _channels(servers) == ["#high"]
    outcomes = [a.outcome for a in servers.slack.attempts]
    assert outcomes.count("http:429") == 4
    assert outcomes[-1] == "ok"
    rows = await delivery_rows(daemon)
    assert [(r.state, r.attempts > 1) for r in rows] == [(DeliveryState.SENT, True)]


async def test_smtp_temporary_failure_is_retried(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TARIFF]))
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml")])
    servers.smtp.fail_next(2, code=451)

    await run_once(config)

    assert [list(mail.rcpt_tos) for mail in servers.smtp.messages] == [["desk@example.com"]]


async def test_a_permanent_slack_error_never_blocks_the_rest(
    tmp_path: Path, servers: Servers
) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TARIFF, TREASURIES]))
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml")])
    servers.slack.fail_channel("#crit", "channel_not_found")

    daemon = await run_once(config)

    assert _channels(servers) == ["#high"]
    assert len(servers.smtp.messages) == 1  # the email of the same alert still went
    rows = {(r.channel, r.target): r for r in await delivery_rows(daemon)}
    failed = rows[("slack", "#crit")]
    assert failed.state == DeliveryState.FAILED
    assert failed.attempts == 1  # permanent: not retried
    assert "channel_not_found" in (failed.last_error or "")


async def test_a_hostile_title_arrives_escaped(tmp_path: Path, servers: Servers) -> None:
    hostile = {
        **TARIFF,
        "title": "<!channel> tariff & <@U0ADMIN> <https://evil.example|click>",
    }
    servers.feeds.add_feed("/wire.xml", rss([hostile]))
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml")])

    await run_once(config)

    (message,) = servers.slack.messages
    # plain_text blocks (the header) are never parsed for mentions; every mrkdwn string is
    payload = (message.text or "") + "".join(_mrkdwn_strings(message.blocks))
    assert payload.count("<!here>") == 2  # our own mention, in text and section only
    assert "<!channel>" not in payload
    assert "<@U0ADMIN>" not in payload
    assert "<https://evil.example|click>" not in payload
    assert "&lt;!channel&gt; tariff &amp; &lt;@U0ADMIN&gt;" in (message.text or "")
    mail = servers.smtp.messages[0].message
    html_part = mail.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "&lt;!channel&gt; tariff &amp; &lt;@U0ADMIN&gt;" in html


def _mrkdwn_strings(node: Any) -> list[str]:
    if isinstance(node, list):
        return [s for child in node for s in _mrkdwn_strings(child)]
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            return [str(node.get("text", ""))]
        return [s for child in node.values() for s in _mrkdwn_strings(child)]
    return []


async def test_one_failing_source_leaves_the_others_working(
    tmp_path: Path, servers: Servers
) -> None:
    servers.feeds.add_feed("/good.xml", rss([TREASURIES]))
    servers.feeds.add_status("/broken.xml", 500)
    servers.feeds.add_feed("/html.xml", b"<html><body>Not a feed</body></html>", "text/html")
    sources = [
        source(servers, "/broken.xml", "broken"),
        source(servers, "/html.xml", "html"),
        source(servers, "/good.xml", "good"),
    ]
    config = write_config(tmp_path, servers, sources)
    before = datetime.now(UTC)

    daemon = await run_once(config)

    assert _channels(servers) == ["#high"]
    states = {s.source_id: s for s in list((await source_states(daemon)).values())}
    for broken in ("broken", "html"):
        assert states[broken].error_count == 1
        assert states[broken].next_check_at is not None
        assert states[broken].next_check_at > before  # backed off, not given up
        assert not states[broken].disabled
    assert "http_status" in (states["broken"].last_error or "")
    assert "parse" in (states["html"].last_error or "")
    assert states["good"].error_count == 0


async def test_gone_source_is_disabled_with_a_notice(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_status("/gone.xml", 410)
    config = write_config(tmp_path, servers, [source(servers, "/gone.xml", "gone")])

    daemon = await run_once(config)

    (state,) = list((await source_states(daemon)).values())
    assert state.disabled
