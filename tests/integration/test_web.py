"""The HTTP endpoint of a running daemon: health, readiness, metrics that move, the status
page, and the bearer token — against loopback feed, Slack and SMTP servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon_fixtures import Servers, write_config
from mastwatch.app import Daemon
from mastwatch.errors import ConfigError
from mastwatch.model import SourceState
from mastwatch.rules import compile_rules
from mastwatch.testing.feeds import rss
from mastwatch.web import SourceRow, StatusPage, render_status

WEB_TOKEN = "web-token-for-tests-0123456789"
NOW = datetime(2026, 12, 2, 9, tzinfo=UTC)
TARIFF = {"title": "New tariff on steel", "guid": "t-1", "link": "https://news.example.org/1"}
HOSTILE = {
    "title": '<script>alert("x")</script> tariff <b>bold</b>',
    "guid": "h-1",
    "link": "javascript:alert(1)",
}


@contextlib.asynccontextmanager
async def running(config: Path) -> AsyncIterator[tuple[Daemon, str]]:
    """The daemon's run_forever in this loop; yields it and its endpoint's base URL."""
    async with Daemon(config) as daemon:
        task = asyncio.create_task(daemon.run_forever())
        async with asyncio.timeout(10):
            while daemon.web is None or daemon.web.port is None or not daemon.is_scheduling():
                await asyncio.sleep(0.02)
        try:
            yield daemon, f"http://127.0.0.1:{daemon.web.port}"
        finally:
            daemon._request_stop("test")
            assert await asyncio.wait_for(task, 20) == 0


def sample(text: str, name: str, **labels: str) -> float:
    """A sample's value from an exposition, 0 when the series does not exist yet."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def get(url: str, **headers: str) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        return r.status, await r.text(), r.headers


async def wait_until(check: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_metrics_move_as_sources_are_polled_and_alerts_sent(
    tmp_path: Path, servers: Servers
) -> None:
    servers.feeds.add_feed("/wire.xml", rss([{"title": "Calm day", "guid": "c-1"}]))
    source = {"id": "wire", "url": servers.feeds.url("/wire.xml"), "interval": 1}
    config = write_config(tmp_path, servers, [source])
    async with running(config) as (_, base):
        status, body, _ = await get(f"{base}/healthz")
        assert status == 200
        assert '"ok"' in body
        status, body, _ = await get(f"{base}/readyz")
        assert status == 200
        assert '"store": true' in body
        assert '"scheduler": true' in body

        async def polled_once() -> bool:
            text = (await get(f"{base}/metrics"))[1]
            return sample(text, "mastwatch_polls_total", source="wire", outcome="ok") >= 1

        await wait_until(polled_once)
        before = (await get(f"{base}/metrics"))[1]
        assert sample(before, "mastwatch_alerts_total", tier="critical") == 0
        assert sample(before, "mastwatch_ruleset_info") == 2  # two rules loaded

        servers.feeds.update_feed("/wire.xml", rss([TARIFF, {"title": "Calm day", "guid": "c-1"}]))
        await servers.slack.wait_for(1, timeout=20)

        async def sent() -> bool:
            text = (await get(f"{base}/metrics"))[1]
            return sample(text, "mastwatch_deliveries_total", channel="email", outcome="sent") >= 1

        await wait_until(sent)
        after = (await get(f"{base}/metrics"))[1]

    polls = ("mastwatch_polls_total", {"source": "wire", "outcome": "ok"})
    assert sample(after, polls[0], **polls[1]) > sample(before, polls[0], **polls[1])
    assert sample(after, "mastwatch_items_new_total", source="wire") == 2
    assert sample(after, "mastwatch_alerts_total", tier="critical") == 1
    assert sample(after, "mastwatch_rule_matches_total", rule="trade-tariffs") == 1
    assert sample(after, "mastwatch_deliveries_total", channel="slack", outcome="sent") == 1
    assert sample(after, "mastwatch_delivery_latency_seconds_count", channel="slack") == 1
    assert sample(after, "mastwatch_poll_duration_seconds_count", source="wire") >= 2
    assert sample(after, "mastwatch_outbox_deliveries", state="sent") == 2
    assert sample(after, "mastwatch_source_last_success_timestamp_seconds", source="wire") > 0


async def test_failures_are_counted_by_class(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss([]))
    sources = [
        {"id": "wire", "url": servers.feeds.url("/wire.xml"), "interval": 1},
        {"id": "gone", "url": servers.feeds.url("/missing.xml"), "interval": 1},
    ]
    config = write_config(tmp_path, servers, sources)
    async with running(config) as (_, base):

        async def failed() -> bool:
            text = (await get(f"{base}/metrics"))[1]
            return sample(text, "mastwatch_poll_failures_total", source="gone") >= 1

        await wait_until(failed)
        text = (await get(f"{base}/metrics"))[1]
        page = (await get(f"{base}/status"))[1]
    assert sample(text, "mastwatch_poll_failures_total", failure_class="http_status") >= 1
    assert sample(text, "mastwatch_polls_total", source="gone", outcome="failed") >= 1
    assert sample(text, "mastwatch_source_errors_in_row", source="gone") >= 1
    assert "failing" in page
    assert "http_status" in page  # the last error is shown


async def test_a_failing_sources_notice_is_counted_in_the_messages_outbox(
    tmp_path: Path, servers: Servers
) -> None:
    source = {"id": "gone", "url": servers.feeds.url("/missing.xml"), "interval": 1}
    config = write_config(tmp_path, servers, [source])  # notices: console, after 3 failures
    async with running(config) as (_, base):
        first = (await get(f"{base}/metrics"))[1]

        async def notice_sent() -> bool:
            text = (await get(f"{base}/metrics"))[1]
            return sample(text, "mastwatch_outbox_messages", kind="notice", state="sent") >= 1

        await wait_until(notice_sent, timeout=30)
        text = (await get(f"{base}/metrics"))[1]
    # every series is there from the first scrape, zero included, so a rate never starts blind
    for kind in ("digest", "notice"):
        for state in ("pending", "sent", "failed"):
            assert f'mastwatch_outbox_messages{{kind="{kind}",state="{state}"}}' in first
    assert sample(first, "mastwatch_outbox_messages", kind="notice", state="sent") == 0
    assert sample(text, "mastwatch_outbox_messages", kind="notice", state="failed") == 0
    assert sample(text, "mastwatch_outbox_messages", kind="digest", state="pending") == 0


async def test_status_page_shows_sources_alerts_and_rules_escaped(
    tmp_path: Path, servers: Servers
) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TARIFF, HOSTILE]))
    source = {"id": "wire", "name": "Wire <EN>", "url": servers.feeds.url("/wire.xml")}
    config = write_config(tmp_path, servers, [source])
    async with running(config) as (_, base):
        await servers.slack.wait_for(2, timeout=20)
        status, page, headers = await get(f"{base}/status")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "<script>" not in page  # feed text is escaped, never markup
    assert "&lt;script&gt;" in page
    assert 'href="javascript:' not in page  # only http(s) links become links
    assert 'href="https://news.example.org/1"' in page
    assert "Wire &lt;EN&gt;" in page
    assert "trade-tariffs" in page
    assert "us-treasuries" in page  # the loaded rule set, with its hash
    assert "no silences (arrive with the alerting issue)" in page
    assert "slack #crit: sent" in page


