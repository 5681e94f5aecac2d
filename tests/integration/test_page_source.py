"""A page source end to end: a ministry list page served on loopback, polled by the real
pipeline into a real SQLite store; the operator notice for selectors that stop matching;
and `mastwatch inspect` / `dry-run` on the bundled sample page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mastwatch.app import Daemon, fetch_settings
from mastwatch.cli import main
from mastwatch.config import Config, load_config
from mastwatch.model import DEFAULT_TIERS, Alert
from mastwatch.pipeline import Pipeline, PollOutcome
from mastwatch.rules import load_rules
from mastwatch.sources.http import Fetcher, make_session
from mastwatch.store.sqlite import SQLiteStore
from mastwatch.testing.feeds import FeedServer

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "pages" / "ministry-press.html"
EXAMPLE_CONFIG = ROOT / "config.example.toml"
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def _config(tmp_path: Path, url: str, item_selector: str = "ul.news-list li.news-item") -> Config:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[schedule]
baseline_new_sources = false

[[sources]]
id = "mof-press"
kind = "page"
url = "{url}"
allow_private = true
[sources.page]
item = "{item_selector}"
title = "a"
link = "a"
date = ".date"
summary = ".summary"
""",
        encoding="utf-8",
    )
    return load_config(path)


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as feeds:
        feeds.add_feed("/press/index.html", SAMPLE.read_bytes(), content_type="text/html")
        yield feeds


async def _poll_times(
    config: Config, tmp_path: Path, times: int, start: int = 0
) -> tuple[list[PollOutcome], list[Alert]]:
    """``times`` polls, ten minutes apart from poll number ``start``, by a pipeline of its own
    on the store in ``tmp_path`` (a second call is a restart)."""
    ruleset = load_rules(ROOT / "rules", DEFAULT_TIERS)
    outcomes: list[PollOutcome] = []
    async with SQLiteStore(tmp_path / "db.sqlite") as store:
        session = make_session(fetch_settings(config), allow_private=True)
        async with session:
            pipeline = Pipeline(
                config=config,
                store=store,
                fetcher=Fetcher(session, fetch_settings(config)),
                rules=lambda: ruleset,
            )
            for poll in range(start, start + times):
                now = NOW + timedelta(minutes=10 * poll)
                outcomes.append(await pipeline.poll(config.sources[0], now, force=True))
        alerts = await store.alerts_since(NOW - timedelta(days=1))
    return outcomes, alerts


async def test_a_page_source_alerts_on_its_items_with_absolute_links(
    tmp_path: Path, server: FeedServer
) -> None:
    config = _config(tmp_path, server.url("/press/index.html"))

    (first, second), alerts = await _poll_times(config, tmp_path, 2)

    assert first.status == "ok"
    assert first.items_seen == 7
    assert second.new_items == 0
    by_rule = {(a.rule_id, a.link) for a in alerts}
    base = server.url("/press/2026/")
    assert ("tariffs", base + "03/0310_01.html") in by_rule
    assert ("g7", server.url("/press/0309_g7.html")) in by_rule
    assert not any("0302_fit" in (link or "") for rule, link in by_rule if rule == "tariffs")


@pytest.mark.parametrize("runs", [(3,), (2, 1)], ids=["one-pipeline", "restart-after-two"])
async def test_a_selector_that_stops_matching_raises_a_notice_after_three_polls(
    tmp_path: Path, server: FeedServer, runs: tuple[int, ...]
) -> None:
    config = _config(tmp_path, server.url("/press/index.html"), item_selector="div.redesigned")

    outcomes: list[PollOutcome] = []
    with capture_logs() as logs:
        for times in runs:  # each a pipeline of its own on the same store: a restart between
            outcomes += (await _poll_times(config, tmp_path, times, start=len(outcomes)))[0]

    # the unchanged page answers 304 after the first poll: those polls count too
    assert [o.status for o in outcomes] == ["ok", "not_modified", "not_modified"]
    notices = [e for e in logs if e["event"] == "page_selectors_empty"]
    assert [(n["source"], n["setting"], n["selector"]) for n in notices] == [
        ("mof-press", "item", "div.redesigned"),
        ("mof-press", "title", "a"),
        ("mof-press", "link", "a"),
        ("mof-press", "date", ".date"),
        ("mof-press", "summary", ".summary"),
    ]
    assert all(n["polls"] == 3 and n["log_level"] == "warning" for n in notices)
    assert [o.page_selectors for o in outcomes] == ["short", "short", "empty"]


async def test_three_once_runs_in_a_row_raise_the_selector_notice(
    tmp_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(tmp_path, server.url("/press/index.html"), item_selector="div.redesigned")
    path, db = tmp_path / "config.toml", tmp_path / "db.sqlite"
    stored = f'\n[store]\npath = "{db}"\n[rules]\ndir = "{ROOT / "rules"}"\n'
    path.write_text(path.read_text(encoding="utf-8") + stored, encoding="utf-8")

    async def notices_after_a_run() -> list[str]:
        async with Daemon(path) as daemon:  # each run a process of its own, as from cron
            assert await daemon.run_once() == 0
        async with SQLiteStore(db) as store:
            return [key for key, _, _ in await store.active_notices()]

    assert await notices_after_a_run() == []
    assert await notices_after_a_run() == []
    assert await notices_after_a_run() == ["selector_empty:mof-press"]
    # the CLI runs its own event loop: from a thread, beside this test's
    assert await asyncio.to_thread(main, ["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "selectors matching nothing: item (3 polls), title (3 polls)" in out


def test_inspect_lists_the_bundled_page_with_dates_and_absolute_links(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "inspect",
            "--config",
            str(EXAMPLE_CONFIG),
            "--source",
            "ministry-page",
            "--format",
            "jsonl",
        ]
    )

    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert err.strip() == "7 items"
    assert records[0]["title"] == "日米関税協議（第３回閣僚協議）の結果について"  # noqa: RUF001
    assert records[0]["published"] == "2026-03-09T15:00:00+00:00"
    assert all(r["link"].startswith("https://www.example.go.jp/press/20") for r in records)
    assert all(r["published"] for r in records)


def test_dry_run_on_a_configured_page_source(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "dry-run",
            "--config",
            str(EXAMPLE_CONFIG),
            "--source",
            "ministry-page",
            "--format",
            "jsonl",
        ]
    )

    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    fired = {(r["rule"], r["link"].rsplit("/", 1)[1]) for r in records}
    assert code == 0
    assert ("tariffs", "0310_01.html") in fired
    assert ("fx-intervention", "0227_intervention.html") in fired
    assert not any(name == "0302_fit.html" for rule, name in fired if rule == "tariffs")


def test_inspect_names_an_unknown_source(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["inspect", "--config", str(EXAMPLE_CONFIG), "--source", "nope"])

    assert code == 1
    assert "no source 'nope'" in capsys.readouterr().err
