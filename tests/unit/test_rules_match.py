"""Term semantics and pure evaluation of compiled rule sets (rules.compile, rules.evaluate)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mastwatch.model import DEFAULT_TIERS, Document, Evidence, Item, Match
from mastwatch.rules import (
    MatchNode,
    Rule,
    RuleSet,
    Term,
    compile_rules,
    load_rule_files,
    match,
    rule_fires,
    run_inline_tests,
)
from mastwatch.rules.evaluate import python_steps
from mastwatch.text import make_document


@pytest.fixture(autouse=True, params=["C", "Python"])
def evaluator(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here runs twice: deciding and explaining in C, then in Python."""
    if request.param == "C":
        yield
        return
    with python_steps():
        yield


def fullwidth(ascii_text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in ascii_text)


def tree(spec: dict[str, list[Any]]) -> MatchNode:
    """A match tree from the YAML-shaped form: {"any": ["term", {"none": [...]}]}."""
    ((op, items),) = spec.items()
    children = tuple(tree(item) if isinstance(item, dict) else item for item in items)
    return MatchNode.model_validate({"op": op, "children": children})


def make_rule(rule_id: str, spec: dict[str, list[Any]], **fields: Any) -> Rule:
    return Rule(id=rule_id, title=f"Rule {rule_id}", tier="high", match=tree(spec), **fields)


def doc(title: str, summary: str = "", content: str = "") -> Document:
    return make_document(Item("src", "key", title, summary=summary, content=content))


def fires(spec: dict[str, list[Any]], title: str, summary: str = "", content: str = "") -> bool:
    ruleset = compile_rules([make_rule("r", spec)])
    return [m.rule_id for m in match(ruleset, doc(title, summary, content))] == ["r"]


@pytest.mark.parametrize(
    ("term", "text", "expected"),
    [
        # word boundaries: a Latin term never matches inside a longer word
        ("tariff", "New tariff on steel", True),
        ("tariff", "(tariff), tariff. tariff!", True),
        ("tariff", "anti-tariff protest", True),
        ("tariff", "the tariffication of rice", False),
        ("tariff", "pretariff talks", False),
        ("tariff", "TARIFF", True),
        # simple English plurals of plain terms
        ("tariff", "Tariffs rise", True),
        ("duty", "Import duties rise", True),
        ("tax", "Carbon taxes", True),
        ("day", "Three days", True),
        ("treasury yield", "Treasury yields climb", True),
        ("JGB", "Banks sell JGBs", True),
        ("tariff", "tariffss", False),
        ("treasury", "Treasuries rally", True),
        # prefixes
        ("tariff*", "tariffs, tariffed and tariffication", True),
        ("tariff*", "tariffication", True),
        ("tariff*", "pretariff", False),
        ("import*", "Imported goods", True),
        # digits and full-width forms, normalised on both sides
        ("G7", "G77 group of developing nations", False),
        ("G7", fullwidth("G7") + "首脳会議", True),
        (fullwidth("G7"), "G7 summit", True),
        ("25%", fullwidth("25%") + "の関税", True),
        ("25%", "a 125% rise", False),
        # CJK terms match as substrings
        ("関税", "米国が追加関税を発動", True),
        ("米国債", "米国債保有残高", True),
        ("米国債", "日本国債", False),
        (fullwidth("G7") + "サミット", "g7サミットが開幕", True),
        # phrases match across any whitespace, but not across words
        ("Section 232", "Section\n\t 232 probe", True),
        ("Group of Seven", "GROUP  OF\u3000SEVEN leaders", True),
        ("Section 232", "Section 2320", False),
        ("feed-in tariff", "feed-in tariffs", True),
    ],
)
def test_term_matching(term: str, text: str, expected: bool) -> None:
    assert fires({"any": [term]}, text) is expected


def test_a_lone_surrogate_in_the_text_or_a_term_is_read_as_a_replacement_character() -> None:
    """A JSON feed can escape half of a surrogate pair; the automaton reads UTF-8, which
    cannot hold one: such an item is still matched on the rest of its text."""
    assert fires({"all": ["関税", "g7"]}, "\ud83d G7\udca5の関税")
    assert fires({"any": ["tariff"]}, "Tariff \ud800", "関税")
    assert fires({"any": ["a\udfffb"]}, "x a\ud800b y")  # a term too: both read U+FFFD


def test_matching_reads_html_in_summary_and_content() -> None:
    spec = {"all": [{"any": ["section 232"]}, {"any": ["robots"]}]}
    assert fires(spec, "Probe", "<p>Section&nbsp;<b>232</b></p>", "<div>industrial robots</div>")


def test_phrase_does_not_span_title_and_summary() -> None:
    assert not fires({"any": ["section 232"]}, "Trade law section", "232 pages long")


def test_only_any_term_absent_does_not_fire() -> None:
    assert not fires({"any": ["tariff"]}, "Treasury yields rise")


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("US tariffs on cars", True),
        ("Feed-in tariff for solar", False),
        ("US tariffs on cars, and a feed-in tariff", False),
        ("関税", True),
        ("Nothing relevant", False),
    ],
)
def test_all_with_any_and_none(title: str, expected: bool) -> None:
    spec = {"all": [{"any": ["tariff", "関税"]}, {"none": ["feed-in tariff"]}]}
    assert fires(spec, title) is expected


