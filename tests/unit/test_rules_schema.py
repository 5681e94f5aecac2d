"""Rule files: validation into frozen models and positioned error messages (rules.schema)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest

from mastwatch.errors import RuleError
from mastwatch.model import DEFAULT_TIERS
from mastwatch.rules import load_rule_files, load_rules, rule_files
from mastwatch.rules.schema import MatchNode, term_problem


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(paths: list[Path], tiers: tuple[str, ...] = DEFAULT_TIERS) -> list[str]:
    with pytest.raises(RuleError) as caught:
        load_rule_files(paths, tiers)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


VALID = """
- id: tariffs
  title: Tariffs
  tier: high
  description: Trade measures.
  labels: {topic: trade, desk: asia}
  match:
    all:
      - any: [tariff, 関税]
      - none: ["feed-in tariff"]
  tests:
    - title: US raises tariffs
      expect: match
    - title: Feed-in tariff cut
      summary: Solar
      expect: no-match
- id: g7
  title: G7
  tier: normal
  enabled: false
  match: {any: [G7]}
"""


def test_valid_list_file_loads_into_frozen_models(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", VALID)
    tariffs, g7 = load_rule_files([path], DEFAULT_TIERS)
    assert (tariffs.id, tariffs.title, tariffs.tier) == ("tariffs", "Tariffs", "high")
    assert tariffs.description == "Trade measures."
    assert tariffs.enabled is True
    assert tariffs.labels == (("desk", "asia"), ("topic", "trade"))
    assert tariffs.match == MatchNode(
        op="all",
        children=(
            MatchNode(op="any", children=("tariff", "関税")),
            MatchNode(op="none", children=("feed-in tariff",)),
        ),
    )
    assert [(t.title, t.summary, t.expect, t.line) for t in tariffs.tests] == [
        ("US raises tariffs", "", "match", 11),
        ("Feed-in tariff cut", "Solar", "no-match", 13),
    ]
    assert (tariffs.source, tariffs.line, tariffs.column) == (str(path), 1, 3)
    assert g7.enabled is False
    assert g7.line == 16
    with pytest.raises(pydantic.ValidationError):
        tariffs.tier = "critical"  # type: ignore[misc]


def test_single_mapping_file_and_yml_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "one.yml", "id: one\ntitle: One\ntier: digest\nmatch: {any: [x]}\n")
    (rule,) = load_rule_files([path], DEFAULT_TIERS)
    assert (rule.id, rule.tier, rule.line, rule.column) == ("one", "digest", 1, 1)


def test_empty_file_holds_no_rules(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.yaml", "# nothing here yet\n")
    one = write(tmp_path, "one.yaml", "id: one\ntitle: One\ntier: high\nmatch: {any: [x]}\n")
    assert [rule.id for rule in load_rule_files([empty, one], DEFAULT_TIERS)] == ["one"]


def test_unknown_key_gets_position_and_hint_with_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "rules",
        "tariffs.yaml",
        """
        # Trade rules
        - id: tariffs
          title: Tariffs
          tier: high
          tier_: high
          match: {any: [tariff]}
        """,
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuleError) as caught:
        load_rules(Path("rules"), DEFAULT_TIERS)
    assert caught.value.problems == [
        "rules/tariffs.yaml:5:3: rule 'tariffs': unknown key 'tier_'; did you mean 'tier'?"
    ]


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "a.yaml",
        """
        - id: tariffs
          titel: Tariffs
          tier: hgh
          match:
            any: [tariff, "", "ta*ff", 232]
        - id: Bad Id
          title: Bad
          tier: high
          enabled: yes
          labels: {priority: 1}
          match:
            any: [x]
            all: [y]
        - just a string
        """,
    )
    second = write(
        tmp_path,
        "b.yaml",
        """
        id: g7
        title: G7
        tier: normal
        match:
          all:
            - {}
            - {anny: [x]}
            - {none: []}
            - any: G7
        tests:
          - title: G7 summit
            expect: yes
          - not a mapping
        """,
    )
    assert problems_of([first, second]) == [
        f"{first}:1:3: rule 'tariffs': missing required key 'title'",
        f"{first}:2:3: rule 'tariffs': unknown key 'titel'; did you mean 'title'?",
        f"{first}:3:9: rule 'tariffs': unknown tier 'hgh'; allowed: critical, high, normal,"
        " digest; did you mean 'high'?",
        f"{first}:5:19: rule 'tariffs': empty term ''",
        f"{first}:5:23: rule 'tariffs': term 'ta*ff': '*' is only allowed at the end"
        " (a prefix match)",
        f"{first}:5:32: rule 'tariffs': a term must be a string (quote numbers) or a nested"
        " mapping, not a number",
        f"{first}:6:7: rule #2: invalid id 'Bad Id': use lowercase letters, digits, '.', '_' and"
        " '-', starting with a letter or digit",
        f"{first}:9:12: rule #2: 'enabled' must be true or false, not 'yes'",
        f"{first}:10:12: rule #2: label 'priority': names and values must be strings"
        " (quote numbers)",
        f"{first}:13:5: rule #2: a match mapping takes exactly one of any, all, none, near;"
        " found 'any' and 'all' (nest them, e.g. all: [{any: [...]}, {none: [...]}])",
        f"{first}:14:3: rule #3: a rule must be a mapping, not 'just a string'",
        f"{second}:6:7: rule 'g7': empty match tree: give one of any, all, none, near",
        f"{second}:7:8: rule 'g7': unknown key 'anny' in match tree; did you mean 'any'?",
        f"{second}:8:14: rule 'g7': 'none' takes a non-empty list of terms or nested mappings,"
        " not an empty list",
        f"{second}:9:12: rule 'g7': 'any' takes a non-empty list of terms or nested mappings,"
        " not 'G7' (write it as [term])",
        f"{second}:12:13: rule 'g7': test 1: 'expect' must be 'match' or 'no-match', not 'yes'",
        f"{second}:13:5: rule 'g7': test 2 must be a mapping, not 'not a mapping'",
    ]


def test_missing_required_keys_and_bad_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.yaml",
        """
        - description: [not, text]
        - id: x
          title: ""
          tier: high
          match: [tariff]
        """,
    )
    assert problems_of([path]) == [
        f"{path}:1:3: rule #1: missing required key 'id'",
        f"{path}:1:3: rule #1: missing required key 'title'",
        f"{path}:1:3: rule #1: missing required key 'tier'",
        f"{path}:1:3: rule #1: missing required key 'match'",
        f"{path}:1:16: rule #1: 'description' must be a string, not a list",
        f"{path}:3:10: rule 'x': 'title' must not be empty",
        f"{path}:5:10: rule 'x': a match tree is a mapping with one of any, all, none, near;"
        " not a list",
    ]


def test_empty_match_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: x\ntitle: X\ntier: high\nmatch: {}\n")
    assert problems_of([path]) == [
        f"{path}:4:8: rule 'x': empty match tree: give one of any, all, none, near"
    ]


def test_unknown_tier_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: x\ntitle: X\ntier: urgent\nmatch: {any: [a]}\n")
    assert problems_of([path], tiers=("page", "email")) == [
        f"{path}:3:7: rule 'x': unknown tier 'urgent'; allowed: page, email"
    ]


def test_duplicate_ids_across_files_name_both_places(tmp_path: Path) -> None:
    rule = "id: tariffs\ntitle: T\ntier: high\nmatch: {any: [tariff]}\n"
    first = write(tmp_path, "a.yaml", rule)
    second = write(tmp_path, "b.yaml", "- id: other\n  title: O\n  tier: high\n"
                   "  match: {any: [x]}\n- " + rule.replace("\n", "\n  "))  # fmt: skip
    assert problems_of([first, second]) == [
        f"{second}:5:3: rule 'tariffs': duplicate id; first defined at {first}:1:1"
    ]


def test_duplicate_ids_reported_even_when_the_rules_have_other_errors(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "id: tariffs\ntitle: T\ntier: hgih\nmatch: {any: [tariff]}\n")
    second = write(
        tmp_path,
        "b.yaml",
        """
        - id: tariffs
          title: T
          tier: high
          colour: red
          match: {any: [{regex: "(unclosed"}]}
        - id: tariffs
          tier: high
          match: {any: [tariff]}
        """,
    )
    problems = problems_of([first, second])
    # every problem at once, each with file:line:column and the rule id
    assert f"{second}:1:3: rule 'tariffs': duplicate id; first defined at {first}:1:1" in problems
    assert f"{second}:6:3: rule 'tariffs': duplicate id; first defined at {first}:1:1" in problems
    assert any(p.startswith(f"{first}:3:7: rule 'tariffs': unknown tier 'hgih'") for p in problems)
    assert any(
        p.startswith(f"{second}:4:3: rule 'tariffs': unknown key 'colour'") for p in problems
    )
    assert any(
        p.startswith(f"{second}:6:3: rule 'tariffs': missing required key 'title'")
        for p in problems
    )
    assert len(problems) == 6, problems  # also the regex that does not compile


def test_yaml_syntax_error_reports_its_position(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yaml", "id: x\ntitle: [unclosed\ntier: high\n")
    fine = write(tmp_path, "fine.yaml", "id: y\ntitle: Y\ntier: high\nmatch: {any: [a]}\n")
    problems = problems_of([broken, fine])
    assert len(problems) == 1
    assert problems[0].startswith(f"{broken}:3:5: YAML syntax error: while parsing a flow")
    assert "started at line 2, column 8" in problems[0]


def test_duplicate_yaml_key_is_a_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: x\nid: y\ntitle: X\ntier: high\nmatch: {any: [a]}\n")
    (problem,) = problems_of([path])
    assert problem.startswith(f"{path}:2:1: YAML syntax error:")
    assert "duplicate key" in problem


def test_file_of_wrong_shape(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "just text\n")
    assert problems_of([path]) == [
        f"{path}:1:1: a rule file holds one rule mapping or a list of rule mappings,"
        " not 'just text'"
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("title: caf\xe9\n".encode("latin-1"))
    (problem,) = problems_of([path])
    assert problem.startswith(f"{path}: cannot read rule file:")


def test_rule_files_sorted_top_level_yaml_only(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.yml", "c.txt", "lists/terms.yaml"):
        write(tmp_path, name, "x: 1\n")
    (tmp_path / "d.yaml").mkdir()
    assert [path.name for path in rule_files(tmp_path)] == ["a.yml", "b.yaml"]


def test_rule_files_missing_or_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="rules directory not found"):
        rule_files(tmp_path / "nope")
    with pytest.raises(RuleError, match=r"no rule files \(\*\.yaml, \*\.yml\)"):
        rule_files(tmp_path)


@pytest.mark.parametrize(
    ("term", "problem"),
    [
        ("tariff", None),
        ("tariff*", None),
        ("Section 232", None),
        ("関税", None),
        ("", "empty term ''"),
        ("  ", "empty term '  '"),
        ("*", "empty term '*'"),
        ("ta*riff", "term 'ta*riff': '*' is only allowed at the end (a prefix match)"),
        ("tariff *", "term 'tariff *': '*' must follow a word, without a space"),
    ],
)
def test_term_problem(term: str, problem: str | None) -> None:
    assert term_problem(term) == problem
