"""Explanations: highlighted spans, JSON evidence, and what dry-run and check print with them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mastwatch.cli import main
from mastwatch.model import DEFAULT_TIERS, Item
from mastwatch.rules import compile_rules, load_rules, match
from mastwatch.rules.diff import diff_rulesets
from mastwatch.rules.explain import evidence_records, highlight, highlighted_fields
from mastwatch.text import make_document

ROOT = Path(__file__).resolve().parents[2]


def test_highlight_brackets_spans_and_merges_overlaps() -> None:
    assert highlight("us tariffs on cars", [(3, 9), (14, 18)]) == "us [tariff]s on [cars]"
    assert highlight("abcdef", [(0, 3), (2, 4)]) == "[abcd]ef"
    long = "x" * 100 + " tariff " + "y" * 100
    assert highlight(long, [(101, 107)], context=5) == "…xxxx [tariff] yyyy…"


def test_highlighted_fields_and_records_point_at_the_normalised_text(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "id: r\ntitle: R\ntier: high\nmatch: {all: [tariff*, {any: [関税]}]}\n", encoding="utf-8"
    )
    ruleset = load_rules(tmp_path, DEFAULT_TIERS)
    doc = make_document(Item("wire", "k", "US Tariffs rise", summary="<p>追加関税を発動</p>"))
    (found,) = match(ruleset, doc)
    assert highlighted_fields(doc, found) == [
        ("title", "us [tariff]s rise"),
        ("summary", "追加[関税]を発動"),
    ]
    assert evidence_records(doc, found.evidence) == [
        {"term": "tariff*", "field": "title", "start": 3, "end": 9, "text": "tariff"},
        {"term": "関税", "field": "summary", "start": 2, "end": 4, "text": "関税"},
    ]


def test_dry_run_shows_highlights_and_evidence(capsys: pytest.CaptureFixture[str]) -> None:
    feed = str(ROOT / "examples" / "feeds" / "wire-en.xml")
    assert main(["dry-run", "--rules", str(ROOT / "rules"), feed]) == 0
    text = capsys.readouterr().out
    assert "    title: us to raise [tariff]s on [import]ed passenger [cars] to 27.5%" in text
    assert main(["dry-run", "--rules", str(ROOT / "rules"), "--format", "jsonl", feed]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records
    for record in records:
        assert {e["term"] for e in record["evidence"]} == set(record["matched"])
        assert all(e["text"] and e["end"] > e["start"] for e in record["evidence"])


def test_check_reports_broken_files_with_positions_and_exits_1(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    files = {
        "a.yaml": "id: a\ntitle: A\ntier: high\nmatch: {any: [{regex: '(x'}]}\n",
        "b.yaml": "id: b\ntitle: B\ntier: high\nmatch: {any: [{list: missing}]}\nmatch_: 1\n",
        "c.yaml": "id: c\ntitle: C\ntier: high\nmatch: {any: [tariff]}\n"
        "tests:\n  - {title: nothing here, expect: match}\n",
        "d.yaml": "id: c\ntitle: C again\ntier: high\nmatch: {any: [duty]}\n",
    }
    for name, text in files.items():
        (rules / name).write_text(text, encoding="utf-8")
    command = [sys.executable, "-m", "mastwatch.cli", "check", "--rules", str(rules)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert [line.strip().removeprefix(f"{rules}/") for line in result.stderr.splitlines()] == [
        "problems found (5):",
        "a.yaml:4:23: rule 'a': regex '(x' does not compile: missing ): (x"
        " (RE2 syntax: no lookaround, no backreferences)",
        "b.yaml:4:22: rule 'b': no term list named 'missing' (rules/lists/ is empty)",
        "b.yaml:5:1: rule 'b': unknown key 'match_'; did you mean 'match'?",
        f"d.yaml:1:1: rule 'c': duplicate id; first defined at {rules}/c.yaml:1:1",
        "c.yaml:6: rule 'c' test 1: expected match, got no-match",
    ]


def test_diff_names_added_removed_and_changed_rules(tmp_path: Path) -> None:
    def ruleset(text: str) -> object:
        path = tmp_path / "r.yaml"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return compile_rules(load_rules(tmp_path, DEFAULT_TIERS).rules)

    before = ruleset("""
        - {id: kept, title: K, tier: high, match: {any: [a]}}
        - {id: edited, title: E, tier: high, match: {any: [b]}}
        - {id: gone, title: G, tier: high, match: {any: [c]}}
        """)
    after = ruleset("""
        - {id: new, title: N, tier: high, match: {any: [d]}}
        - {id: edited, title: E, tier: high, match: {any: [b, bb]}}

        - {id: kept, title: K, tier: high, match: {any: [a]}}
        """)
    changes = diff_rulesets(before, after)  # type: ignore[arg-type]
    assert (changes.added, changes.removed, changes.changed) == (("new",), ("gone",), ("edited",))
    assert not diff_rulesets(after, after)  # type: ignore[arg-type]
