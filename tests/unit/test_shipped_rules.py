"""The shipped rule pack (rules/*.yaml) and the bundled sample feeds (examples/feeds/).

The sample feeds are parsed here with feedparser (and the json module for JSON Feed, which
feedparser 6.0 does not read) rather than the project's own feed parser, so that these
expectations pin the rules and the sample text, nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import feedparser
import pytest

from mastwatch.model import DEFAULT_TIERS, Item
from mastwatch.rules import RuleSet, load_rules, match, run_inline_tests
from mastwatch.text import has_cjk, make_document

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
FEEDS = ROOT / "examples" / "feeds"

SHIPPED_TIERS = {
    "tariffs": "high",
    "treasuries": "high",
    "g7": "normal",
    "election-timing": "high",
    # the same topics, split by severity, and the desk's neighbouring topics
    "tariffs-autos-decision": "critical",
    "treasuries-sale-threat": "critical",
    "lower-house-dissolution": "critical",
    "trade-negotiations": "high",
    "fx-intervention": "high",
    "mar-a-lago-accord": "high",
    "jgb-yields": "digest",
}
# The four topics the evaluation sets are labelled with (../shared/eval/README.md).
TOPICS = frozenset({"tariffs", "treasuries", "g7", "election-timing"})
ARTICLE = ROOT.parent / "shared" / "corpus" / "observing-japan-lashing-himself-to-the-mast.txt"

# Every item of every sample feed, with the rules that must fire on it (and no others).
EXPECTED: dict[str, dict[str, set[str]]] = {
    "wire-en.xml": {
        "wire-2026-0310-001": {"tariffs"},
        "wire-2026-0310-002": {"treasuries"},
        "wire-2026-0309-003": {"g7"},
        "wire-2026-0309-004": {"election-timing"},
        "wire-2026-0308-005": {"tariffs"},
        "wire-2026-0308-006": set(),  # carmaker profit
        "wire-2026-0307-007": set(),  # feed-in tariff
        "wire-2026-0307-008": set(),  # chess club election
        "wire-2026-0306-009": set(),  # G20 alone
        "wire-2026-0306-010": set(),  # central bank rates
    },
    "ministry-ja.rdf": {
        "https://ministry.example.jp/news/2026/0310-01.html": {"tariffs"},
        "https://ministry.example.jp/news/2026/0310-02.html": {"treasuries"},
        "https://ministry.example.jp/news/2026/0309-01.html": {"g7"},
        "https://ministry.example.jp/news/2026/0309-02.html": {"election-timing"},
        "https://ministry.example.jp/news/2026/0306-01.html": set(),  # feed-in tariff (FIT)
        "https://ministry.example.jp/news/2026/0306-02.html": set(),  # staff association vote
        "https://ministry.example.jp/news/2026/0305-01.html": set(),  # G20 alone
        "https://ministry.example.jp/news/2026/0304-01.html": set(),  # JGB auction
    },
    "markets.atom": {
        "tag:markets.example.net,2026-03-10:bond-auction": {"treasuries"},
        "tag:markets.example.net,2026-03-09:eu-ebikes": {"tariffs"},
        "tag:markets.example.net,2026-03-09:yen": set(),
        "tag:markets.example.net,2026-03-08:secretary-visit": set(),  # Treasury Secretary alone
        "tag:markets.example.net,2026-03-07:kyoto-hotels": set(),  # hotel tariffs
        "tag:markets.example.net,2026-03-06:camera": set(),  # a camera named G7
    },
    "desk.json": {
        "desk-2026-0310-a": {"election-timing"},
        "desk-2026-0310-b": {"g7"},
        "desk-2026-0309-a": {"treasuries"},
        "desk-2026-0309-b": {"tariffs"},
        "desk-2026-0308-a": set(),  # union election
        "desk-2026-0308-b": set(),  # electricity tariff
    },
}


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_rules(RULES, DEFAULT_TIERS)


def test_shipped_rules_load_with_expected_ids_and_tiers(ruleset: RuleSet) -> None:
    assert {rule.id: rule.tier for rule in ruleset.rules} == SHIPPED_TIERS
    assert all(rule.enabled and rule.description for rule in ruleset.rules)
    assert sorted(path.name for path in RULES.glob("*.yaml")) == sorted(
        f"{rule_id}.yaml" for rule_id in SHIPPED_TIERS
    )


def test_shipped_inline_tests_all_pass(ruleset: RuleSet) -> None:
    assert run_inline_tests(ruleset) == []


@pytest.mark.parametrize("rule_id", sorted(SHIPPED_TIERS))
def test_each_shipped_rule_is_bilingual_and_tested_both_ways(
    ruleset: RuleSet, rule_id: str
) -> None:
    (rule,) = (rule for rule in ruleset.rules if rule.id == rule_id)
    expects = [test.expect for test in rule.tests]
    assert expects.count("match") >= 3
    assert expects.count("no-match") >= 2
    assert any(has_cjk(test.title + test.summary) for test in rule.tests)
    assert any(not has_cjk(test.title + test.summary) for test in rule.tests)
    # full-width digits and letters (U+FF01..U+FF5E) are how Japanese sources often type them
    assert any(
        any("\uff01" <= ch <= "\uff5e" for ch in test.title + test.summary) for test in rule.tests
    )


def _feedparser_items(path: Path) -> list[Item]:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    items = []
    for entry in parsed.entries:
        date = entry.get("published_parsed") or entry.get("updated_parsed")
        assert date.tm_year in (2025, 2026)
        content = " ".join(part.value for part in entry.get("content", []))
        items.append(
            Item(
                source_id=path.name,
                key=entry.get("id") or entry.link,
                title=entry.title,
                summary=entry.get("summary", ""),
                content=content,
            )
        )
    return items


def _json_feed_items(path: Path) -> list[Item]:
    feed: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    items = []
    for entry in feed["items"]:
        assert entry["date_published"][:4] in ("2025", "2026")
        items.append(
            Item(
                source_id=path.name,
                key=entry["id"],
                title=entry["title"],
                summary=entry.get("summary", ""),
                content=entry.get("content_html") or entry.get("content_text", ""),
            )
        )
    return items


def _items(name: str) -> list[Item]:
    path = FEEDS / name
    return _json_feed_items(path) if name.endswith(".json") else _feedparser_items(path)


def test_every_sample_feed_is_listed() -> None:
    assert sorted(path.name for path in FEEDS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_feed_items_raise_exactly_the_expected_alerts(ruleset: RuleSet, name: str) -> None:
    expected = EXPECTED[name]
    got = {
        item.key: {m.rule_id for m in match(ruleset, make_document(item))} & TOPICS
        for item in _items(name)
    }
    assert got == expected
    assert any(expected.values()), "each sample feed must raise at least one alert"
    assert not all(expected.values()), "each sample feed must carry items that do not alert"


def test_japanese_sample_feed_carries_full_width_characters() -> None:
    text = (FEEDS / "ministry-ja.rdf").read_text(encoding="utf-8")
    assert "\uff27\uff17" in text  # full-width G7
    assert any("\uff10" <= ch <= "\uff19" for ch in text)  # full-width digits


def _fired(ruleset: RuleSet, item: Item) -> set[str]:
    return {m.rule_id for m in match(ruleset, make_document(item))}


def test_the_real_article_raises_all_four_topics(ruleset: RuleSet) -> None:
    assert ARTICLE.is_file(), f"the shared corpus is missing: expected {ARTICLE}"
    title, subtitle, *body = ARTICLE.read_text(encoding="utf-8").splitlines()
    item = Item(
        source_id="observing-japan",
        key="k",
        title=title,
        summary=subtitle,
        content="\n".join(body),
    )

    fired = _fired(ruleset, item)

    assert fired >= TOPICS
    assert {"trade-negotiations", "treasuries-sale-threat"} <= fired


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (
            "US signs order cutting tariffs on Japanese cars to 15%",
            {"tariffs", "tariffs-autos-decision"},
        ),
        ("米国債売却を交渉カードに　与党内で声", {"treasuries", "treasuries-sale-threat"}),
        (
            "首相、衆院解散を表明　１０月２７日投開票",
            {"election-timing", "lower-house-dissolution"},
        ),
        ("Ｇ７首脳会議、６月中旬にカナダで開催へ", {"g7"}),
        ("Japan intervenes to prop up the yen", {"fx-intervention"}),
        (
            "Akazawa meets Lutnick for a third round of tariff talks",
            {"tariffs", "trade-negotiations"},
        ),
        ("新発10年国債利回り、1.5%に上昇", {"jgb-yields"}),
        ("Treasury Secretary Bessent to visit Tokyo next month", set()),
    ],
)
def test_a_decision_raises_the_critical_rule_next_to_the_topic(
    ruleset: RuleSet, title: str, expected: set[str]
) -> None:
    assert _fired(ruleset, Item(source_id="s", key="k", title=title)) == expected
