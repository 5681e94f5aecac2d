"""The rule language beyond plain terms: proximity, fields, exact case, regexes, built-in
patterns, named lists, source and language filters, evidence, and their error messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mastwatch.errors import RuleError
from mastwatch.model import DEFAULT_TIERS, Evidence, Item
from mastwatch.rules import (
    MatchNode,
    Rule,
    RuleSet,
    Term,
    builtins,
    compile_rules,
    load_rules,
    match,
    run_inline_tests,
)
from mastwatch.rules.builtins import BUILTIN_NEEDLES, BUILTIN_PATTERNS
from mastwatch.rules.compile import TermSpec
from mastwatch.rules.regex import required_literal
from mastwatch.text import make_document, normalize


def load(tmp_path: Path, text: str, lists: str | None = None) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    if lists is not None:
        (tmp_path / "lists").mkdir(exist_ok=True)
        (tmp_path / "lists" / "words.yaml").write_text(textwrap.dedent(lists), encoding="utf-8")
    return load_rules(tmp_path, DEFAULT_TIERS)


def problems(tmp_path: Path, text: str, lists: str | None = None) -> list[str]:
    with pytest.raises(RuleError) as caught:
        load(tmp_path, text, lists)
    prefix = f"{tmp_path}/"
    return [problem.removeprefix(prefix) for problem in caught.value.problems]


def fired(
    ruleset: RuleSet,
    title: str,
    summary: str = "",
    *,
    source: str = "wire",
    source_tags: tuple[str, ...] = (),
    link: str | None = None,
    tags: tuple[str, ...] = (),
) -> list[str]:
    item = Item(source, "k", title, summary=summary, link=link, tags=tags)
    return [m.rule_id for m in match(ruleset, make_document(item, source_tags))]


def one_rule(match_yaml: str, extra: str = "") -> str:
    return f"id: r\ntitle: R\ntier: high\n{extra}match: {match_yaml}\n"


ELECTION_NEAR_DATE = one_rule('{near: {terms: [election, "@date"], within: 15}}')


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Upper house election expected on 20 July", ["r"]),
        ("July 20 is the day of the general election", ["r"]),
        ("The election, the party leader said on Tuesday after a long meeting of the ruling"
         " coalition's senior members and their advisers, will come on July 20", []),
        ("Election talk grows", []),
    ],
)  # fmt: skip
def test_election_within_fifteen_words_of_a_date_is_one_line(
    tmp_path: Path, title: str, expected: list[str]
) -> None:
    assert fired(load(tmp_path, ELECTION_NEAR_DATE), title) == expected


def test_near_counts_characters_in_japanese(tmp_path: Path) -> None:
    ruleset = load(tmp_path, one_rule("{near: {terms: [参院選, '@date'], within: 3}}"))
    assert fired(ruleset, "参院選は7月20日投開票") == ["r"]  # one character apart (は)
    assert fired(ruleset, "7月20日の参院選") == ["r"]  # either order
    assert fired(ruleset, "7月20日に投開票の参院選") == []  # に投開票の: five characters
    assert fired(ruleset, "参院選について与野党が協議、7月20日") == []


def test_near_does_not_join_two_fields(tmp_path: Path) -> None:
    ruleset = load(tmp_path, one_rule("{near: {terms: [election, '@date'], within: 5}}"))
    assert fired(ruleset, "Election looms", "Voting on 20 July") == []


@pytest.mark.parametrize(
    ("name", "text", "found"),
    [
        ("@date", "７月２０日", "7月20日"),
        ("@date", "2025年7月20日に", "2025年7月20日"),
        ("@date", "令和7年7月20日", "令和7年7月20日"),
        ("@date", "expected on 20 July", "20 july"),
        ("@date", "set for July 20, 2025", "july 20, 2025"),
        ("@date", "on Oct. 26", "oct. 26"),
        ("@money", "Japan held USD 1.27tn of", "usd 1.27tn"),
        ("@money", "a $40 billion sale", "$40 billion"),
        ("@money", "1兆2700億ドルを保有", "1兆2700億ドル"),
        ("@percent", "a 25% tariff", "25%"),
        ("@percent", "税率は２５％", "25%"),  # noqa: RUF001
        ("@percent", "up 3.5 percent", "3.5 percent"),
    ],
)
def test_builtin_patterns(name: str, text: str, found: str) -> None:
    assert [m.group() for m in BUILTIN_PATTERNS[name].finditer(normalize(text))] == [found]


@pytest.mark.parametrize(
    ("name", "text"),
    [("@date", "the mayor said"), ("@date", "20 items"), ("@money", "1.27tn"), ("@percent", "25")],
)
def test_builtin_patterns_do_not_match_lookalikes(name: str, text: str) -> None:
    assert BUILTIN_PATTERNS[name].search(normalize(text)) is None


def test_field_scoping(tmp_path: Path) -> None:
    ruleset = load(
        tmp_path,
        """
        - id: title-only
          title: T
          tier: high
          match: {any: [tariff], in: [title]}
        - id: link
          title: L
          tier: high
          match: {all: [{any: [tariff*], in: link}, {any: [japan]}]}
        - id: tags-or-source
          title: S
          tier: high
          match: {any: [{any: [trade], in: [tags]}, {any: [ministry], in: [source]}]}
        """,
    )
    assert fired(ruleset, "Tariff news") == ["title-only"]
    assert fired(ruleset, "News", "about a tariff") == []
    assert fired(ruleset, "Japan news", link="https://x.example/tariffs/1") == ["link"]
    assert fired(ruleset, "News", tags=("Trade",)) == ["tags-or-source"]
    assert fired(ruleset, "News", source="ministry") == ["tags-or-source"]
    assert fired(ruleset, "Trade news", source="wire") == []  # default fields: not tags/source


def test_exact_case_and_prefix(tmp_path: Path) -> None:
    ruleset = load(tmp_path, one_rule("{any: [{exact: US}, {exact: 'Fed*'}]}"))
    assert fired(ruleset, "US yields rise") == ["r"]
    assert fired(ruleset, "ＵＳ yields rise") == ["r"]  # noqa: RUF001  # full-width equals ASCII
    assert fired(ruleset, "Let us see") == []
    assert fired(ruleset, "Große Straße: US yields") == ["r"]  # ß folds to two characters
    assert fired(ruleset, "Große Straße: us yields") == []
    assert fired(ruleset, "Federal Reserve holds") == ["r"]
    assert fired(ruleset, "federal budget") == []


def test_regex_terms_run_on_re2(tmp_path: Path) -> None:
    ruleset = load(tmp_path, one_rule(r"{any: [{regex: 'section (232|301)'}, {regex: '(a+)+b'}]}"))
    assert fired(ruleset, "Section 301 probe") == ["r"]
    assert fired(ruleset, "Section 230 debate") == []
    # the textbook catastrophic-backtracking input: linear on RE2, so this simply returns
    assert fired(ruleset, "a" * 50_000 + "c") == []


def test_source_and_language_filters(tmp_path: Path) -> None:
    ruleset = load(
        tmp_path,
        """
        - id: from-ministry
          title: M
          tier: high
          sources: [ministry]
          source_tags: [japan]
          match: {any: [tariff, 関税]}
        - id: japanese-only
          title: J
          tier: high
          languages: [ja]
          match: {any: [g7]}
        """,
    )
    assert fired(ruleset, "関税", source="ministry") == ["from-ministry"]
    assert fired(ruleset, "tariff", source="wire", source_tags=("japan",)) == ["from-ministry"]
    assert fired(ruleset, "tariff", source="wire", source_tags=("us",)) == []
    assert fired(ruleset, "Ｇ７サミット") == ["japanese-only"]
    assert fired(ruleset, "G7 summit") == []


def test_named_lists(tmp_path: Path) -> None:
    lists = """
    tariff-words: [tariff*, 関税, {exact: WTO}]
    """
    ruleset = load(
        tmp_path,
        one_rule("{all: [{list: tariff-words}, {none: [feed-in tariff]}]}"),
        lists,
    )
    (found,) = match(ruleset, make_document(Item("wire", "k", "WTO rules on 関税")))
    assert found.matched == ("関税", "WTO")
    assert fired(ruleset, "Feed-in tariff cut") == []
    assert fired(ruleset, "wto rules") == []


def test_evidence_has_fields_and_spans(tmp_path: Path) -> None:
    ruleset = load(
        tmp_path, one_rule("{all: [tariff*, {near: {terms: [yen, '@percent'], within: 2}}]}")
    )
    item = Item("wire", "k", "New tariffs", summary="The yen fell 2% on Monday")
    (found,) = match(ruleset, make_document(item))
    assert found.matched == ("tariff*", "yen", "@percent")
    assert found.evidence == (
        Evidence("tariff*", "title", 4, 10),
        Evidence("yen", "summary", 4, 7),
        Evidence("@percent", "summary", 13, 15),
    )


def test_inline_tests_with_source_tags_and_tier(tmp_path: Path) -> None:
    ruleset = load(
        tmp_path,
        """
        id: r
        title: R
        tier: high
        source_tags: [japan]
        match: {any: [tariff]}
        tests:
          - {title: tariff news, source_tags: [japan], expect: match, tier: high}
          - {title: tariff news, expect: no-match}
          - {title: tariff news, source_tags: [japan], expect: match, tier: critical}
        """,
    )
    assert run_inline_tests(ruleset) == [
        f"{tmp_path}/rules.yaml:9: rule 'r' test 3: expected tier critical, got high"
    ]


def test_language_errors_are_precise_and_all_reported(tmp_path: Path) -> None:
    text = """
    id: r
    title: R
    tier: high
    languages: [fr]
    match:
      all:
        - near: {terms: [yen], within: 3}
        - near: {terms: [a, b], within: many}
        - near: {terms: [a, b], within: 2, inn: [title]}
        - any: [{regex: '(unclosed'}, {regex: '(?<=x)y'}, '@dates', {list: tarif-words}]
        - any: [x]
          in: [titel]
        - any: [{exact: US, regex: x}]
    """
    assert problems(tmp_path, text, "tariff-words: [tariff]\n") == [
        "rules.yaml:4:12: rule 'r': unknown language 'fr'; languages: en, ja",
        "rules.yaml:7:21: rule 'r': 'near' needs 'terms': a list of at least two terms",
        "rules.yaml:8:37: rule 'r': 'near' needs 'within': a whole number of words from 0 to"
        " 1000, not 'many'",
        "rules.yaml:9:40: rule 'r': unknown key 'inn' in near; did you mean 'in'?",
        "rules.yaml:10:21: rule 'r': regex '(unclosed' does not compile: missing ): (unclosed"
        " (RE2 syntax: no lookaround, no backreferences)",
        "rules.yaml:10:43: rule 'r': regex '(?<=x)y' does not compile: invalid perl operator:"
        " (?<= (RE2 syntax: no lookaround, no backreferences)",
        "rules.yaml:10:55: rule 'r': unknown pattern '@dates'; did you mean '@date'?",
        "rules.yaml:10:72: rule 'r': no term list named 'tarif-words'; did you mean"
        " 'tariff-words'?; lists: tariff-words",
        "rules.yaml:12:11: rule 'r': unknown field 'titel'; fields: title, summary, content,"
        " source, tags, link; did you mean 'title'?",
        "rules.yaml:13:13: rule 'r': a term mapping holds exactly one of exact, regex, list",
    ]


def test_term_list_file_errors(tmp_path: Path) -> None:
    lists = """
    Bad Name: [x]
    empty: []
    words: [ok, {regex: '('}, 7]
    """
    found = problems(tmp_path, one_rule("{any: [x]}"), lists)
    assert found == [
        "lists/words.yaml:2:1: list 'Bad Name': invalid list name: use lowercase letters,"
        " digits, '.', '_', '-'",
        "lists/words.yaml:3:1: list 'empty': a term list is a non-empty list of terms,"
        " not an empty list",
        "lists/words.yaml:4:21: list 'words': regex '(' does not compile: missing ): ("
        " (RE2 syntax: no lookaround, no backreferences)",
        "lists/words.yaml:4:27: list 'words': a term must be a string (quote numbers) or a"
        " nested mapping, not a number",
    ]


def test_regex_matching_everything_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, one_rule("{any: [{regex: 'x*'}]}")) == [
        "rules.yaml:4:23: rule 'r': regex 'x*' matches the empty string, so it would match"
        " every item"
    ]


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [
        ("section (232|301)", "section "),
        (r"(?:japan|us) tariffs?", " tariff"),
        ("(abc)+d", "abc"),
        (r"Tariff\d", "tariff"),
        ("(abc)*d", None),  # the group may be absent
        ("foo|bar", None),  # no literal common to both branches
        ("ab?c", None),  # too short once the optional b is left out
        ("[[:alpha:]]xx", None),  # RE2 syntax Python reads differently: no hint
        (r"(?i)tariff", None),
    ],
)
def test_regex_hints(pattern: str, hint: str | None) -> None:
    assert required_literal(pattern) == hint


def test_regex_needle_skips_fields_without_it() -> None:
    """A one-character literal is too common to pick candidates by, but a field without
    it is not searched at all: the percentage regex then matches only where '%' is."""
    assert required_literal(r"\d+(\.\d+)? ?%") is None
    assert required_literal(r"\d+(\.\d+)? ?%", 1) == "%"
    rule = Rule(
        id="pct",
        title="P",
        tier="high",
        match=MatchNode(op="any", children=(Term(kind="regex", text=r"\d+(\.\d+)? ?%"),)),
    )
    ruleset = compile_rules([rule])
    assert ruleset.needles[ruleset.terms.index(TermSpec(r"\d+(\.\d+)? ?%", kind="regex"))] == ("%",)
    item = Item(
        source_id="s", key="k", title="up 25 percent", summary="up 25\uff05"
    )  # full-width, as Japanese feeds write it
    [found] = match(ruleset, make_document(item))
    assert [(e.field, e.start, e.end) for e in found.evidence] == [("summary", 3, 6)]


_BUILTIN_SOURCES = {
    "@date": builtins._DATE,
    "@money": builtins._MONEY,
    "@percent": builtins._PERCENT,
}


@pytest.mark.parametrize("name", sorted(BUILTIN_PATTERNS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_builtin_match_holds_one_of_its_needles(name: str, data: st.DataObject) -> None:
    """A field without any needle is not searched: that is safe only if no match lacks
    one. Strings made from the pattern's own source, and what RE2 finds in them."""
    text = data.draw(st.from_regex(_BUILTIN_SOURCES[name], fullmatch=True))
    needles = BUILTIN_NEEDLES[name]
    assert any(needle in text for needle in needles), text
    for found in BUILTIN_PATTERNS[name].finditer(normalize(text)):
        assert any(needle in found.group() for needle in needles), found.group()