def test_all_needs_every_child() -> None:
    spec = {"all": ["g7", {"any": ["summit", "meeting"]}]}
    assert fires(spec, "G7 summit opens")
    assert not fires(spec, "G7 camera launched")
    assert not fires(spec, "Summit opens")


def test_none_alone_fires_when_nothing_listed_is_present() -> None:
    spec = {"none": ["tariff", "duty"]}
    assert fires(spec, "")
    assert fires(spec, "Yields rise")
    assert not fires(spec, "Duties rise")


def test_any_with_nested_none_branch() -> None:
    spec = {"any": ["g7", {"none": ["market"]}]}
    assert fires(spec, "G7 market news")  # g7 found
    assert fires(spec, "Weather")  # market absent
    assert not fires(spec, "Market wrap")


def test_deep_nesting() -> None:
    spec = {"all": [{"any": [{"all": ["treasury", "auction"]}, "米国債"]}, {"none": ["jgb"]}]}
    assert fires(spec, "Treasury auction tails")
    assert fires(spec, "米国債を売却")
    assert not fires(spec, "Treasury secretary speaks")
    assert not fires(spec, "Treasury auction and JGB auction")


def test_match_reports_evidence_in_rule_order_without_repeats_or_negatives() -> None:
    rule = make_rule(
        "tariffs",
        {
            "all": [
                {"any": ["Duty", "tariff*", "関税", "Levy"]},
                {"any": ["tariff*", "import*"]},
                {"none": ["feed-in tariff"]},
                {"any": [{"none": ["hotel"]}]},
            ]
        },
        labels=(("desk", "trade"), ("region", "asia")),
    )
    ruleset = compile_rules([rule])
    found = match(ruleset, doc("Imported cars face tariffs and duties; 追加関税"))
    assert found == [
        Match(
            rule_id="tariffs",
            rule_title="Rule tariffs",
            tier="high",
            matched=("Duty", "tariff*", "関税", "import*"),
            labels=(("desk", "trade"), ("region", "asia")),
            evidence=(
                Evidence("Duty", "title", 31, 37),
                Evidence("tariff*", "title", 19, 25),
                Evidence("関税", "title", 41, 43),
                Evidence("import*", "title", 0, 6),
            ),
        )
    ]
    title = doc("Imported cars face tariffs and duties; 追加関税").title
    spans = [title[e.start : e.end] for e in found[0].evidence]
    assert spans == ["duties", "tariff", "関税", "import"]


def test_packed_and_step_by_step_explanations_agree() -> None:
    """A rule of literals is explained from the packed table (ExplainTable), unless two of
    its steps share a term or a spelling (then step by step from its plan, repeats
    dropped); both give the evidence the rule order says."""
    packed = make_rule("p", {"all": [{"any": ["Velo", "Karito"]}, {"any": ["tariff*", "duty"]}]})
    shared = make_rule("s", {"all": [{"any": ["Velo", "duty"]}, {"any": ["tariff*", "duty"]}]})
    spelled = make_rule(
        "w", {"all": [{"any": ["Velo"]}, {"any": ["duty", Term(kind="exact", text="duty")]}]}
    )
    ruleset = compile_rules([packed, shared, spelled])
    assert [ruleset.explain_table.at[i] >= 0 for i in range(3)] == [True, False, False]
    found = {m.rule_id: m for m in match(ruleset, doc("Velo duty: tariffs on Velo", "duty"))}
    assert found["p"].matched == ("Velo", "tariff*", "duty")
    assert [(e.term, e.field, e.start) for e in found["p"].evidence] == [
        ("Velo", "title", 0),
        ("Velo", "title", 22),
        ("tariff*", "title", 11),
        ("duty", "title", 5),
        ("duty", "summary", 0),
    ]
    assert found["s"].matched == ("Velo", "duty", "tariff*")
    assert [(e.term, e.start) for e in found["s"].evidence if e.field == "title"] == [
        ("Velo", 0),
        ("Velo", 22),
        ("duty", 5),
        ("tariff*", 11),
    ]
    assert found["w"].matched == ("Velo", "duty")


def test_several_rules_fire_in_rule_order_and_disabled_rules_do_not() -> None:
    rules = [
        make_rule("b-second", {"any": ["yields"]}),
        make_rule("a-first", {"any": ["tariff"]}),
        make_rule("off", {"any": ["tariff"]}, enabled=False),
        make_rule("quiet", {"any": ["g7"]}),
    ]
    ruleset = compile_rules(rules)
    document = doc("Tariff worries lift yields")
    assert [m.rule_id for m in match(ruleset, document)] == ["b-second", "a-first"]
    assert rule_fires(ruleset, "off", document)
    assert not rule_fires(ruleset, "quiet", document)
    with pytest.raises(KeyError):
        rule_fires(ruleset, "missing", document)


