"""Parse workers match what they parse (``sources.worker_rules``): the rule set reaches
them through a file the daemon writes once per set, and whatever they cannot do the
daemon does itself. The workers here are real processes from the daemon's own pool."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mastwatch.fingerprint import signature
from mastwatch.model import Match
from mastwatch.rules import MatchNode, Rule, RuleSet, compile_rules, match
from mastwatch.sources.feed import ParsedFeed, parse_feed
from mastwatch.sources.page import ParsedPage
from mastwatch.sources.parsing import ParseAndMatch, ParseCall, parse_pool
from mastwatch.sources.worker_rules import ItemMatches, RulesRef, SharedRules, match_in_worker
from mastwatch.testing.feeds import rss
from mastwatch.text import make_document

TAGS = ("japan",)
BODY = rss(
    [
        {"title": "US raises tariffs on Japanese cars", "guid": "1"},
        {"title": "Weather: a sunny weekend", "guid": "2"},
        {"title": "Japan trims its US Treasury holdings", "guid": "3"},
    ]
)


def rule(rule_id: str, *terms: str, source_tags: tuple[str, ...] = ()) -> Rule:
    return Rule(
        id=rule_id,
        title=f"Rule {rule_id}",
        tier="high",
        match=MatchNode(op="any", children=terms),
        source_tags=source_tags,
    )


TARIFFS = compile_rules([rule("tariffs", "tariffs"), rule("jp", "treasury", source_tags=TAGS)])
WEATHER = compile_rules([rule("weather", "weather")])


@pytest.fixture
def shared() -> Iterator[SharedRules]:
    rules = SharedRules()
    yield rules
    rules.close()


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """One worker, so that every call meets the rules the calls before it left there."""
    executor = parse_pool(1)
    yield executor
    executor.shutdown(wait=True)


def expected(ruleset: RuleSet, parsed: ParsedFeed | ParsedPage) -> dict[str, tuple[Match, ...]]:
    """What the daemon itself makes of the items (those without a match left out)."""
    found = {item.key: tuple(match(ruleset, make_document(item, TAGS))) for item in parsed.items}
    return {key: matches for key, matches in found.items() if matches}


def in_worker(
    pool: ProcessPoolExecutor, ref: RulesRef
) -> tuple[ParsedFeed | ParsedPage, ItemMatches | None]:
    call = ParseAndMatch(ParseCall("wire", BODY, "https://example.org/feed"), ref, TAGS)
    return pool.submit(call).result(timeout=60)


def test_each_rule_set_is_written_once_and_the_last_two_are_kept(shared: SharedRules) -> None:
    first = shared.ref(TARIFFS)
    assert first is not None
    assert shared.ref(TARIFFS) is first  # the same set: no second file
    assert oct(Path(first.path).parent.stat().st_mode & 0o777) == "0o700"
    second = shared.ref(WEATHER)
    assert second is not None and second.key != first.key
    assert Path(first.path).exists()  # a call made before the reload may still need it
    third = shared.ref(compile_rules([rule("g7", "g7")]))
    assert third is not None
    assert not Path(first.path).exists()
    assert Path(second.path).exists() and Path(third.path).exists()
    directory = Path(third.path).parent
    shared.close()
    assert not directory.exists()


def test_rules_that_cannot_be_written_leave_matching_to_the_daemon_said_once(
    shared: SharedRules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-directory"))
    with capture_logs() as logs:
        assert shared.ref(TARIFFS) is None
        assert shared.ref(TARIFFS) is None  # not tried again on every poll
    [warning] = [entry for entry in logs if entry["event"] == "worker_rules_unavailable"]
    assert warning["log_level"] == "warning"
    assert "no-such-directory" in warning["error"]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ref = shared.ref(WEATHER)  # the next rule set (a reload) tries again
    assert ref is not None and Path(ref.path).exists()


def test_the_same_rules_loaded_again_keep_their_key(shared: SharedRules) -> None:
    again = compile_rules(TARIFFS.rules)
    first, second = shared.ref(TARIFFS), shared.ref(again)
    assert first is not None and second is not None
    assert first.key == second.key
    reordered = shared.ref(compile_rules(tuple(reversed(TARIFFS.rules))))
    assert reordered is not None and reordered.key != first.key  # order decides ties


def test_a_worker_matches_what_it_parses_as_the_daemon_would(
    pool: ProcessPoolExecutor, shared: SharedRules
) -> None:
    ref = shared.ref(TARIFFS)
    assert ref is not None
    parsed, matched = in_worker(pool, ref)
    assert parsed == parse_feed(BODY, source_id="wire", base_url="https://example.org/feed")
    assert matched is not None
    assert matched.rules_key == ref.key
    assert matched.by_item == expected(TARIFFS, parsed)
    assert set(matched.by_item) == {"guid:1", "guid:3"}  # the tag-filtered rule included
    assert matched.title_signatures == {  # for story finding, of matched items only
        item.key: signature(item.title) for item in parsed.items if item.key in matched.by_item
    }


def test_a_worker_follows_a_reload(pool: ProcessPoolExecutor, shared: SharedRules) -> None:
    before, after = shared.ref(TARIFFS), shared.ref(WEATHER)
    assert before is not None and after is not None
    in_worker(pool, before)
    parsed, matched = in_worker(pool, after)
    assert matched is not None and matched.rules_key == after.key
    assert matched.by_item == expected(WEATHER, parsed)
    assert set(matched.by_item) == {"guid:2"}


def test_a_worker_without_its_rules_still_parses_and_leaves_matching_to_the_daemon(
    pool: ProcessPoolExecutor, tmp_path: Path
) -> None:
    missing = RulesRef("no-such-rules", str(tmp_path / "gone.pickle"))
    parsed, matched = in_worker(pool, missing)
    assert len(parsed.items) == 3
    assert matched is None
    # a set that could not be loaded is not tried again with every body (a compile may
    # take seconds), even should its file turn up
    Path(missing.path).write_bytes(pickle.dumps(TARIFFS.rules))
    assert in_worker(pool, missing)[1] is None
    garbage = tmp_path / "garbage.pickle"
    garbage.write_bytes(b"not a pickle")
    parsed, matched = in_worker(pool, RulesRef("garbage", str(garbage)))
    assert len(parsed.items) == 3
    assert matched is None


def test_outside_a_worker_nothing_is_matched(shared: SharedRules) -> None:
    """A call run in a thread of the daemon (while the pool starts, or with no pool)
    leaves matching to the daemon, which holds the compiled set already."""
    ref = shared.ref(TARIFFS)
    assert ref is not None
    items = parse_feed(BODY, source_id="wire").items
    assert match_in_worker(ref, items, TAGS) is None
    call = ParseAndMatch(ParseCall("wire", BODY, "https://example.org/feed"), ref, TAGS)
    parsed, matched = call()
    assert matched is None and len(parsed.items) == 3
