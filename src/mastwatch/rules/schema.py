"""Rule files (YAML) read into frozen models, with every problem reported by file:line:column.

A rule file holds one rule mapping or a list of rule mappings::

    - id: tariffs
      title: Tariffs and import duties
      tier: high
      labels: {desk: trade}
      match:
        all:
          - any: [tariff*, 関税, "Section 232"]
          - none: ["feed-in tariff"]
      tests:
        - title: "US raises tariffs on imported cars"
          expect: match

Loading never stops at the first mistake: every problem in every file is collected and
raised together as one :class:`~mastwatch.errors.RuleError`, each message starting with
``path:line:column:`` (1-based) so an editor can jump to it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mastwatch.errors import RuleError
from mastwatch.text import normalize

__all__ = [
    "OPERATORS",
    "InlineTest",
    "MatchNode",
    "Rule",
    "load_rule_files",
    "rule_files",
    "term_problem",
]

OPERATORS: tuple[str, ...] = ("any", "all", "none")
RULE_KEYS: tuple[str, ...] = (
    "id",
    "title",
    "tier",
    "description",
    "enabled",
    "labels",
    "match",
    "tests",
)
REQUIRED_KEYS: tuple[str, ...] = ("id", "title", "tier", "match")
TEST_KEYS: tuple[str, ...] = ("title", "summary", "content", "expect")
EXPECTATIONS: tuple[str, ...] = ("match", "no-match")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
RULE_FILE_SUFFIXES = (".yaml", ".yml")

Position = tuple[int, int]  # 0-based line and column, as ruamel.yaml records them


class MatchNode(BaseModel):
    """One node of a match tree: ``op`` over terms (strings) and nested nodes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["any", "all", "none"]
    children: tuple[str | MatchNode, ...]


class InlineTest(BaseModel):
    """An example written next to a rule, with the outcome the rule must give on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = ""
    summary: str = ""
    content: str = ""
    expect: Literal["match", "no-match"]
    line: int = 0  # 1-based line of the test in its file (not part of the rule's content)


class Rule(BaseModel):
    """One validated rule, as the operator wrote it (terms not yet compiled)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    tier: str
    description: str = ""
    enabled: bool = True
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    match: MatchNode
    tests: tuple[InlineTest, ...] = ()
    source: str = ""  # the file, as the caller named it
    line: int = 0  # 1-based position of the rule in its file
    column: int = 0

    @property
    def location(self) -> str:
        """``path:line:column`` of the rule, for messages."""
        return f"{self.source}:{self.line}:{self.column}"

    def canonical(self) -> dict[str, Any]:
        """The rule's content without where it was written, for hashing and comparison."""
        data = self.model_dump(mode="json", exclude={"source", "line", "column"})
        for test in data["tests"]:
            del test["line"]
        return data


def term_problem(term: str) -> str | None:
    """Say what is wrong with a term string, or return None when it is usable."""
    norm = normalize(term)
    if not norm.rstrip("*").strip():
        return f"empty term {term!r}"
    if "*" in norm[:-1]:
        return f"term {term!r}: '*' is only allowed at the end (a prefix match)"
    if norm.endswith(" *"):
        return f"term {term!r}: '*' must follow a word, without a space"
    return None


