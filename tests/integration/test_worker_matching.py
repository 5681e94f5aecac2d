"""The pipeline takes the matches its parse workers made, and only those made with the
rules in force: the real pipeline, a real process pool, loopback feeds, a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mastwatch.app import fetch_settings
from mastwatch.config import Config, SourceConfig, load_config
from mastwatch.model import DEFAULT_TIERS, Item, Match
from mastwatch.pipeline import Pipeline
from mastwatch.policy.decide import Candidate
from mastwatch.rules import RuleSet, load_rules
from mastwatch.sources.feed import parse_feed
from mastwatch.sources.http import Fetcher, make_session
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

    def _alerts_for(
        self,
        source: SourceConfig,
        items: tuple[Item, ...],
        now: datetime,
        premade: ItemMatches | None = None,
    ) -> tuple[Candidate, ...]:
        self.premade.append(premade)
        return super()._alerts_for(source, items, now, premade)


def _config(tmp_path: Path, feeds: FeedServer) -> Config:
    sources = "".join(
        f'[[sources]]\nid = "feed-{n}"\nkind = "feed"\nurl = "{feeds.url(f"/{n}.xml")}"\n'
        'allow_private = true\ntags = ["japan"]\n'
        for n in range(FEEDS)
    )
    path = tmp_path / "config.toml"
    path.write_text(f"[schedule]\nbaseline_new_sources = false\n{sources}", encoding="utf-8")
    return load_config(path)


async def _alerts(
    tmp_path: Path, config: Config, ruleset: RuleSet, executor: Executor | None
) -> tuple[set[tuple[str, str, str]], list[ItemMatches | None]]:
    """(source, item, rule) of every alert one poll of each source records, and the
    matches each poll brought from its parse worker."""
    shared = SharedRules() if executor is not None else None
    try:
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
            for source in config.sources:
                assert (await pipeline.poll(source, NOW, force=True)).status == "ok"
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


async def test_matches_made_with_the_rules_before_a_reload_are_made_again(
    tmp_path: Path, feeds: FeedServer, ruleset: RuleSet
) -> None:
    config = _config(tmp_path, feeds)
    source = config.sources[0]
    shared = SharedRules()
    try:
        async with (
            SQLiteStore(tmp_path / "db.sqlite") as store,
            make_session(fetch_settings(config), allow_private=True) as session,
        ):
            pipeline = Pipeline(
                config=config,
                store=store,
                fetcher=Fetcher(session, fetch_settings(config)),
                rules=lambda: ruleset,
                shared_rules=shared,
            )
            ref = shared.ref(ruleset)
            assert ref is not None
            items = parse_feed(_body(0), source_id=source.id).items
            planted = Match("planted", "Planted", "high", ("x",))
            by_item = {item.key: (planted,) for item in items}

            current = pipeline._alerts_for(source, items, NOW, ItemMatches(ref.key, by_item))
            stale = pipeline._alerts_for(source, items, NOW, ItemMatches("before", by_item))
            own = pipeline._alerts_for(source, items, NOW, None)
    finally:
        shared.close()
    assert {c.alert.rule_id for c in current} == {"planted"}  # the workers' are taken
    assert [(c.alert.item_key, c.alert.rule_id) for c in stale] == [
        (c.alert.item_key, c.alert.rule_id) for c in own
    ]
    assert own and "planted" not in {c.alert.rule_id for c in own}
