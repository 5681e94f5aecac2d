"""Polls that finish together are decided and committed in batches (``Pipeline``'s group
commit): the real pipeline on loopback feeds into a real SQLite store. A batch decides as
one poll after another would (one story for one piece of news, however many sources
report it together), and a poll whose rows cannot be stored fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mastwatch.app import fetch_settings
from mastwatch.config import Config, load_config
from mastwatch.model import DEFAULT_TIERS, Item, PollResult, SourceState
from mastwatch.pipeline import Pipeline, PollOutcome, _PollToCommit
from mastwatch.rules import load_rules
from mastwatch.sources.http import Fetcher, make_session
from mastwatch.store.sqlite import SQLiteStore
from mastwatch.testing.feeds import FeedServer, rss

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
SOURCES = 12
TITLE = "Japan trims its holdings of US Treasuries"
POISON = "feed-7"


class GatedStore(SQLiteStore):
    """The real store, with its first commit held until ``gate`` opens (so the test knows
    which polls gather behind it), and the rows of ``refused`` sources refused (as when a
    constraint or the disk refuses them), alone or in a batch; ``batches`` records the
    size of every batch asked for."""

    def __init__(self, path: Path, refused: frozenset[str] = frozenset()) -> None:
        super().__init__(path)
        self.refused = refused
        self.gate = asyncio.Event()
        self.batches: list[int] = []

    async def commit_poll(self, result: PollResult, now: datetime) -> int:
        await self._check([result])
        return await super().commit_poll(result, now)

    async def commit_polls(self, polls: Sequence[tuple[PollResult, datetime]]) -> list[int]:
        await self._check([result for result, _now in polls])
        return await super().commit_polls(polls)

    async def _check(self, results: Sequence[PollResult]) -> None:
        self.batches.append(len(results))
        await self.gate.wait()
        refused = [r.state.source_id for r in results if r.state.source_id in self.refused]
        if refused:
            raise OSError(f"cannot store the rows of {', '.join(refused)}")


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        for n in range(SOURCES):
            story = {"title": f"{TITLE} ({n})", "link": f"https://news{n}.example/a"}
            other = {"title": f"Weather outlook {n}", "link": f"https://news{n}.example/w"}
            if f"feed-{n}" == POISON:  # never the first poll to finish (that one is alone)
                server.add_slow(f"/{n}.xml", 0.2, rss([story, other]))
            else:
                server.add_feed(f"/{n}.xml", rss([story, other]))
        yield server


def _config(tmp_path: Path, feeds: FeedServer) -> Config:
    sources = "".join(
        f'[[sources]]\nid = "feed-{n}"\nkind = "feed"\nurl = "{feeds.url(f"/{n}.xml")}"\n'
        "allow_private = true\n"
        for n in range(SOURCES)
    )
    path = tmp_path / "config.toml"
    path.write_text(f"[schedule]\nbaseline_new_sources = false\n{sources}", encoding="utf-8")
    return load_config(path)


async def _poll_all_at_once(config: Config, store: GatedStore) -> list[PollOutcome | BaseException]:
    """Every source polled at once; the first poll to finish (or the first few, should
    they finish together) is committed first, and the gate opens once every other poll
    waits behind it."""
    ruleset = load_rules(ROOT / "rules", DEFAULT_TIERS)
    async with make_session(fetch_settings(config), allow_private=True) as session:
        pipeline = Pipeline(
            config=config,
            store=store,
            fetcher=Fetcher(session, fetch_settings(config)),
            rules=lambda: ruleset,
        )
        polls = asyncio.gather(
            *(pipeline.poll(source, NOW, force=True) for source in config.sources),
            return_exceptions=True,
        )
        queue = pipeline._commit_queue()
        while sum(store.batches) + len(queue._pending) < SOURCES:
            await asyncio.sleep(0.01)
        store.gate.set()
        return list(await polls)


async def test_polls_finishing_together_share_a_transaction_and_one_story(
    tmp_path: Path, feeds: FeedServer
) -> None:
    config = _config(tmp_path, feeds)
    async with GatedStore(tmp_path / "db.sqlite") as store:
        outcomes = await _poll_all_at_once(config, store)
        assert [o.status for o in outcomes if isinstance(o, PollOutcome)] == ["ok"] * SOURCES
        # the first poll to finish (or few), then all the rest together
        assert len(store.batches) == 2
        assert sum(store.batches) == SOURCES
        alerts = await store.alerts_since(NOW)
        stories = await store.stories_since(NOW)
        states = await store.list_source_states()
        recorded = [await store.alert_disposition(a.id) for a in alerts]
    assert sorted(a.source_id for a in alerts) == sorted(s.id for s in config.sources)
    # one piece of news, one story, every source on it: decided as one poll after another
    assert len(stories) == 1
    assert sorted(r.source_id for r in stories[0].reports) == sorted(a.source_id for a in alerts)
    assert None not in recorded
    assert {story_id for story_id, _disposition in filter(None, recorded)} == {stories[0].id}
    assert len(states) == SOURCES


async def test_a_poll_that_cannot_be_stored_fails_alone(tmp_path: Path, feeds: FeedServer) -> None:
    config = _config(tmp_path, feeds)
    async with GatedStore(tmp_path / "db.sqlite", refused=frozenset({POISON})) as store:
        outcomes = await _poll_all_at_once(config, store)
        # the batch holding it (the second: it is slow) was refused whole, then each of
        # its polls went alone
        first, second, *alone = store.batches
        assert first + second == SOURCES
        assert alone == [1] * second
        alerts = await store.alerts_since(NOW)
        [story] = await store.stories_since(NOW)
        unseen = await store.unseen_keys(POISON, ["guid:https://news7.example/a"])
    by_source = dict(zip((s.id for s in config.sources), outcomes, strict=True))
    failed = {sid for sid, o in by_source.items() if isinstance(o, BaseException)}
    assert failed == {POISON}
    assert "cannot store the rows of feed-7" in str(by_source[POISON])
    others = sorted(s.id for s in config.sources if s.id != POISON)
    assert sorted(a.source_id for a in alerts) == others
    assert sorted(r.source_id for r in story.reports) == others
    assert unseen == {"guid:https://news7.example/a"}  # its items stay new for the next poll


async def test_two_polls_of_one_source_in_a_batch_are_committed_one_by_one(
    tmp_path: Path, feeds: FeedServer
) -> None:
    # never in the daemon (a source's polls do not overlap), but a batch must not mix them:
    # their decisions could not be told apart by item
    config = _config(tmp_path, feeds)
    items = [Item(source_id="feed-0", key=f"guid:{n}", title=f"{TITLE} {n}") for n in range(2)]
    polls = [
        _PollToCommit((), SourceState("feed-0", etag=f'"{n}"'), (item,), NOW)
        for n, item in enumerate(items)
    ]
    async with (
        GatedStore(tmp_path / "db.sqlite") as store,
        make_session(fetch_settings(config), allow_private=True) as session,
    ):
        store.gate.set()
        pipeline = Pipeline(
            config=config,
            store=store,
            fetcher=Fetcher(session, fetch_settings(config)),
            rules=lambda: load_rules(ROOT / "rules", DEFAULT_TIERS),
        )
        assert await pipeline._commit_together(polls) == [0, 0]
        assert store.batches == [1, 1]
        assert (await store.get_source_state("feed-0")).etag == '"1"'  # the later poll last
        assert await store.unseen_keys("feed-0", ["guid:0", "guid:1"]) == set()