def _hint(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_name(value: object) -> str:
    """How a YAML value is named in a message: short strings shown, other kinds described."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a long string"
    kinds: tuple[tuple[type | None, str], ...] = (
        (type(None), "nothing"),
        (CommentedMap, "a mapping"),
        (CommentedSeq, "a list"),
        (bool, "a boolean"),
        (int, "a number"),
        (float, "a number"),
    )
    return next((name for kind, name in kinds if kind and isinstance(value, kind)), "a value")


class _Reader:
    """Validates one rule mapping, adding positioned problems to a shared list."""

    def __init__(
        self, path: str, node: CommentedMap, label: str, tiers: Sequence[str], problems: list[str]
    ) -> None:
        self.path = path
        self.node = node
        self.label = label  # "rule 'x'" once the id is known, "rule #n" before
        self.tiers = tiers
        self.problems = problems
        self.failed = False

    def problem(self, pos: Position, message: str) -> None:
        self.failed = True
        self.problems.append(f"{self.path}:{pos[0] + 1}:{pos[1] + 1}: {self.label}: {message}")

    def key_pos(self, mapping: CommentedMap, key: object) -> Position:
        line, col = mapping.lc.key(key)
        return int(line), int(col)

    def value_pos(self, mapping: CommentedMap, key: object) -> Position:
        line, col = mapping.lc.value(key)
        return int(line), int(col)

    def item_pos(self, sequence: CommentedSeq, index: int) -> Position:
        line, col = sequence.lc.item(index)
        return int(line), int(col)

    def start(self, node: CommentedMap | CommentedSeq) -> Position:
        return int(node.lc.line), int(node.lc.col)

    def read(self) -> Rule | None:
        rule_id = self.read_id()
        self.check_keys(self.node, RULE_KEYS, "")
        fields: dict[str, Any] = {
            "id": rule_id,
            "title": self.read_text("title", required=True),
            "tier": self.read_tier(),
            "description": self.read_text("description", required=False),
            "enabled": self.read_enabled(),
            "labels": self.read_labels(),
            "match": self.read_match(),
            "tests": self.read_tests(),
        }
        if self.failed:
            return None
        line, col = self.start(self.node)
        return Rule(**fields, source=self.path, line=line + 1, column=col + 1)

    def check_keys(self, mapping: CommentedMap, allowed: Sequence[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = _hint(str(key), allowed)
                self.problem(self.key_pos(mapping, key), f"unknown key {key!r}{where}{hint}")

    def missing(self, key: str) -> None:
        self.problem(self.start(self.node), f"missing required key {key!r}")

    def read_id(self) -> str:
        if "id" not in self.node:
            self.missing("id")
            return ""
        value = self.node["id"]
        if not isinstance(value, str) or not RULE_ID.match(value):
            self.problem(
                self.value_pos(self.node, "id"),
                f"invalid id {value!r}: use lowercase letters, digits, '.', '_' and '-',"
                " starting with a letter or digit",
            )
            return ""
        self.label = f"rule {value!r}"
        return str(value)

    def read_text(self, key: str, *, required: bool) -> str:
        if key not in self.node:
            if required:
                self.missing(key)
            return ""
        value = self.node[key]
        if not isinstance(value, str) or (required and not value.strip()):
            wrong = "must not be empty" if isinstance(value, str) else "must be a string"
            shown = "" if isinstance(value, str) else f", not {_type_name(value)}"
            self.problem(self.value_pos(self.node, key), f"{key!r} {wrong}{shown}")
            return ""
        return str(value)

    def read_tier(self) -> str:
        tier = self.read_text("tier", required=True)
        if tier and tier not in self.tiers:
            self.problem(
                self.value_pos(self.node, "tier"),
                f"unknown tier {tier!r}; allowed: {', '.join(self.tiers)}{_hint(tier, self.tiers)}",
            )
        return tier

    def read_enabled(self) -> bool:
        value = self.node.get("enabled", True)
        if not isinstance(value, bool):
            self.problem(
                self.value_pos(self.node, "enabled"),
                f"'enabled' must be true or false, not {_type_name(value)}",
            )
            return True
        return bool(value)

    def read_labels(self) -> tuple[tuple[str, str], ...]:
        labels = self.node.get("labels")
        if labels is None:
            return ()
        if not isinstance(labels, CommentedMap):
            self.problem(
                self.value_pos(self.node, "labels"),
                f"'labels' must be a mapping of names to strings, not {_type_name(labels)}",
            )
            return ()
        pairs: list[tuple[str, str]] = []
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                self.problem(
                    self.key_pos(labels, key),
                    f"label {key!r}: names and values must be strings (quote numbers)",
                )
                continue
            pairs.append((str(key), str(value)))
        return tuple(sorted(pairs))

    def read_match(self) -> MatchNode | None:
        if "match" not in self.node:
            self.missing("match")
            return None
        return self.read_node(self.node["match"], self.value_pos(self.node, "match"))

    def read_node(self, node: object, pos: Position) -> MatchNode | None:
        if not isinstance(node, CommentedMap):
            self.problem(
                pos, f"a match tree is a mapping with one of any, all, none; not {_type_name(node)}"
            )
            return None
        self.check_keys(node, OPERATORS, " in match tree")
        ops = [key for key in node if key in OPERATORS]
        if len(ops) > 1:
            found = " and ".join(repr(op) for op in ops)
            self.problem(
                self.key_pos(node, ops[1]),
                f"a match mapping takes exactly one of any, all, none; found {found}"
                " (nest them, e.g. all: [{any: [...]}, {none: [...]}])",
            )
            return None
        if not ops:
            if not node:  # otherwise its keys were all reported as unknown just above
                self.problem(pos, "empty match tree: give one of any, all, none")
            return None
        return self.read_children(node, ops[0])

    def read_children(self, node: CommentedMap, op: str) -> MatchNode | None:
        items = node[op]
        if not isinstance(items, CommentedSeq) or not items:
            shown = "an empty list" if isinstance(items, CommentedSeq) else _type_name(items)
            hint = " (write it as [term])" if isinstance(items, str) else ""
            self.problem(
                self.value_pos(node, op),
                f"{op!r} takes a non-empty list of terms or nested mappings, not {shown}{hint}",
            )
            return None
        children: list[str | MatchNode] = []
        for index, item in enumerate(items):
            child = self.read_child(item, self.item_pos(items, index))
            if child is not None:
                children.append(child)
        if len(children) != len(items):
            return None
        return MatchNode.model_validate({"op": op, "children": tuple(children)})

    def read_child(self, item: object, pos: Position) -> str | MatchNode | None:
        if isinstance(item, str):
            trouble = term_problem(item)
            if trouble:
                self.problem(pos, trouble)
                return None
            return str(item)
        if isinstance(item, CommentedMap):
            return self.read_node(item, pos)
        self.problem(
            pos,
            f"a term must be a string (quote numbers) or a nested mapping, not {_type_name(item)}",
        )
        return None

    def read_tests(self) -> tuple[InlineTest, ...]:
        tests = self.node.get("tests")
        if tests is None:
            return ()
        if not isinstance(tests, CommentedSeq):
            self.problem(
                self.value_pos(self.node, "tests"),
                f"'tests' must be a list of {{title, summary, expect}}, not {_type_name(tests)}",
            )
            return ()
        read = (self.read_test(test, tests, index) for index, test in enumerate(tests))
        return tuple(test for test in read if test is not None)

    def read_test(self, test: object, tests: CommentedSeq, index: int) -> InlineTest | None:
        line, col = self.item_pos(tests, index)
        where = f"test {index + 1}"
        if not isinstance(test, CommentedMap):
            self.problem((line, col), f"{where} must be a mapping, not {_type_name(test)}")
            return None
        self.check_keys(test, TEST_KEYS, f" in {where}")
        fields: dict[str, str] = {}
        for key in ("title", "summary", "content"):
            value = test.get(key, "")
            if not isinstance(value, str):
                self.problem(self.value_pos(test, key), f"{where}: {key!r} must be a string")
            fields[key] = str(value)
        expect = test.get("expect")
        if expect not in EXPECTATIONS:
            pos = self.value_pos(test, "expect") if "expect" in test else (line, col)
            self.problem(pos, f"{where}: 'expect' must be 'match' or 'no-match', not {expect!r}")
            return None
        return InlineTest(**fields, expect=expect, line=line + 1)


def rule_files(directory: Path | str) -> list[Path]:
    """The rule files directly in ``directory`` (``*.yaml``, ``*.yml``), sorted by name.

    Subdirectories (such as ``lists/``) are not rule files and are skipped.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise RuleError([f"{directory}: rules directory not found"])
    paths = sorted(
        path for path in directory.iterdir() if path.suffix in RULE_FILE_SUFFIXES and path.is_file()
    )
    if not paths:
        raise RuleError([f"{directory}: no rule files (*.yaml, *.yml)"])
    return paths


def _syntax_problem(path: str, exc: MarkedYAMLError) -> str:
    """``path:line:col: YAML syntax error: ...``, naming where the broken construct began."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
    context = exc.context or ""
    if context and exc.context_mark is not None and exc.context_mark is not mark:
        start = exc.context_mark
        context += f" (started at line {start.line + 1}, column {start.column + 1})"
    reason = ": ".join(part for part in (context, exc.problem) if part)
    return f"{where}: YAML syntax error: {reason}"


def _position_key(problem: str) -> tuple[int, int]:
    """(line, column) of a ``path:line:col: ...`` message, to list a file's problems in order."""
    parts = problem.split(":", 3)
    try:
        return int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return 0, 0


def _parse_yaml(path: str, problems: list[str]) -> tuple[bool, object]:
    """Read and parse one file; on failure add a positioned problem and return (False, None)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read rule file: {exc}")
        return False, None
    try:
        return True, YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        problems.append(_syntax_problem(path, exc))
    except YAMLError as exc:
        problems.append(f"{path}: YAML error: {exc}")
    return False, None


def _rule_nodes(path: str, data: object, problems: list[str]) -> list[CommentedMap]:
    """The rule mappings of one parsed file (a single mapping or a list of them)."""
    if data is None:
        return []
    if isinstance(data, CommentedMap):
        return [data]
    if isinstance(data, CommentedSeq):
        nodes: list[CommentedMap] = []
        for index, item in enumerate(data):
            if isinstance(item, CommentedMap):
                nodes.append(item)
                continue
            line, col = data.lc.item(index)
            problems.append(
                f"{path}:{line + 1}:{col + 1}: rule #{index + 1}: a rule must be a mapping,"
                f" not {_type_name(item)}"
            )
        return nodes
    problems.append(
        f"{path}:1:1: a rule file holds one rule mapping or a list of rule mappings,"
        f" not {_type_name(data)}"
    )
    return []


def _check_duplicates(rules: Sequence[Rule], problems: list[str]) -> None:
    first: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in first:
            problems.append(
                f"{rule.location}: rule {rule.id!r}: duplicate id;"
                f" first defined at {first[rule.id].location}"
            )
        else:
            first[rule.id] = rule


def _load_file(path: str, tiers: Sequence[str], problems: list[str]) -> list[Rule]:
    parsed, data = _parse_yaml(path, problems)
    if not parsed:
        return []
    rules = []
    for index, node in enumerate(_rule_nodes(path, data, problems)):
        rule = _Reader(path, node, f"rule #{index + 1}", tiers, problems).read()
        if rule is not None:
            rules.append(rule)
    return rules


def load_rule_files(paths: Sequence[Path | str], tiers: Sequence[str]) -> tuple[Rule, ...]:
    """Read and validate rule files, in the order given.

    Raises :class:`RuleError` listing every problem of every file (syntax, unknown keys with
    a hint, unknown tiers, malformed match trees, duplicate ids across files). Paths appear in
    messages as given.
    """
    problems: list[str] = []
    rules: list[Rule] = []
    for path in map(str, paths):
        file_problems: list[str] = []
        rules.extend(_load_file(path, tiers, file_problems))
        problems.extend(sorted(file_problems, key=_position_key))
    _check_duplicates(rules, problems)
    if problems:
        raise RuleError(problems)
    return tuple(rules)
