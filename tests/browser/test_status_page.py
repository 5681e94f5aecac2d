"""The /status page in headless Chromium: it renders, shows what matters, and a screenshot
is kept under test-artifacts/ for a person to look at."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from daemon_fixtures import Servers, write_config
from mastwatch.app import Daemon
from mastwatch.testing.feeds import rss

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1400,1100",
)  # fmt: skip
ITEMS = [
    {"title": "US raises tariff on Japanese autos to 25%", "guid": "1",
     "link": "https://news.example.org/1"},
    {"title": "財務省、米国債の保有を縮小 (Japan trims US Treasuries)", "guid": "2",
     "link": "https://news.example.jp/2"},
    {"title": '<img src=x onerror="alert(1)"> tariff rumour', "guid": "3",
     "link": "javascript:alert(1)"},
]  # fmt: skip


@contextlib.asynccontextmanager
async def running(config: Path) -> AsyncIterator[str]:
    async with Daemon(config) as daemon:
        task = asyncio.create_task(daemon.run_forever())
        async with asyncio.timeout(10):
            while daemon.web is None or daemon.web.port is None:
                await asyncio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{daemon.web.port}/status"
        finally:
            daemon._request_stop("test")
            assert await asyncio.wait_for(task, 20) == 0


async def _page_shows(url: str, text: str, timeout: float = 20) -> None:
    """Wait until the page holds ``text`` (a fixed sleep was too short under load)."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while text not in await (await session.get(url)).text():
            await asyncio.sleep(0.1)


async def chromium_run(chromium: Path, profile: Path, *args: str) -> bytes:
    """Run headless Chromium without blocking the loop that serves the page."""
    proc = await asyncio.create_subprocess_exec(
        str(chromium), *FLAGS, f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(45):
        out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out


async def test_status_page_in_headless_chromium(
    tmp_path: Path, servers: Servers, chromium: Path, artifacts: Path
) -> None:
    servers.feeds.add_feed("/wire.xml", rss(ITEMS))
    sources = [
        {"id": "wire-en", "name": "Example wire", "url": servers.feeds.url("/wire.xml")},
        {"id": "ministry", "name": "Ministry releases", "url": servers.feeds.url("/gone.xml")},
    ]
    config = write_config(tmp_path, servers, sources)
    screenshot = artifacts / "status-page.png"
    screenshot.unlink(missing_ok=True)
    async with running(config) as url:
        await servers.slack.wait_for(3, timeout=20)
        await _page_shows(url, "failing")  # the missing feed's error is recorded too
        dom = (await chromium_run(chromium, tmp_path / "profile-dom", "--dump-dom", url)).decode()
        await chromium_run(chromium, tmp_path / "profile-shot", f"--screenshot={screenshot}", url)
    assert screenshot.stat().st_size > 10_000  # a real rendering, not a blank page
    assert "<h1>mastwatch</h1>" in dom
    for text in ("Example wire", "Ministry releases", "trade-tariffs", "us-treasuries",
                 "no silences (arrive with the alerting issue)", "slack #crit: sent"):  # fmt: skip
        assert text in dom
    assert "<img" not in dom  # the hostile title stayed text after the browser parsed it
    assert 'href="javascript:' not in dom
    assert "failing" in dom  # the missing feed is shown failing
