"""Validation of one rule mapping read from YAML, with every problem positioned.

:class:`RuleReader` turns a ruamel.yaml mapping into a :class:`~mastwatch.rules.tree.Rule`
or records problems (``path:line:column: rule 'id': message``) in a shared list; it never
stops at the first one. :mod:`mastwatch.rules.schema` drives it over files.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mastwatch.rules.regex import regex_problem
from mastwatch.rules.tree import BUILTINS, FIELDS, InlineTest, MatchNode, Near, Rule, Term
from mastwatch.text import normalize

__all__ = ["NodeReader", "RuleReader", "hint", "term_problem", "type_name"]

RULE_KEYS: tuple[str, ...] = (
    "id",
    "title",
    "tier",
    "description",
    "owner",
    "enabled",
    "labels",
    "sources",
    "source_tags",
    "languages",
    "match",
    "tests",
)
OPERATORS: tuple[str, ...] = ("any", "all", "none")
NODE_KEYS: tuple[str, ...] = (*OPERATORS, "near", "in")
LEAF_KEYS: tuple[str, ...] = ("exact", "regex", "list")
NEAR_KEYS: tuple[str, ...] = ("terms", "within", "in")
TEST_KEYS: tuple[str, ...] = (
    "title",
    "summary",
    "content",
    "link",
    "source",
    "source_tags",
    "tags",
    "expect",
    "tier",
)
TEST_TEXT_KEYS: tuple[str, ...] = ("title", "summary", "content", "link", "source")
EXPECTATIONS: tuple[str, ...] = ("match", "no-match")
LANGUAGES: tuple[str, ...] = ("en", "ja")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_WITHIN = 1000

Position = tuple[int, int]  # 0-based line and column, as ruamel.yaml records them
TermLists = Mapping[str, tuple[str | Term, ...]]


def term_problem(term: str) -> str | None:
    """Say what is wrong with a term string, or return None when it is usable."""
    norm = normalize(term)
    if norm.startswith("@"):
        return None if norm in BUILTINS else f"unknown pattern {term!r}{hint(norm, BUILTINS)}"
    if not norm.rstrip("*").strip():
        return f"empty term {term!r}"
    if "*" in norm[:-1]:
        return f"term {term!r}: '*' is only allowed at the end (a prefix match)"
    if norm.endswith(" *"):
        return f"term {term!r}: '*' must follow a word, without a space"
    return None


def hint(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def type_name(value: object) -> str:
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


class _Positioned:
    """Problem recording with YAML positions, shared by the rule and tree readers."""

    def __init__(self, path: str, label: str, problems: list[str]) -> None:
        self.path = path
        self.label = label  # "rule 'x'" once the id is known, "rule #n" before
        self.problems = problems
        self.failed = False

    def problem(self, pos: Position, message: str) -> None:
        self.failed = True
        self.problems.append(f"{self.path}:{pos[0] + 1}:{pos[1] + 1}: {self.label}: {message}")

    @staticmethod
    def key_pos(mapping: CommentedMap, key: object) -> Position:
        line, col = mapping.lc.key(key)
        return int(line), int(col)

    @staticmethod
    def value_pos(mapping: CommentedMap, key: object) -> Position:
        line, col = mapping.lc.value(key)
        return int(line), int(col)

    @staticmethod
    def item_pos(sequence: CommentedSeq, index: int) -> Position:
        line, col = sequence.lc.item(index)
        return int(line), int(col)

    @staticmethod
    def start(node: CommentedMap | CommentedSeq) -> Position:
        return int(node.lc.line), int(node.lc.col)

    def check_keys(self, mapping: CommentedMap, allowed: Sequence[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                found = hint(str(key), allowed)
                self.problem(self.key_pos(mapping, key), f"unknown key {key!r}{where}{found}")

    def strings(self, mapping: CommentedMap, key: str, what: str) -> tuple[str, ...]:
        """A list of strings (or one string) under ``key``; empty when absent."""
        value = mapping.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, CommentedSeq) and all(isinstance(v, str) for v in value):
            return tuple(str(v) for v in value)
        self.problem(
            self.value_pos(mapping, key),
            f"{key!r} must be a list of {what}, not {type_name(value)}",
        )
        return ()


class NodeReader(_Positioned):
    """Reads match trees: operators, leaves, proximity and field scopes."""

    lists: TermLists = MappingProxyType({})

    def read_node(self, node: object, pos: Position) -> MatchNode | Near | None:
        if not isinstance(node, CommentedMap):
            self.problem(
                pos,
                "a match tree is a mapping with one of any, all, none, near;"
                f" not {type_name(node)}",
            )
            return None
        self.check_keys(node, NODE_KEYS, " in match tree")
        ops = [key for key in node if key in (*OPERATORS, "near")]
        if len(ops) > 1:
            found = " and ".join(repr(op) for op in ops)
            self.problem(
                self.key_pos(node, ops[1]),
                f"a match mapping takes exactly one of any, all, none, near; found {found}"
                " (nest them, e.g. all: [{any: [...]}, {none: [...]}])",
            )
            return None
        if not ops:
            if not node or list(node) == ["in"]:
                self.problem(pos, "empty match tree: give one of any, all, none, near")
            return None
        fields = self.read_fields(node)
        if ops[0] == "near":
            return self.read_near(node["near"], self.value_pos(node, "near"), fields)
        return self.read_children(node, ops[0], fields)

    def read_fields(self, node: CommentedMap) -> tuple[str, ...]:
        fields = self.strings(node, "in", "field names")
        for name in fields:
            if name not in FIELDS:
                self.problem(
                    self.value_pos(node, "in"),
                    f"unknown field {name!r}; fields: {', '.join(FIELDS)}{hint(name, FIELDS)}",
                )
        if "in" in node and not fields:
            self.problem(self.value_pos(node, "in"), "'in' needs at least one field")
        return fields

    def read_children(
        self, node: CommentedMap, op: str, fields: tuple[str, ...]
    ) -> MatchNode | None:
        items = node[op]
        if not isinstance(items, CommentedSeq) or not items:
            shown = "an empty list" if isinstance(items, CommentedSeq) else type_name(items)
            example = " (write it as [term])" if isinstance(items, str) else ""
            self.problem(
                self.value_pos(node, op),
                f"{op!r} takes a non-empty list of terms or nested mappings, not {shown}{example}",
            )
            return None
        children: list[str | Term | Near | MatchNode] = []
        for index, item in enumerate(items):
            child = self.read_child(item, self.item_pos(items, index))
            if child is not None:
                children.append(child)
        if len(children) != len(items):
            return None
        return MatchNode.model_validate({"op": op, "children": tuple(children), "fields": fields})

    def read_child(self, item: object, pos: Position) -> str | Term | Near | MatchNode | None:
        if isinstance(item, CommentedMap) and any(key in item for key in LEAF_KEYS):
            return self.read_leaf_mapping(item, pos)
        if isinstance(item, CommentedMap):
            return self.read_node(item, pos)
        return self.read_leaf(item, pos)

    def read_leaf(self, item: object, pos: Position) -> str | Term | None:
        if isinstance(item, str):
            trouble = term_problem(item)
            if trouble:
                self.problem(pos, trouble)
                return None
            return str(item)
        if isinstance(item, CommentedMap) and any(key in item for key in LEAF_KEYS):
            return self.read_leaf_mapping(item, pos)
        self.problem(
            pos,
            f"a term must be a string (quote numbers) or a nested mapping, not {type_name(item)}",
        )
        return None

    def read_leaf_mapping(self, item: CommentedMap, pos: Position) -> Term | None:
        self.check_keys(item, LEAF_KEYS, " in a term")
        kinds = [key for key in item if key in LEAF_KEYS]
        if len(kinds) != 1 or len(item) != 1:
            self.problem(pos, "a term mapping holds exactly one of exact, regex, list")
            return None
        kind = kinds[0]
        value = item[kind]
        value_pos = self.value_pos(item, kind)
        if not isinstance(value, str):
            self.problem(value_pos, f"{kind!r} takes a string, not {type_name(value)}")
            return None
        trouble = {"exact": term_problem, "regex": regex_problem, "list": self.list_problem}[kind]
        message = trouble(str(value))
        if message:
            self.problem(value_pos, message)
            return None
        if kind == "list":
            return Term(kind="list", text=str(value), items=self.lists[str(value)])
        return Term(kind=kind, text=str(value))

    def list_problem(self, name: str) -> str | None:
        if name in self.lists:
            return None
        known = (
            f"; lists: {', '.join(sorted(self.lists))}"
            if self.lists
            else " (rules/lists/ is empty)"
        )
        return f"no term list named {name!r}{hint(name, self.lists)}{known}"

    def read_near(self, near: object, pos: Position, fields: tuple[str, ...]) -> Near | None:
        if not isinstance(near, CommentedMap):
            self.problem(
                pos, f"'near' takes a mapping {{terms: [...], within: N}}, not {type_name(near)}"
            )
            return None
        self.check_keys(near, NEAR_KEYS, " in near")
        fields = self.read_fields(near) or fields
        within = self.read_within(near, pos)
        terms = near.get("terms")
        if not isinstance(terms, CommentedSeq) or len(terms) < 2:
            where = self.value_pos(near, "terms") if "terms" in near else pos
            self.problem(where, "'near' needs 'terms': a list of at least two terms")
            return None
        entries = [
            self.read_near_entry(entry, self.item_pos(terms, i)) for i, entry in enumerate(terms)
        ]
        if within is None or any(entry is None for entry in entries):
            return None
        return Near(terms=tuple(e for e in entries if e is not None), within=within, fields=fields)

    def read_within(self, near: CommentedMap, pos: Position) -> int | None:
        within = near.get("within")
        if isinstance(within, int) and not isinstance(within, bool) and 0 <= within <= MAX_WITHIN:
            return within
        where = self.value_pos(near, "within") if "within" in near else pos
        self.problem(
            where,
            f"'near' needs 'within': a whole number of words from 0 to {MAX_WITHIN}"
            f", not {type_name(within)}",
        )
        return None

    def read_near_entry(self, entry: object, pos: Position) -> str | Term | None:
        if not isinstance(entry, CommentedSeq):
            return self.read_leaf(entry, pos)
        if not entry:
            self.problem(pos, "an empty list of alternatives in 'near'")
            return None
        items = [self.read_leaf(item, self.item_pos(entry, i)) for i, item in enumerate(entry)]
        if any(item is None for item in items):
            return None
        return Term(kind="any", items=tuple(item for item in items if item is not None))


class RuleReader(NodeReader):
    """Validates one rule mapping, adding positioned problems to a shared list."""

    def __init__(  # noqa: PLR0917  # one call site, in schema.py
        self,
        path: str,
        node: CommentedMap,
        label: str,
        tiers: Sequence[str],
        problems: list[str],
        lists: TermLists,
    ) -> None:
        super().__init__(path, label, problems)
        self.node = node
        self.tiers = tiers
        self.lists = lists
        self.rule_id = ""  # once read, even if the rule has other problems

    def read(self) -> Rule | None:
        """The validated rule, or None after recording its problems."""
        rule_id = self.read_id()
        self.check_keys(self.node, RULE_KEYS, "")
        fields: dict[str, Any] = {
            "id": rule_id,
            "title": self.read_text("title", required=True),
            "tier": self.read_tier(self.node, "tier", required=True),
            "description": self.read_text("description", required=False),
            "owner": self.read_text("owner", required=False),
            "enabled": self.read_enabled(),
            "labels": self.read_labels(),
            "sources": self.strings(self.node, "sources", "source ids"),
            "source_tags": self.strings(self.node, "source_tags", "source tags"),
            "languages": self.read_languages(),
            "match": self.read_match(),
            "tests": self.read_tests(),
        }
        if self.failed:
            return None
        line, col = self.start(self.node)
        return Rule(**fields, source=self.path, line=line + 1, column=col + 1)

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
        self.rule_id = str(value)
        return self.rule_id

    def read_text(self, key: str, *, required: bool, mapping: CommentedMap | None = None) -> str:
        mapping = self.node if mapping is None else mapping
        if key not in mapping:
            if required:
                self.missing(key)
            return ""
        value = mapping[key]
        if not isinstance(value, str) or (required and not value.strip()):
            wrong = "must not be empty" if isinstance(value, str) else "must be a string"
            shown = "" if isinstance(value, str) else f", not {type_name(value)}"
            self.problem(self.value_pos(mapping, key), f"{key!r} {wrong}{shown}")
            return ""
        return str(value)

    def read_tier(self, mapping: CommentedMap, key: str, *, required: bool) -> str:
        tier = self.read_text(key, required=required, mapping=mapping)
        if tier and tier not in self.tiers:
            self.problem(
                self.value_pos(mapping, key),
                f"unknown tier {tier!r}; allowed: {', '.join(self.tiers)}{hint(tier, self.tiers)}",
            )
        return tier

    def read_enabled(self) -> bool:
        value = self.node.get("enabled", True)
        if not isinstance(value, bool):
            self.problem(
                self.value_pos(self.node, "enabled"),
                f"'enabled' must be true or false, not {type_name(value)}",
            )
            return True
        return bool(value)

    def read_languages(self) -> tuple[str, ...]:
        languages = self.strings(self.node, "languages", "language codes")
        for code in languages:
            if code not in LANGUAGES:
                self.problem(
                    self.value_pos(self.node, "languages"),
                    f"unknown language {code!r}; languages: {', '.join(LANGUAGES)}",
                )
        return languages

    def read_labels(self) -> tuple[tuple[str, str], ...]:
        labels = self.node.get("labels")
        if labels is None:
            return ()
        if not isinstance(labels, CommentedMap):
            self.problem(
                self.value_pos(self.node, "labels"),
                f"'labels' must be a mapping of names to strings, not {type_name(labels)}",
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
        node = self.read_node(self.node["match"], self.value_pos(self.node, "match"))
        if isinstance(node, Near):  # a lone proximity condition is the whole tree
            return MatchNode(op="all", children=(node,))
        return node

    def read_tests(self) -> tuple[InlineTest, ...]:
        tests = self.node.get("tests")
        if tests is None:
            return ()
        if not isinstance(tests, CommentedSeq):
            self.problem(
                self.value_pos(self.node, "tests"),
                f"'tests' must be a list of {{title, summary, expect}}, not {type_name(tests)}",
            )
            return ()
        read = (self.read_test(test, tests, index) for index, test in enumerate(tests))
        return tuple(test for test in read if test is not None)

    def read_test(self, test: object, tests: CommentedSeq, index: int) -> InlineTest | None:
        line, col = self.item_pos(tests, index)
        where = f"test {index + 1}"
        if not isinstance(test, CommentedMap):
            self.problem((line, col), f"{where} must be a mapping, not {type_name(test)}")
            return None
        self.check_keys(test, TEST_KEYS, f" in {where}")
        fields: dict[str, Any] = {}
        for key in TEST_TEXT_KEYS:
            value = test.get(key, "")
            if not isinstance(value, str):
                self.problem(self.value_pos(test, key), f"{where}: {key!r} must be a string")
            fields[key] = str(value)
        fields["tags"] = self.strings(test, "tags", "tags")
        fields["source_tags"] = self.strings(test, "source_tags", "tags")
        fields["tier"] = self.read_tier(test, "tier", required=False)
        expect = test.get("expect")
        if expect not in EXPECTATIONS:
            pos = self.value_pos(test, "expect") if "expect" in test else (line, col)
            self.problem(pos, f"{where}: 'expect' must be 'match' or 'no-match', not {expect!r}")
            return None
        return InlineTest(**fields, expect=expect, line=line + 1)