def test_shared_terms_are_compiled_once() -> None:
    ruleset = compile_rules(
        [make_rule("a", {"any": ["tariff", "TARIFF"]}), make_rule("b", {"any": ["Tariff"]})]
    )
    assert [spec.literal for spec in ruleset.terms] == ["tariff"]
    assert [m.matched for m in match(ruleset, doc("tariffs"))] == [
        ("tariff", "TARIFF"),
        ("Tariff",),
    ]


def test_rules_decided_by_bits_of_shared_terms() -> None:
    """Rules shaped like most real ones (a name, a topic word, no exclusion) are decided by
    bits; a rule whose fields the automaton does not scan whole is not, and both agree
    with what the rules say."""
    rules = [
        make_rule("a", {"all": [{"any": ["Karito", "Velo"]}, {"any": ["tariff*", "duty"]}]}),
        make_rule(
            "b",
            {"all": [{"any": ["Velo"]}, {"any": ["duty"]}, {"none": ["club", "hotel"]}]},
        ),
        make_rule("c", {"all": [{"any": ["Sanri"]}, {"any": ["steel"]}]}),
        make_rule("t", {"all": [{"any": ["Velo"]}]}, enabled=True),
    ]
    title_only = MatchNode.model_validate(
        {"op": "all", "children": ("Velo", "steel"), "fields": ("title",)}
    )
    rules.append(Rule(id="s", title="S", tier="high", match=title_only))
    ruleset = compile_rules(rules)
    assert list(ruleset.branch_bits.kinds) == [1, 1, 1, 1, 0]
    cases = {
        "Velo tariffs and a duty": ["a", "b", "t"],
        "Velo duty at the club": ["a", "t"],
        "Karito steel": [],
        "Sanri steel, Velo": ["c", "t", "s"],
        "Velocity duty": [],
    }
    for title, expected in cases.items():
        assert [m.rule_id for m in match(ruleset, doc(title))] == expected, title
    # the title-only rule: "steel" in the summary does not count
    assert [m.rule_id for m in match(ruleset, doc("Velo", "steel"))] == ["t"]


def test_empty_rule_set() -> None:
    ruleset = compile_rules([])
    assert len(ruleset) == 0
    assert ruleset.automaton is None
    assert match(ruleset, doc("anything")) == []
    assert run_inline_tests(ruleset) == []


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


RULE_A = """
- id: tariffs
  title: Tariffs
  tier: high
  labels: {topic: trade}
  match: {any: [tariff, 関税]}
  tests:
    - title: New tariffs
      expect: match
"""
RULE_B = """
id: g7
title: G7
tier: normal
match: {all: [g7, {any: [summit]}]}
"""


def test_content_hash_is_stable_under_file_order_and_names(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", RULE_A)
    b = write(tmp_path, "b.yaml", RULE_B)
    forward = compile_rules(load_rule_files([a, b], DEFAULT_TIERS))
    backward = compile_rules(load_rule_files([b, a], DEFAULT_TIERS))
    assert isinstance(forward, RuleSet)
    assert len(forward) == 2
    assert forward.content_hash == backward.content_hash
    assert [rule.id for rule in backward.rules] == ["g7", "tariffs"]

    moved = tmp_path / "moved"
    moved.mkdir()
    renamed = write(moved, "zz.yaml", "\n\n# comments and blank lines do not count\n" + RULE_B)
    elsewhere = compile_rules(load_rule_files([renamed, a], DEFAULT_TIERS))
    assert elsewhere.content_hash == forward.content_hash


def test_content_hash_changes_with_content(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", RULE_A)
    before = compile_rules(load_rule_files([a], DEFAULT_TIERS)).content_hash
    write(tmp_path, "a.yaml", RULE_A.replace("tier: high", "tier: critical"))
    after = compile_rules(load_rule_files([a], DEFAULT_TIERS)).content_hash
    assert len(before) == 64
    assert before != after


def test_run_inline_tests_reports_each_failure_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.yaml",
        """
        id: tariffs
        title: Tariffs
        tier: high
        enabled: false
        match:
          all:
            - any: [tariff]
            - none: [feed-in tariff]
        tests:
          - title: US tariffs on steel
            expect: match
          - title: Feed-in tariff cut
            expect: match
          - title: Steel tariffs
            summary: and a feed-in tariff
            content: <p>nothing else</p>
            expect: no-match
          - title: Tariffs everywhere
            expect: no-match
        """,
    )
    ruleset = compile_rules(load_rule_files([path], DEFAULT_TIERS))
    assert run_inline_tests(ruleset) == [
        f"{path}:12: rule 'tariffs' test 2: expected match, got no-match",
        f"{path}:18: rule 'tariffs' test 4: expected no-match, got match",
    ]


def test_evidence_is_bounded_and_matched_lists_each_term_once() -> None:
    ruleset = compile_rules([make_rule("r", {"all": ["tax", {"any": ["duty"]}]})])
    [found] = match(ruleset, doc(" ".join(["tax"] * 150), "duty"))
    assert found.matched == ("tax", "duty")
    assert len(found.evidence) == 100  # MAX_EVIDENCE, the first ones in rule order
    assert {e.term for e in found.evidence} == {"tax"}
    assert found.evidence[0] == Evidence("tax", "title", 0, 3)
