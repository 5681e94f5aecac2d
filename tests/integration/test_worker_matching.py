"""The pipeline takes the matches its parse workers made, and only those made with the
rules in force: the real pipeline, a real process pool, loopback feeds, a real store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mastwatch.app import fetch_settings
from mastwatch.config import Config, SourceConfig, load_config
from mastwatch.model import DEFAULT_TIERS, Match
from mastwatch.pipeline import Pipeline
from mastwatch.rules import RuleSet, load_rules
from mastwatch.sources.feed import ParsedFeed, parse_feed
from mastwatch.sources.http import Fetched, Fetcher, make_session
from mastwatch.sources.page import ParsedPage
from mastwatch.sources.parsing import parse_pool
from mastwatch.sources.worker_rules import ItemMatches, SharedRules
from mastwatch.store.sqlite import SQLiteStore
from mastwatch.testing.feeds import FeedServer, rss

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
TITLES = (
    "Japan trims its holdings of US Treasuries",
    "US to raise tariffs on Japanese autos to 25%",
    "Weather outlook for the weekend",
    "G7 finance ministers meet in Niigata",
)
FEEDS = 6


def _body(n: int) -> bytes:
    return rss(
        {"title": f"{title} ({n})", "link": f"https://news{n}.example/{k}"}
        for k, title in enumerate(TITLES)
    )


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        for n in range(FEEDS):
            server.add_feed(f"/{n}.xml", _body(n))
        yield server


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_rules(ROOT / "rules", DEFAULT_TIERS)


@pytest.fixture(scope="module")
def pool() -> Iterator[Executor]:
    """The workers themselves (not the daemon's threads-until-started wrapper)."""
    executor = parse_pool(2)
    yield executor
    executor.shutdown(wait=True)


@dataclass
class WatchedPipeline(Pipeline):
    """The real pipeline, noting whether each poll came with its workers' matches."""

    premade: list[ItemMatches | None] = field(default_factory=list)

    async def _parse(
        self, source: SourceConfig, fetched: Fetched, *, matching: bool
    ) -> tuple[ParsedFeed | ParsedPage, ItemMatches | None]:
        parsed, premade = await super()._parse(source, fetched, matching=matching)
        self.premade.append(premade)
        return parsed, premade


def _config(tmp_path: Path, feeds: FeedServer, *, baseline: bool = False) -> Config:
    sources = "".join(
        f'[[sources]]\nid = "feed-{n}"\nkind = "feed"\nurl = "{feeds.url(f"/{n}.xml")}"\n'
        'allow_private = true\ntags = ["japan"]\n'
        for n in range(FEEDS)
    )
    path = tmp_path / "config.toml"
    schedule = f"[schedule]\nbaseline_new_sources = {str(baseline).lower()}\n"
    path.write_text(schedule + sources, encoding="utf-8")
    return load_config(path)


@contextlib.asynccontextmanager
async def _pipeline(
    tmp_path: Path,
    config: Config,
    ruleset: RuleSet,
    executor: Executor | None,
    shared: SharedRules | None,
) -> AsyncIterator[tuple[WatchedPipeline, SQLiteStore]]:
    """The real pipeline on a real store, fetching from the loopback feeds."""
    async with (
        SQLiteStore(tmp_path / "db.sqlite") as store,
        make_session(fetch_settings(config), allow_private=True) as session,
    ):
        pipeline = WatchedPipeline(
            config=config,
            store=store,
            fetcher=Fetcher(session, fetch_settings(config)),
            rules=lambda: ruleset,
            executor=executor,
            shared_rules=shared,
        )
        yield pipeline, store


async def _alerts(
    tmp_path: Path,
    config: Config,
    ruleset: RuleSet,
    executor: Executor | None,
    between: Callable[[], None] | None = None,
) -> tuple[set[tuple[str, str, str]], list[ItemMatches | None]]:
    """(source, item, rule) of every alert that polling each source records (twice, with
    ``between`` called between the rounds, if one is given), and the matches each poll
    brought from its parse worker."""
    shared = SharedRules() if executor is not None else None
    try:
        async with _pipeline(tmp_path, config, ruleset, executor, shared) as (pipeline, store):
            for source in config.sources:
                assert (await pipeline.poll(source, NOW, force=True)).status == "ok"
            if between is not None:
                between()
                for source in config.sources:
                    outcome = await pipeline.poll(source, NOW, force=True)
                    assert outcome.status in {"ok", "not_modified"}
            alerts = await store.alerts_since(NOW)
    finally:
        if shared is not None:
            shared.close()
    return {(a.source_id, a.item_key, a.rule_id) for a in alerts}, pipeline.premade


async def test_polls_through_the_workers_raise_the_alerts_the_loop_would(
    tmp_path: Path, feeds: FeedServer, ruleset: RuleSet, pool: Executor
) -> None:
    config = _config(tmp_path, feeds)
    (tmp_path / "workers").mkdir()
    (tmp_path / "loop").mkdir()
    by_workers, premade = await _alerts(tmp_path / "workers", config, ruleset, pool)
    in_the_loop, none_made = await _alerts(tmp_path / "loop", config, ruleset, None)
    assert by_workers == in_the_loop
    assert len(premade) == FEEDS and None not in premade  # every poll matched in a worker
    assert none_made == [None] * FEEDS
    # the shipped rules fire on the Treasuries, tariff and G7 items of every feed
    assert {source for source, _item, _rule in by_workers} == {s.id for s in config.sources}
    assert len({item for _source, item, _rule in by_workers}) == 3 * FEEDS


async def test_a_baseline_poll_asks_its_worker_for_no_matches(
    tmp_path: Path, feeds: FeedServer, ruleset: RuleSet, pool: Executor
) -> None:
    config = _config(tmp_path, feeds, baseline=True)

    def news_on_feed_0() -> None:
        fresh = {"title": "US tariffs on Japanese steel doubled", "link": "https://x.example/s"}
        items = [
            fresh,
            *(
                {"title": title, "link": f"https://news0.example/{k}"}
                for k, title in enumerate(TITLES)
            ),
        ]
        feeds.update_feed("/0.xml", rss(items))

    alerts, premade = await _alerts(tmp_path, config, ruleset, pool, news_on_feed_0)
    first_round, second_round = premade[:FEEDS], premade[FEEDS:]
    assert first_round == [None] * FEEDS  # the baseline round: nothing matched
    # the second: only feed-0 changed (the others answered 304), and its worker matched
    # its items, the new one among them
    assert len(second_round) == 1 and second_round[0] is not None
    assert "link:https://x.example/s" in second_round[0].by_item
    assert {(source, item) for source, item, _rule in alerts} == {
        ("feed-0", "link:https://x.example/s")
    }


async def test_matches_made_with_the_rules_before_a_reload_are_made_again(
    tmp_path: Path, feeds: FeedServer, ruleset: RuleSet
) -> None:
    config = _config(tmp_path, feeds)
    source = config.sources[0]
    shared = SharedRules()
    try:
        async with _pipeline(tmp_path, config, ruleset, None, shared) as (pipeline, _store):
            ref = shared.ref(ruleset)
            assert ref is not None
            items = parse_feed(_body(0), source_id=source.id).items
            planted = Match("planted", "Planted", "high", ("x",))
            by_item = {item.key: (planted,) for item in items}
            prints = {item.key: (1, 2, 3) for item in items}

            made = ItemMatches(ref.key, by_item, prints)
            current = pipeline._alerts_for(source, items, NOW, made)
            stale = pipeline._alerts_for(source, items, NOW, ItemMatches("before", by_item, prints))
            own = pipeline._alerts_for(source, items, NOW, None)
    finally:
        shared.close()
    assert {c.alert.rule_id for c in current} == {"planted"}  # the workers' are taken
    assert {c.title_signature for c in current} == {(1, 2, 3)}
    assert {c.title_signature for c in stale} == {None}  # made by the policy, from the title
    assert [(c.alert.item_key, c.alert.rule_id) for c in stale] == [
        (c.alert.item_key, c.alert.rule_id) for c in own
    ]
    assert own and "planted" not in {c.alert.rule_id for c in own}
