"""docs/rules.md cannot drift: every yaml example loads and passes its inline tests, the
broken example gives exactly the messages shown, and the built-in pattern table holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mastwatch.errors import RuleError
from mastwatch.model import DEFAULT_TIERS
from mastwatch.rules import load_rules, run_inline_tests
from mastwatch.rules.builtins import BUILTIN_PATTERNS
from mastwatch.text import normalize

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
BLOCKS = [(lang, body) for lang, body in FENCE.findall(DOC.read_text(encoding="utf-8"))]
LIST_FILE = re.compile(r"^# rules/lists/([\w-]+\.yaml)\n")
BROKEN = "broken on purpose"

YAML = [body for lang, body in BLOCKS if lang == "yaml"]
LISTS = [body for body in YAML if LIST_FILE.match(body)]
RULES = [body for body in YAML if not LIST_FILE.match(body) and BROKEN not in body]


def rules_dir(tmp_path: Path, rule_text: str, name: str) -> Path:
    """A rules directory holding one rule file and every list file of the page."""
    (tmp_path / "lists").mkdir(parents=True)
    for body in LISTS:
        match = LIST_FILE.match(body)
        assert match is not None
        (tmp_path / "lists" / match.group(1)).write_text(body, encoding="utf-8")
    (tmp_path / name).write_text(rule_text, encoding="utf-8")
    return tmp_path


def test_the_page_has_examples_of_every_kind() -> None:
    assert len(RULES) >= 10
    assert LISTS
    assert sum(BROKEN in body for body in YAML) == 1


@pytest.mark.parametrize("example", RULES, ids=[body.split("\n", 1)[0] for body in RULES])
def test_rule_example_loads_and_passes_its_tests(tmp_path: Path, example: str) -> None:
    ruleset = load_rules(rules_dir(tmp_path, example, "example.yaml"), DEFAULT_TIERS)
    assert all(rule.tests for rule in ruleset.rules), "every example shows its tests"
    assert run_inline_tests(ruleset) == []


def test_broken_example_gives_the_messages_shown(tmp_path: Path) -> None:
    index = next(i for i, (_, body) in enumerate(BLOCKS) if BROKEN in body)
    broken, (lang, shown) = BLOCKS[index][1], BLOCKS[index + 1]
    assert lang == "text"
    directory = rules_dir(tmp_path / "rules", broken, "mistakes.yaml")
    with pytest.raises(RuleError) as caught:
        load_rules(directory, DEFAULT_TIERS)
    messages = [p.replace(str(directory), "rules") for p in caught.value.problems]
    assert messages == shown.strip().splitlines()


def _table_examples(name: str) -> list[str]:
    row = next(line for line in DOC.read_text(encoding="utf-8").splitlines()
               if line.startswith(f'| `"{name}"`'))  # fmt: skip
    return re.findall(r"`([^`]+)`", row.split("|")[2])


@pytest.mark.parametrize("name", sorted(BUILTIN_PATTERNS))
def test_builtin_pattern_table(name: str) -> None:
    examples = _table_examples(name)
    assert len(examples) >= 3
    for example in examples:
        text = normalize(example)
        found = BUILTIN_PATTERNS[name].search(f"on {text} here")
        assert found is not None and found.group() == text, example