def test_builtin_needles_skip_fields_without_them() -> None:
    rule = Rule(id="d", title="D", tier="high", match=MatchNode(op="any", children=("@date",)))
    ruleset = compile_rules([rule])
    item = Item(source_id="s", key="k", title="talks stall", summary="due on 20 July")
    [found] = match(ruleset, make_document(item))
    assert [(e.field, e.start, e.end) for e in found.evidence] == [("summary", 7, 14)]


def test_candidate_rules_are_picked_by_rare_terms(tmp_path: Path) -> None:
    ruleset = load(
        tmp_path,
        """
        - id: acme
          title: A
          tier: high
          match: {all: [{any: [acme, 関税]}, {any: [tariff*, duty]}]}
        - id: zenith
          title: Z
          tier: high
          match: {all: [zenith, {any: [tariff*, duty]}]}
        - id: section
          title: S
          tier: high
          match: {any: [{regex: 'section (232|301)'}]}
        - id: lone-pattern
          title: P
          tier: high
          match: {any: ["@percent"]}
        """,
    )
    by_id = {c.rule.id: c for c in ruleset.compiled}
    terms = [spec.literal for spec in ruleset.terms]
    assert sorted(terms[t] for t in by_id["acme"].trigger) == ["acme", "関税"]
    assert [terms[t] for t in by_id["zenith"].trigger] == ["zenith"]
    assert [terms[t] for t in by_id["section"].trigger] == ["section "]
    assert [ruleset.compiled[i].rule.id for i in ruleset.always_candidates] == ["lone-pattern"]
    assert fired(ruleset, "Acme hit by tariffs") == ["acme"]
    assert fired(ruleset, "Section 232 tariffs; 25% duty") == ["section", "lone-pattern"]