async def test_token_guards_metrics_and_status_but_not_probes(
    tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTWATCH_WEB_TOKEN", WEB_TOKEN)
    servers.feeds.add_feed("/wire.xml", rss([]))
    config = write_config(
        tmp_path, servers, [{"id": "wire", "url": servers.feeds.url("/wire.xml")}]
    )
    async with running(config) as (_, base):
        assert (await get(f"{base}/healthz"))[0] == 200
        assert (await get(f"{base}/readyz"))[0] == 200
        assert (await get(f"{base}/metrics"))[0] == 401
        assert (await get(f"{base}/status", Authorization="Bearer wrong"))[0] == 401
        good = {"Authorization": f"Bearer {WEB_TOKEN}"}
        assert (await get(f"{base}/metrics", **good))[0] == 200
        assert (await get(f"{base}/status", **good))[0] == 200


async def test_readyz_is_503_once_stopping(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/wire.xml", rss([]))
    config = write_config(
        tmp_path, servers, [{"id": "wire", "url": servers.feeds.url("/wire.xml")}]
    )
    async with running(config) as (daemon, base):
        daemon.ruleset = daemon.ruleset.__class__(rules=(), content_hash="0" * 64)
        status, body, _ = await get(f"{base}/readyz")
    assert status == 503
    assert '"rules": false' in body


async def test_non_loopback_bind_without_token_is_refused(tmp_path: Path, servers: Servers) -> None:
    config = write_config(
        tmp_path,
        servers,
        [],
        web={"host": "0.0.0.0"},
    )
    with pytest.raises(ConfigError, match=r"web\.host.*reachable from other machines"):
        async with Daemon(config):
            pass


def test_the_status_page_names_a_page_sources_selectors_that_match_nothing() -> None:
    state = SourceState("mof-press", last_success_at=NOW, empty_runs=(("item", 3),))
    row = SourceRow("mof-press", "MOF press", True, state, next_poll=None)
    page = StatusPage(NOW, [row], {}, [], {}, compile_rules([]))
    assert "selectors matching nothing: item (3 polls)" in render_status(page)
